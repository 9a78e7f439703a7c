"""Half-Space Trees wrapper: river's algorithm, vectorised, and the fixed [0, 1] map."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from river import anomaly

from detectors.hst import HalfSpaceTreesDetector, UnitIntervalMap

# deliberately not in sorted order: river grows trees over sorted feature names
NAMES = ("zeta", "alpha", "mid", "b2", "c")


@pytest.mark.parametrize("batch", [1, 7, 35, 120])
def test_scores_equal_rivers_half_space_trees(batch: int) -> None:
    rng = np.random.default_rng(batch)
    stream = rng.random((600, len(NAMES)))
    stream[450:, 1] *= 0.2  # a shift, so masses and early stops vary along the stream
    reference = anomaly.HalfSpaceTrees(n_trees=6, height=5, window_size=50, seed=7)
    ours = HalfSpaceTreesDetector(
        NAMES,
        n_trees=6,
        height=5,
        window_size=50,
        seed=7,
        ranges={name: (0.0, 1.0) for name in NAMES},
    )
    river_scores, our_scores = [], []
    for start in range(0, len(stream), batch):
        rows = stream[start : start + batch]
        our_scores.append(ours.score_many(rows))
        ours.learn_many(rows)
        dicts = [dict(zip(NAMES, row, strict=True)) for row in rows]
        river_scores.extend(reference.score_one(x) for x in dicts)
        for x in dicts:
            reference.learn_one(x)
    np.testing.assert_allclose(np.concatenate(our_scores), river_scores, rtol=0, atol=1e-12)


def test_scores_zero_during_first_mass_window_like_river() -> None:
    detector = HalfSpaceTreesDetector(NAMES, window_size=20, n_trees=3, height=3)
    rows = np.random.default_rng(0).random((19, len(NAMES)))
    detector.learn_many(rows)
    assert not detector.ready
    assert np.all(detector.score_many(rows) == 0.0)
    detector.learn_one(dict(zip(NAMES, rows[0], strict=True)))
    assert detector.ready
    assert np.any(detector.score_many(rows) > 0.0)


def test_different_seeds_grow_different_trees() -> None:
    rows = np.random.default_rng(1).random((300, len(NAMES)))
    scores = []
    for seed in (0, 1):
        detector = HalfSpaceTreesDetector(NAMES, window_size=100, n_trees=5, height=4, seed=seed)
        detector.learn_many(rows)
        scores.append(detector.score_many(rows))
    assert not np.array_equal(scores[0], scores[1])


def test_model_size_does_not_grow_with_windows() -> None:
    detector = HalfSpaceTreesDetector(NAMES, window_size=100)
    before = detector.state_bytes()
    detector.learn_many(np.random.default_rng(2).random((1000, len(NAMES))))
    assert detector.state_bytes() == before


def test_unit_map_uses_ranges_and_squash() -> None:
    unit = UnitIntervalMap.build(("share", "free"), {"share": (0.0, 2.0)})
    mapped = unit(
        np.array([[1.0, 0.0], [-5.0, 1.0], [9.0, -1.0], [np.nan, np.nan], [np.inf, -np.inf]])
    )
    np.testing.assert_allclose(
        mapped, [[0.5, 0.5], [0.0, 0.75], [1.0, 0.25], [0.5, 0.5], [1.0, 0.0]], rtol=0, atol=1e-12
    )


def test_unit_map_rejects_bad_ranges() -> None:
    with pytest.raises(ValueError, match="unknown features"):
        UnitIntervalMap.build(("a",), {"b": (0.0, 1.0)})
    with pytest.raises(ValueError, match="high > low"):
        UnitIntervalMap.build(("a",), {"a": (1.0, 1.0)})


@given(
    arrays(np.float64, (6, 3), elements=st.floats(allow_nan=True, allow_infinity=True, width=64))
)
def test_unit_map_is_always_inside_the_unit_interval(values: np.ndarray) -> None:
    unit = UnitIntervalMap.build(("a", "b", "c"), {"a": (-1.0, 1.0)})
    mapped = unit(values)
    assert np.all((mapped >= 0.0) & (mapped <= 1.0))


@given(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6))
def test_unit_map_preserves_order(a: float, b: float) -> None:
    unit = UnitIntervalMap.build(("x",))
    low, high = sorted((a, b))
    mapped = unit(np.array([[low], [high]]))
    assert mapped[0, 0] <= mapped[1, 0]


def test_constructor_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unique"):
        HalfSpaceTreesDetector(("a", "a"))
    with pytest.raises(ValueError, match="positive"):
        HalfSpaceTreesDetector(("a",), window_size=0)


def test_score_then_learn_equals_score_then_learn_masked() -> None:
    rows = np.random.default_rng(4).random((700, len(NAMES)))
    mask = np.random.default_rng(5).random(700) < 0.7
    combined = HalfSpaceTreesDetector(NAMES, n_trees=4, height=4, window_size=90, seed=2)
    separate = HalfSpaceTreesDetector(NAMES, n_trees=4, height=4, window_size=90, seed=2)
    for start in range(0, 700, 100):
        batch, learn = rows[start : start + 100], mask[start : start + 100]
        got = combined.score_then_learn(batch, learn)
        expected = separate.score_many(batch)
        separate.learn_many(batch[learn])
        np.testing.assert_array_equal(got, expected)
    assert combined.ready


@pytest.mark.parametrize(("n_features", "n_trees", "height", "seed"), [(18, 4, 8, 0), (3, 2, 5, 9)])
def test_trees_are_grown_split_for_split_like_rivers(
    n_features: int, n_trees: int, height: int, seed: int
) -> None:
    """Our own tree growth (no river.tree import) draws the same splits as river's
    make_padded_tree with the same generator."""
    import random

    from river.tree.padded import PaddedBranch, make_padded_tree

    from detectors.hst import _grow_river_trees

    split, threshold = _grow_river_trees(n_features, n_trees, height, seed)
    rng = random.Random(seed)  # noqa: S311 - river's generator, as in the detector
    for tree in range(n_trees):
        root = make_padded_tree(
            limits={f: (0.0, 1.0) for f in range(n_features)},
            height=height,
            padding=0.15,
            rng=rng,
            r_mass=0,
            l_mass=0,
        )
        stack = [(root, 0)]
        seen = 0
        while stack:
            node, heap = stack.pop()
            if isinstance(node, PaddedBranch):
                seen += 1
                assert split[tree, heap] == node.feature
                assert threshold[tree, heap] == node.threshold
                stack.extend([(node.children[0], 2 * heap + 1), (node.children[1], 2 * heap + 2)])
        assert seen == 2**height - 1


# --- the compiled walks (detectors.kernels) against the numpy forms they replace ---


@given(
    seed=st.integers(0, 2**16),
    n_windows=st.integers(0, 60),
    height=st.integers(1, 6),
    tie_share=st.floats(0.0, 1.0),
)
def test_compiled_walk_reaches_the_numpy_walks_leaves(
    seed: int, n_windows: int, height: int, tie_share: float
) -> None:
    detector = HalfSpaceTreesDetector(NAMES, n_trees=3, height=height, seed=seed)
    rng = np.random.default_rng(seed)
    unit = rng.random((n_windows, len(NAMES)))
    # values equal to a split threshold: ">=" goes right in both forms
    ties = rng.random(unit.shape) < tie_share
    unit[ties] = rng.choice(detector._threshold.ravel(), size=int(ties.sum()))
    unit[rng.random(unit.shape) < 0.2] = 0.5  # the unit map's value for NaN
    got = detector.leaves(unit)
    np.testing.assert_array_equal(got, detector.leaves_numpy(unit))
    assert got.dtype == np.int64
    assert got.shape == (3, n_windows)
    # a Fortran-ordered or sliced matrix walks the same (the kernel wants C rows)
    np.testing.assert_array_equal(detector.leaves(np.asfortranarray(unit)), got)


@given(seed=st.integers(0, 2**16), start=st.integers(0, 40), stop=st.integers(0, 80))
def test_compiled_counts_and_scores_equal_the_numpy_forms(seed: int, start: int, stop: int) -> None:
    rng = np.random.default_rng(seed)
    detector = HalfSpaceTreesDetector(NAMES, n_trees=4, height=4, window_size=30, seed=seed)
    leaves = detector.leaves(rng.random((80, len(NAMES))))
    block = leaves[:, start:stop]  # a column slice, as score_then_learn passes
    before = detector._latest_mass.copy()
    detector._learn_leaves(block)
    if block.shape[1] < 30:  # no pivot: the masses gained exactly the numpy node counts
        np.testing.assert_array_equal(detector._latest_mass, before + detector._node_counts(block))
    detector._learn_leaves(leaves)  # at least one full mass window: scores are live
    assert detector.ready
    np.testing.assert_array_equal(
        detector._score_leaves(block), detector._score_leaves_numpy(block)
    )
    np.testing.assert_array_equal(
        detector._score_leaves(leaves), detector._score_leaves_numpy(leaves)
    )


def test_compiled_count_adds_every_node_on_the_path() -> None:
    # literal: height 2, one tree; leaf 2 is node 5 (root 0 -> right 2 -> left 5)
    from detectors.kernels import add_walks

    mass = np.zeros((1, 7), dtype=np.int32)
    add_walks(np.array([[2, 2, 0]], dtype=np.int64), mass, 2)
    np.testing.assert_array_equal(mass, [[3, 1, 2, 1, 0, 2, 0]])


@given(seed=st.integers(0, 2**16), height=st.integers(1, 7), low_share=st.floats(0.0, 1.0))
def test_compiled_leaf_scores_equal_the_numpy_form(
    seed: int, height: int, low_share: float
) -> None:
    rng = np.random.default_rng(seed)
    detector = HalfSpaceTreesDetector(NAMES, n_trees=3, height=height, window_size=100, seed=seed)
    mass = rng.integers(0, 100, detector._reference_mass.shape).astype(np.int32)
    # nodes under the 0.1 * window_size limit stop the walk there; ties at the limit go on
    mass[rng.random(mass.shape) < low_share] = rng.choice([0, 9, 10])
    detector._reference_mass = mass
    detector._leaf_score_cache = None
    np.testing.assert_array_equal(detector._leaf_scores(), detector._leaf_scores_numpy())


@given(
    arrays(
        np.float64,
        st.tuples(st.integers(0, 30), st.just(len(NAMES))),
        elements=st.floats(allow_nan=True, allow_infinity=True, width=64),
    )
)
def test_compiled_unit_map_is_the_numpy_map(values: np.ndarray) -> None:
    unit_map = UnitIntervalMap.build(NAMES, {name: (-2.0, 3.0) for name in NAMES})
    got = unit_map(values)
    np.testing.assert_array_equal(got.view(np.int64), unit_map.map_numpy(values).view(np.int64))
    # a Fortran-ordered input maps the same
    np.testing.assert_array_equal(unit_map(np.asfortranarray(values)), got)
