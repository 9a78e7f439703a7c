"""Compiled (numba) walks of the Half-Space Trees in :mod:`detectors.hst`.

The numpy forms walk a batch level by level: each level is three gathers over the whole
(trees x windows) block, so a batch of 2,000 windows costs ~8 levels x 3 full passes over
memory. Here each window walks its ten trees while its feature row is in cache, one
comparison per level. Same results bit for bit:

* the walk makes the same comparison (``value >= threshold`` goes right) on the same
  float64 values, so every window reaches the same leaf;
* node masses are integer counts, so adding one walk at a time equals numpy's bincount
  and level sums;
* a window's score sums the per-tree leaf scores, which are integers far below 2**53
  (see ``HalfSpaceTreesDetector._leaf_scores``), so the float sum is exact in any order,
  and ``1 - total / max_score`` is the same two operations as numpy's.

``tests/unit/test_models_hst.py`` checks each kernel against its numpy form on random
trees and windows. ``cache=True`` keeps the machine code in ``__pycache__``; the engine's
warm-up (``stream.engine.warm_up_kernels``) compiles it at install.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def walk_leaves(unit, split_feature, threshold, height):  # type: ignore[no-untyped-def]
    """Leaf index (within the leaf level) reached by every window in every tree, shape
    (T, K). ``unit`` is (K, F) in [0, 1]; ``split_feature``/``threshold`` are (T, 2**height
    - 1) in heap order (node k has children 2k+1 and 2k+2)."""
    n_windows = unit.shape[0]
    n_trees = split_feature.shape[0]
    n_internal = 2**height - 1
    leaves = np.zeros((n_trees, n_windows), dtype=np.int64)
    for t in range(n_trees):
        node = leaves[t]
        for _depth in range(height):
            # level by level over all windows: the walks are independent, so the CPU
            # overlaps their loads (one walk at a time waits on each level's two loads)
            for k in range(n_windows):
                at = node[k]
                went_right = unit[k, split_feature[t, at]] >= threshold[t, at]
                node[k] = 2 * at + 1 + went_right
        for k in range(n_windows):
            node[k] -= n_internal
    return leaves


@njit(cache=True)
def add_walks(leaves, mass, height):  # type: ignore[no-untyped-def]
    """Add every walk of ``leaves`` (T, K) to ``mass`` (T, 2**(height+1) - 1), in place:
    each node on the path from the root to the leaf gains one. Counted at the leaves,
    then level by level up (a node's walks are its two children's)."""
    n_trees, n_windows = leaves.shape
    n_internal = 2**height - 1
    n_nodes = 2 * n_internal + 1
    counts = np.zeros(n_nodes, dtype=np.int64)
    for t in range(n_trees):
        counts[:] = 0
        for k in range(n_windows):
            counts[leaves[t, k] + n_internal] += 1
        for node in range(n_internal - 1, -1, -1):
            counts[node] = counts[2 * node + 1] + counts[2 * node + 2]
        for node in range(n_nodes):
            mass[t, node] += counts[node]


@njit(cache=True)
def leaf_scores_of(leaves, leaf_scores, max_score):  # type: ignore[no-untyped-def]
    """``1 - sum_t leaf_scores[t, leaves[t, k]] / max_score`` per window k."""
    n_trees, n_windows = leaves.shape
    scores = np.empty(n_windows, dtype=np.float64)
    for k in range(n_windows):
        total = 0.0
        for t in range(n_trees):
            total += leaf_scores[t, leaves[t, k]]
        scores[k] = 1.0 - total / max_score
    return scores


def warm_up() -> None:
    """Compile (or load from the cache) every kernel for the array layouts the detector
    passes: whole blocks and column slices of them (``leaves[:, a:b]``)."""
    height = 2
    split_feature = np.zeros((1, 2**height - 1), dtype=np.int64)
    threshold = np.full((1, 2**height - 1), 0.5)
    leaves = walk_leaves(np.zeros((4, 1)), split_feature, threshold, height)
    mass = np.zeros((1, 2 ** (height + 1) - 1), dtype=np.int32)
    leaf_scores = np.zeros((1, 2**height))
    for block in (leaves, leaves[:, 1:3]):
        add_walks(block, mass, height)
        leaf_scores_of(block, leaf_scores, 1.0)
