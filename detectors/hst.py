"""Half-Space Trees (river) over window features, evaluated in vectorised batches.

The trees are river's: they are grown by ``river.tree.padded.make_padded_tree`` with the
random generator of a ``river.anomaly.HalfSpaceTrees`` built from the same parameters,
exactly as river grows them on its first ``learn_one``. What differs is the evaluation:
river walks each tree in Python for each window (~90 us per window for 25 trees), which
is too slow for a fleet scored every minute. Here the trees are flattened into arrays
(heap order: node ``k`` has children ``2k+1`` and ``2k+2``) and a whole batch walks all
trees at once in numpy. The masses, the window pivot and the score formula are river's;
``tests/unit/test_models_hst.py`` checks that scores equal river's on the same stream.

HST needs every feature in [0, 1]. :class:`UnitIntervalMap` does that with a FIXED
transform per feature (never a data quantile): features with a known physical range are
clipped to it and rescaled; the rest go through a documented squashing function.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from detectors.base import FloatMatrix, FloatVector
from detectors.kernels import (
    add_walks,
    leaf_scores_from_mass,
    leaf_scores_of,
    unit_map_ranged,
    walk_leaves,
)

IntArray = npt.NDArray[np.int64]

# --- mapping features to [0, 1] ------------------------------------------------------

SQUASH_SCALE = 1.0
"""Unknown features: ``u = 0.5 + 0.5 * x / (SQUASH_SCALE + |x|)``: 0 maps to 0.5, +-1 to
0.25/0.75, and any finite value stays inside (0, 1) with order preserved."""


@dataclass(frozen=True)
class UnitIntervalMap:
    """Fixed per-feature maps of window features into [0, 1].

    ``ranges`` gives ``(low, high)`` for features with a physical range (for example a
    share in [0, 1], a ratio to baseline clipped to [0, 3]); values are clipped to it and
    rescaled. Features without a range are squashed (see ``SQUASH_SCALE``). NaN maps to
    the middle of the range (no information, pushes toward neither side).
    """

    feature_names: tuple[str, ...]
    low: FloatVector
    span: FloatVector
    has_range: npt.NDArray[np.bool_]

    @classmethod
    def build(
        cls,
        feature_names: Sequence[str],
        ranges: Mapping[str, tuple[float, float]] | None = None,
    ) -> UnitIntervalMap:
        names = tuple(feature_names)
        known = dict(ranges or {})
        unknown = set(known) - set(names)
        if unknown:
            raise ValueError(f"ranges given for unknown features: {sorted(unknown)}")
        low = np.zeros(len(names), dtype=np.float64)
        span = np.ones(len(names), dtype=np.float64)
        has_range = np.zeros(len(names), dtype=np.bool_)
        for column, name in enumerate(names):
            if name in known:
                lo, hi = (float(v) for v in known[name])
                if not hi > lo:
                    raise ValueError(f"range for {name!r} must have high > low, got {lo}, {hi}")
                low[column], span[column], has_range[column] = lo, hi - lo, True
        return cls(names, low, span, has_range)

    def __call__(self, X: FloatMatrix) -> FloatMatrix:
        """Map a (K, F) matrix; returns a new array, the input is untouched."""
        matrix = np.asarray(X, dtype=np.float64)
        if self.has_range.all() and matrix.ndim == 2:
            # compiled: the arithmetic of map_numpy, element by element
            unit: FloatMatrix = unit_map_ranged(np.ascontiguousarray(matrix), self.low, self.span)
            return unit
        return self.map_numpy(matrix)

    def map_numpy(self, X: FloatMatrix) -> FloatMatrix:
        """:meth:`__call__` in numpy: any shape, ranged and squashed features."""
        # +-inf behave as the largest finite values (inf / inf would be NaN)
        values = np.clip(np.asarray(X, dtype=np.float64), -1e300, 1e300)
        # each column gets only its own map (computing both and picking one doubles the
        # work); the same arithmetic per element, so the same values
        if self.has_range.all():
            # in place on the one new array: a (K, F) temporary per step costs more in
            # fresh memory than in arithmetic (about 2x for a replay batch)
            values -= self.low
            values /= self.span
            mapped = np.clip(values, 0.0, 1.0, out=values)
        else:
            ranged = np.flatnonzero(self.has_range)
            squashed = np.flatnonzero(~self.has_range)
            mapped = np.empty_like(values)
            mapped[..., ranged] = np.clip(
                (values[..., ranged] - self.low[ranged]) / self.span[ranged], 0.0, 1.0
            )
            part = values[..., squashed]
            mapped[..., squashed] = 0.5 + 0.5 * part / (SQUASH_SCALE + np.abs(part))
        mapped[np.isnan(mapped)] = 0.5
        return mapped


# --- flattened river trees -------------------------------------------------------------


def _grow_river_trees(
    n_features: int, n_trees: int, height: int, seed: int
) -> tuple[IntArray, FloatVector]:
    """Grow river's padded trees over features 0..F-1, flattened.

    Returns split feature ``(T, 2**height - 1)`` and threshold arrays in heap order.
    Replays river's ``make_padded_tree`` (``river.tree.padded``, as used by
    ``HalfSpaceTrees.learn_one``) draw for draw: same generator (``random.Random(seed)``),
    same padding 0.15, features in sorted key order, a feature drawn with weight equal to
    the width of its current limits, the threshold uniform inside the padded limits, the
    left subtree grown before the right one. Done here rather than by calling river so
    that building the scorer does not import ``river.tree`` (which pulls in scipy.stats,
    about 0.8 s of CPU per process); ``test_scores_equal_rivers_half_space_trees`` checks
    the scores against river's own model.
    """
    rng = random.Random(seed)  # noqa: S311 - river's own generator; not for security
    padding = 0.15
    n_internal = 2**height - 1
    split_feature = np.zeros((n_trees, n_internal), dtype=np.int64)
    threshold = np.zeros((n_trees, n_internal), dtype=np.float64)
    features = list(range(n_features))

    def grow(
        tree: int, heap_index: int, depth_left: int, limits: list[tuple[float, float]]
    ) -> None:
        if depth_left == 0:
            return
        on = rng.choices(population=features, weights=[hi - lo for lo, hi in limits])[0]
        lo, hi = limits[on]
        at = rng.uniform(lo + padding * (hi - lo), hi - padding * (hi - lo))
        split_feature[tree, heap_index] = on
        threshold[tree, heap_index] = at
        limits[on] = (lo, at)
        grow(tree, 2 * heap_index + 1, depth_left - 1, limits)
        limits[on] = (at, hi)
        grow(tree, 2 * heap_index + 2, depth_left - 1, limits)
        limits[on] = (lo, hi)

    for tree in range(n_trees):
        grow(tree, 0, height, [(0.0, 1.0)] * n_features)
    return split_feature, threshold


class HalfSpaceTreesDetector:
    """Streaming Half-Space Trees on window features (a :class:`WindowDetector`).

    ``score_many`` returns river's raw score in [0, 1] (high = anomalous; 0 during the
    first mass window, as river). ``learn_many`` folds windows in, in row order, with
    river's reference/latest mass pivot every ``window_size`` windows. One instance is
    shared by all meters of an engine: its size does not grow with the fleet.
    """

    def __init__(
        self,
        feature_names: Sequence[str],
        *,
        n_trees: int = 10,
        height: int = 8,
        window_size: int = 1000,
        seed: int = 0,
        ranges: Mapping[str, tuple[float, float]] | None = None,
    ) -> None:
        if n_trees < 1 or height < 1 or window_size < 1:
            raise ValueError("n_trees, height and window_size must be positive")
        self.feature_names = tuple(feature_names)
        if not self.feature_names or len(set(self.feature_names)) != len(self.feature_names):
            raise ValueError("feature_names must be non-empty and unique")
        self.n_trees, self.height, self.window_size, self.seed = n_trees, height, window_size, seed
        self.unit_map = UnitIntervalMap.build(self.feature_names, ranges)
        # river sorts feature keys before growing; keep that order for identical trees
        self._sorted_columns = np.argsort(np.array(self.feature_names, dtype=object)).astype(
            np.int64
        )
        split_sorted, self._threshold = _grow_river_trees(
            len(self.feature_names), n_trees, height, seed
        )
        self._split_feature = self._sorted_columns[split_sorted]
        n_nodes = 2 ** (height + 1) - 1
        # node masses are window counts; int32 keeps the shared model (and snapshots) small
        self._latest_mass = np.zeros((n_trees, n_nodes), dtype=np.int32)
        self._reference_mass = np.zeros((n_trees, n_nodes), dtype=np.int32)
        self._counter = 0
        self._first_window = True
        self._leaf_score_cache: FloatMatrix | None = None
        self._max_score = float(n_trees * window_size * (2 ** (height + 1) - 1))

    # -- batch forms -----------------------------------------------------------------

    def _as_matrix(self, X: FloatMatrix) -> FloatMatrix:
        matrix = np.asarray(X, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[1] != len(self.feature_names):
            raise ValueError(
                f"expected a (K, {len(self.feature_names)}) matrix, got shape {matrix.shape}"
            )
        return matrix

    def leaves(self, unit: FloatMatrix) -> IntArray:
        """Leaf reached in every tree by every window of ``unit`` (rows already mapped by
        ``self.unit_map``), shape (T, K): :meth:`leaves_numpy`, compiled
        (:func:`detectors.kernels.walk_leaves`, the same leaves, ~2.5x faster)."""
        rows = np.ascontiguousarray(unit, dtype=np.float64)
        leaves: IntArray = walk_leaves(rows, self._split_feature, self._threshold, self.height)
        return leaves

    def leaves_numpy(self, unit: FloatMatrix) -> IntArray:
        """Leaf reached in every tree by every window of ``unit`` (rows already mapped by
        ``self.unit_map``), as an index within the tree's leaf level: shape (T, K), one
        row per tree. Depends on the trees only, never on the masses, so a caller may walk
        a block once and score and learn it in parts (:meth:`score_then_learn_leaves`).

        Trees along the rows: the per-tree and per-window offsets then broadcast along
        long contiguous rows (with windows along the rows, numpy runs an inner loop of T
        = 10 elements per window, half the speed). Flat ``take`` on raveled arrays
        instead of 2-D fancy indexing (same values, faster). Only the leaf is kept: a walk
        passes every level, so the masses of the inner nodes follow from the leaf counts
        (:meth:`_learn_leaves`) and the score depends on the leaf alone (:meth:`_leaf_scores`).
        """
        n_windows, n_features = unit.shape
        n_internal = 2**self.height - 1
        flat_unit = np.ascontiguousarray(unit).ravel()
        window_base = np.arange(n_windows, dtype=np.int64) * n_features
        tree_base = (np.arange(self.n_trees, dtype=np.int64) * n_internal)[:, None]
        split_flat, threshold_flat = self._split_feature.ravel(), self._threshold.ravel()
        node = np.zeros((self.n_trees, n_windows), dtype=np.int64)
        internal = np.empty_like(node)
        for _depth in range(self.height):
            np.add(node, tree_base, out=internal)
            column = split_flat.take(internal)
            column += window_base
            went_right = flat_unit.take(column) >= threshold_flat.take(internal)
            node *= 2
            node += 1
            node += went_right
        node -= n_internal
        return node

    def _leaf_scores(self) -> FloatMatrix:
        """:meth:`_leaf_scores_numpy`, compiled (:func:`detectors.kernels.leaf_scores_from_mass`),
        cached until the next pivot."""
        if self._leaf_score_cache is None:
            self._leaf_score_cache = leaf_scores_from_mass(
                self._reference_mass, self.height, 0.1 * self.window_size
            )
        return self._leaf_score_cache

    def _leaf_scores_numpy(self) -> FloatMatrix:
        """River's per-tree score for a walk ending in each leaf, shape (T, 2**height).

        River walks down adding ``r_mass * 2**depth`` and stops after the first internal
        node whose mass is below ``0.1 * window_size`` (that node still counts); the leaf
        counts if reached. That sum depends only on the leaf a window falls into, so it is
        computed once per reference mass (all root-to-leaf paths at once, level by level:
        each node inherits its parent's sum and whether the walk is still going) and
        scoring becomes one lookup per tree. Every term is a count times a power of two
        and the sums stay far below 2**53, so they are exact whatever the order of
        summation (the same values as a walk level by level).
        """
        limit = 0.1 * self.window_size
        level_mass = self._reference_mass[:, :1].astype(np.float64)
        total = level_mass.copy()
        going = level_mass >= limit
        for depth in range(1, self.height + 1):
            level_mass = self._reference_mass[:, 2**depth - 1 : 2 ** (depth + 1) - 1].astype(
                np.float64
            )
            total = np.repeat(total, 2, axis=1)
            going = np.repeat(going, 2, axis=1)
            total += np.where(going, level_mass * 2.0**depth, 0.0)
            going &= level_mass >= limit
        return total

    def _score_leaves(self, leaves: IntArray) -> FloatVector:
        scores: FloatVector = leaf_scores_of(leaves, self._leaf_scores(), self._max_score)
        return scores

    def _score_leaves_numpy(self, leaves: IntArray) -> FloatVector:
        """:meth:`_score_leaves` in numpy (the reference the compiled form is tested on)."""
        n_leaves = 2**self.height
        offsets = (np.arange(self.n_trees, dtype=np.int64) * n_leaves)[:, None]
        # exact sums (see _leaf_scores): adding tree rows gives the same totals as any order
        total = self._leaf_scores().ravel().take(leaves + offsets).sum(axis=0)
        return np.asarray(1.0 - total / self._max_score, dtype=np.float64)

    def _node_counts(self, leaves: IntArray) -> npt.NDArray[np.int32]:
        """Windows through every node, shape (T, 2**(height+1) - 1) in heap order: the
        leaf counts, then each level up as the sum of its two children (every walk goes
        from the root to one leaf, so this equals counting every node on every path)."""
        n_leaves = 2**self.height
        offsets = (np.arange(self.n_trees, dtype=np.int64) * n_leaves)[:, None]
        level = np.bincount((leaves + offsets).ravel(), minlength=self.n_trees * n_leaves)
        level = level.reshape(self.n_trees, n_leaves)
        counts = np.empty(self._latest_mass.shape, dtype=np.int64)
        for depth in range(self.height, -1, -1):
            counts[:, 2**depth - 1 : 2 ** (depth + 1) - 1] = level
            if depth:
                level = level[:, 0::2] + level[:, 1::2]  # left child + right child
        return counts.astype(np.int32)

    def _learn_leaves(self, leaves: IntArray) -> None:
        """Fold windows in (columns of ``leaves`` in order), pivoting every
        ``window_size`` windows."""
        n_windows = leaves.shape[1]
        start = 0
        while start < n_windows:
            # never cross a pivot inside one vectorised step
            stop = min(n_windows, start + self.window_size - self._counter)
            # in place: every node on each walk's path gains one (= _node_counts)
            add_walks(leaves[:, start:stop], self._latest_mass, self.height)
            self._counter += stop - start
            if self._counter == self.window_size:
                self._reference_mass = self._latest_mass
                self._latest_mass = np.zeros_like(self._reference_mass)
                self._leaf_score_cache = None
                self._first_window = False
                self._counter = 0
            start = stop

    def score_many(self, X: FloatMatrix) -> FloatVector:
        matrix = self._as_matrix(X)
        if self._first_window or matrix.shape[0] == 0:
            return np.zeros(matrix.shape[0], dtype=np.float64)
        return self._score_leaves(self.leaves(self.unit_map(matrix)))

    def learn_many(self, X: FloatMatrix) -> None:
        matrix = self._as_matrix(X)
        if matrix.shape[0]:
            self._learn_leaves(self.leaves(self.unit_map(matrix)))

    def score_then_learn(self, X: FloatMatrix, learn_mask: npt.NDArray[np.bool_]) -> FloatVector:
        """Score every window with the model as it is, then learn the masked ones (in row
        order): ``score_many(X)`` followed by ``learn_many(X[learn_mask])``, walking the
        trees once instead of twice."""
        return self.score_then_learn_unit(self.unit_map(self._as_matrix(X)), learn_mask)

    def score_then_learn_unit(
        self, unit: FloatMatrix, learn_mask: npt.NDArray[np.bool_]
    ) -> FloatVector:
        """:meth:`score_then_learn` of rows already mapped by ``self.unit_map``."""
        return self.score_then_learn_leaves(self.leaves(unit), learn_mask)

    def score_then_learn_leaves(
        self, leaves: IntArray, learn_mask: npt.NDArray[np.bool_]
    ) -> FloatVector:
        """:meth:`score_then_learn` of windows already walked by :meth:`leaves` (a caller
        that walks a block once and scores and learns it in parts)."""
        n_windows = leaves.shape[1]
        if n_windows == 0:
            return np.zeros(0, dtype=np.float64)
        if self._first_window:
            scores = np.zeros(n_windows, dtype=np.float64)
        else:
            scores = self._score_leaves(leaves)
        mask = np.asarray(learn_mask, dtype=np.bool_)
        if mask.any():
            self._learn_leaves(leaves[:, mask])
        return scores

    # -- one-window forms (river's API) -------------------------------------------------

    def _row(self, x: Mapping[str, float]) -> FloatMatrix:
        return np.array([[float(x.get(name, math.nan)) for name in self.feature_names]])

    def learn_one(self, x: Mapping[str, float]) -> None:
        self.learn_many(self._row(x))

    def score_one(self, x: Mapping[str, float]) -> float:
        return float(self.score_many(self._row(x))[0])

    @property
    def ready(self) -> bool:
        """False during the first mass window (river scores 0 then)."""
        return not self._first_window

    def state_bytes(self) -> int:
        """Bytes held by the shared model (independent of the number of meters)."""
        arrays = (self._latest_mass, self._reference_mass, self._split_feature, self._threshold)
        return int(sum(a.nbytes for a in arrays))
