"""Compiled (numba) inner loops of the models: the map of features to [0, 1] and the
Half-Space Trees' walks (:mod:`detectors.hst`), the autoencoder's standardisation and
dense layers (:mod:`detectors.autoencoder`).

**Maps.** :func:`unit_map_ranged` and :func:`standardise_t` repeat the numpy forms
(``UnitIntervalMap.map_numpy``, ``FeatureScaler.transform``) element by element: the same
subtractions, divisions and clips (NaN and -0.0 kept as ``np.clip`` keeps them), so the
same bits (tests in ``test_models_hst.py`` and ``test_models_autoencoder.py``).

**Half-Space Trees.** The numpy form walks a batch level by level with three gathers over
the whole (trees x windows) block per level, each a separate pass over memory with its own
temporaries. The compiled walk keeps that order (one tree, one level, every window: the
windows' walks are independent, so the CPU overlaps their loads, where walking one window
to its leaf at a time waits on every level's loads) and does a level in one pass, about
2.5x faster. Same results bit for bit:

* the walk makes the same comparison (``value >= threshold`` goes right) on the same
  float64 values, so every window reaches the same leaf;
* node masses are integer counts, so adding one walk at a time equals numpy's bincount
  and level sums;
* a window's score sums the per-tree leaf scores, which are integers far below 2**53
  (see ``HalfSpaceTreesDetector._leaf_scores``), so the float sum is exact in any order,
  and ``1 - total / max_score`` is the same two operations as numpy's;
* the leaf scores themselves (recomputed at every mass pivot) add the same exact terms
  down each path.

**Autoencoder.** :func:`dense_layer` adds each output's products in input order, one
multiply and one add at a time, starting from the first product: the arithmetic pinned by
``tests/unit/test_models_autoencoder.py::test_inference_adds_products_in_feature_order``
(what ``np.einsum`` did). LLVM may run the windows side by side in SIMD lanes, which keeps
every window's own order of operations; without fastmath it does not fuse a multiply and
an add. ``tanh`` stays in numpy: its SIMD ``tanh`` and the C library's may differ in the
last bit.

``tests/unit/test_models_hst.py`` checks each tree kernel against its numpy form on random
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


# leaves come as whole blocks (C order), column slices of them (any layout) and masked
# picks (``leaves[:, mask]`` is Fortran-ordered): one compiled version for any layout,
# compiled (or loaded from the cache) at import, so that no new layout can ever start a
# compile in the middle of a worker's batch
@njit("void(int64[:, :], int32[:, :], int64)", cache=True)
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


@njit("float64[:](int64[:, :], float64[:, :], float64)", cache=True)
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


@njit(cache=True)
def leaf_scores_from_mass(reference_mass, height, limit):  # type: ignore[no-untyped-def]
    """River's score of a walk ending in each leaf, shape (T, 2**height), from the
    reference masses (T, 2**(height+1) - 1): down each path, add ``mass * 2**depth`` and
    stop after the first node whose mass is below ``limit`` (that node still counts). See
    ``HalfSpaceTreesDetector._leaf_scores_numpy``."""
    n_trees = reference_mass.shape[0]
    n_internal = 2**height - 1
    n_nodes = 2 * n_internal + 1
    total = np.empty(n_nodes, dtype=np.float64)
    going = np.empty(n_nodes, dtype=np.bool_)
    scores = np.empty((n_trees, n_internal + 1), dtype=np.float64)
    for t in range(n_trees):
        total[0] = float(reference_mass[t, 0])
        going[0] = reference_mass[t, 0] >= limit
        depth, next_level = 1, 3  # heap order: level d holds nodes 2**d - 1 .. 2**(d+1) - 2
        for node in range(1, n_nodes):
            if node == next_level:
                depth += 1
                next_level = 2 * next_level + 1
            parent = (node - 1) // 2
            mass = reference_mass[t, node]
            total[node] = total[parent]
            if going[parent]:
                total[node] += float(mass) * 2.0**depth
            going[node] = going[parent] and mass >= limit
        for leaf in range(n_internal + 1):
            scores[t, leaf] = total[n_internal + leaf]
    return scores


@njit(cache=True)
def dense_layer(weight, bias, inputs):  # type: ignore[no-untyped-def]
    """One linear layer in the transposed layout: ``weight`` (F, H), ``bias`` (H,),
    ``inputs`` (F, K) -> (H, K), each output the products of its inputs added in input
    order, then the bias."""
    n_in, n_out = weight.shape
    n_windows = inputs.shape[1]
    out = np.empty((n_out, n_windows), dtype=np.float64)
    for h in range(n_out):
        row = out[h]
        w0 = weight[0, h]
        for k in range(n_windows):
            row[k] = inputs[0, k] * w0
        for f in range(1, n_in):
            w = weight[f, h]
            for k in range(n_windows):
                row[k] += inputs[f, k] * w
        b = bias[h]
        for k in range(n_windows):
            row[k] += b
    return out


@njit(cache=True, inline="always")
def np_clip(x, lo, hi):  # type: ignore[no-untyped-def]
    """``np.clip`` of a float scalar: NaN stays NaN, -0.0 stays -0.0. (``stream.kernels``
    has its own copy: numba's cache does not notice a change in a function that a cached
    function of another file calls, so each kernel file keeps its helpers.)"""
    if x < lo:
        return lo
    if x > hi:
        return hi
    return x


@njit(cache=True)
def unit_map_ranged(values, low, span):  # type: ignore[no-untyped-def]
    """``UnitIntervalMap.__call__`` when every feature has a range: each value clipped to
    +-1e300, less ``low``, over ``span``, clipped to [0, 1]; NaN to 0.5. (K, F) -> (K, F)."""
    n_rows, n_features = values.shape
    unit = np.empty((n_rows, n_features), dtype=np.float64)
    for k in range(n_rows):
        for f in range(n_features):
            v = np_clip(values[k, f], -1e300, 1e300)
            v = np_clip((v - low[f]) / span[f], 0.0, 1.0)
            unit[k, f] = 0.5 if v != v else v
    return unit


@njit(cache=True)
def standardise_t(values, unit, mean, scale, modelled, z_clip):  # type: ignore[no-untyped-def]
    """``FeatureScaler.transform`` of mapped rows, transposed for :func:`dense_layer`:
    (unit - mean) / scale, 0 where the input was NaN or the feature is not modelled,
    clipped to +-``z_clip``. ``values``/``unit`` (K, F) -> (F, K)."""
    n_rows, n_features = values.shape
    z_t = np.empty((n_features, n_rows), dtype=np.float64)
    for f in range(n_features):
        m, s, keep = mean[f], scale[f], modelled[f]
        for k in range(n_rows):
            z = (unit[k, f] - m) / s
            if values[k, f] != values[k, f] or not keep:
                z = 0.0
            z_t[f, k] = np_clip(z, -z_clip, z_clip)
    return z_t


def warm_up() -> None:
    """Compile (or load from the cache) the kernels that numba compiles on first use;
    ``add_walks`` and ``leaf_scores_of`` carry their one signature and are ready at
    import."""
    height = 2
    split_feature = np.zeros((1, 2**height - 1), dtype=np.int64)
    walk_leaves(np.zeros((4, 1)), split_feature, np.full((1, 2**height - 1), 0.5), height)
    leaf_scores_from_mass(np.zeros((1, 2 ** (height + 1) - 1), dtype=np.int32), height, 0.5)
    dense_layer(np.ones((2, 3)), np.zeros(3), np.ones((2, 4)))
    values = np.ones((4, 2))
    unit = unit_map_ranged(values, np.zeros(2), np.ones(2))
    standardise_t(values, unit, np.zeros(2), np.ones(2), np.ones(2, np.bool_), 5.0)
