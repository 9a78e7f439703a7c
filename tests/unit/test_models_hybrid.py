"""HybridScorer: the engine's interface (score_windows) and its learning discipline."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from detectors.hybrid import HybridScorer, _stable_order

NAMES = ("ratio", "step", "share")
RANGES = {"ratio": (0.0, 4.0), "step": (0.0, 6.0), "share": (0.0, 1.0)}


def windows(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack(
        [rng.lognormal(0, 0.2, n), rng.gamma(2.0, 0.2, n), rng.uniform(0, 0.05, n)]
    )


def scorer(window_size: int = 200) -> HybridScorer:
    return HybridScorer.create(
        NAMES,
        None,
        seed=0,
        n_trees=8,
        height=5,
        window_size=window_size,
        feature_ranges=RANGES,
        calibration_min_count=50,
    )


def test_a_long_batch_is_scored_as_a_stream() -> None:
    """One call with a day of windows (a replay) must not be judged by an empty model."""
    model = scorer()
    batch = windows(3000, 1)
    result = model.score_windows(batch, np.ones(3000, dtype=bool))
    assert np.all(result.hst[:200] == 0.0)  # first mass window: no model yet
    assert np.count_nonzero(result.hst[1000:]) > 1500
    assert np.all(np.isnan(result.ae)) and np.array_equal(result.hybrid, result.hst)


def test_windows_are_walked_in_event_time_order() -> None:
    batch = windows(1200, 2)
    ends = np.random.default_rng(3).permutation(1200).astype(np.int64) * 60_000
    shuffled = scorer().score_windows(batch, np.ones(1200, dtype=bool), window_end_ms=ends)
    order = np.argsort(ends, kind="stable")
    in_order = scorer().score_windows(batch[order], np.ones(1200, dtype=bool))
    np.testing.assert_array_equal(shuffled.hst[order], in_order.hst)
    np.testing.assert_array_equal(shuffled.hst_raw[order], in_order.hst_raw)


def test_one_batch_equals_the_same_windows_in_small_batches() -> None:
    """The whole batch is walked through the trees at once (the walk does not depend on
    what HST learned); scoring and learning still go chunk by chunk, so a replay-sized
    batch gives exactly what a stream of small batches gives."""
    batch = windows(2500, 5)
    batch[1800:, 0] *= 3.0  # a shift, so scores change along the batch
    learn = np.random.default_rng(6).random(2500) < 0.8
    whole = scorer(window_size=150)
    whole.learn_chunk = 60  # several pivots inside the batch, chunk edges not aligned
    big = whole.score_windows(batch, learn)
    small_model = scorer(window_size=150)
    small_model.learn_chunk = 60
    parts = [
        small_model.score_windows(batch[a : a + 60], learn[a : a + 60]) for a in range(0, 2500, 60)
    ]
    np.testing.assert_array_equal(big.hst_raw, np.concatenate([r.hst_raw for r in parts]))
    np.testing.assert_array_equal(big.hst, np.concatenate([r.hst for r in parts]))
    assert np.count_nonzero(big.hst_raw) > 2000


def test_suspected_windows_are_never_learned() -> None:
    """Learning from nothing leaves the model empty, whatever it is shown."""
    model = scorer(window_size=100)
    model.score_windows(windows(1000, 4), np.zeros(1000, dtype=bool))
    assert not model.hst.ready and model.hst_calibration.total == 0.0
    assert model.normal_moments.weight == 0.0


def test_theft_like_batch_scores_high_against_normal_history() -> None:
    model = scorer()
    model.score_windows(windows(4000, 5), np.ones(4000, dtype=bool))
    theft = windows(300, 6)
    theft[:, 0] = 0.01  # consumption gone
    theft[:, 2] = 0.9  # near-zero share up
    result = model.score_windows(theft, np.zeros(300, dtype=bool))
    normal = model.score_windows(windows(300, 7), np.zeros(300, dtype=bool))
    assert np.median(result.hybrid) > 75 > np.median(normal.hybrid)
    top = result.top_features_at(np.array([0, 1]))
    assert len(top) == 2 and {name for name, _ in top[0]} >= {"ratio", "share"}
    assert result.top_features[0] == top[0]


def test_degraded_mode_has_no_attribution_before_any_normal_window() -> None:
    result = scorer().score_windows(windows(5, 8))
    assert result.top_features == [[], [], [], [], []]


def test_bad_shapes_are_rejected() -> None:
    model = scorer()
    with pytest.raises(ValueError, match="learn_mask"):
        model.score_windows(windows(4, 9), np.ones(3, dtype=bool))
    with pytest.raises(ValueError, match="window_end_ms"):
        model.score_windows(windows(4, 9), window_end_ms=np.zeros(5, dtype=np.int64))


@given(
    st.lists(st.integers(-(2**40), 2**40), min_size=0, max_size=300),
    st.integers(1, 120_000),
    st.integers(-(2**45), 2**45),
    st.booleans(),
)
def test_walk_order_is_the_stable_argsort_of_the_window_ends(
    steps: list[int], hop: int, base: int, on_a_grid: bool
) -> None:
    """The scorer's fast walk order equals numpy's stable argsort (ties in row order),
    for ends on a common hop (the radix path) and for arbitrary ends (the fallback)."""
    raw = np.array(steps, dtype=np.int64)
    ends = base + (raw % 3000) * hop if on_a_grid else raw
    np.testing.assert_array_equal(_stable_order(ends), np.argsort(ends, kind="stable"))
