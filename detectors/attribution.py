"""Which features made a window unusual: ``top_features`` for events.

With the autoencoder, a feature's contribution is its share of the window's
reconstruction error. Without it (degraded mode), it is the feature's share of the
squared deviation from the running mean of normal windows, in units of their running
standard deviation (:class:`RunningMoments`, learned from the same non-suspicious
windows Half-Space Trees learn from).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from detectors.base import FloatMatrix, FloatVector

TopFeatures = list[list[tuple[str, float]]]


def top_contributions(
    per_feature: FloatMatrix, feature_names: Sequence[str], k: int = 3
) -> TopFeatures:
    """For each row, the ``k`` largest positive contributions as (name, share of the row
    total, 4 decimals), largest first. Rows with no signal (all zero or NaN) get []."""
    values = np.maximum(np.nan_to_num(np.asarray(per_feature, dtype=np.float64), nan=0.0), 0.0)
    if values.shape[0] == 0:
        return []
    k = min(k, values.shape[1])
    totals = values.sum(axis=1)
    # the k largest per row without a full sort, then ordered largest first
    top = np.argpartition(-values, k - 1, axis=1)[:, :k] if k < values.shape[1] else None
    order = np.argsort(-values, axis=1, kind="stable")[:, :k] if top is None else top
    picked = np.take_along_axis(values, order, axis=1)
    within = np.argsort(-picked, axis=1, kind="stable")
    order = np.take_along_axis(order, within, axis=1)
    picked = np.take_along_axis(picked, within, axis=1)
    shares = np.round(picked / np.where(totals > 0, totals, 1.0)[:, None], 4)
    names = np.asarray(list(feature_names), dtype=object)[order]
    result: TopFeatures = [
        list(zip(row_names, row_shares, strict=True))
        for row_names, row_shares in zip(names.tolist(), shares.tolist(), strict=True)
    ]
    # rare: rows with fewer than k positive contributions keep only the positive ones
    for row in np.flatnonzero((picked <= 0).any(axis=1)).tolist():
        result[row] = [(n, s) for n, s in result[row] if s > 0] if totals[row] > 0 else []
    return result


@dataclass
class RunningMoments:
    """Per-feature running mean and variance with exponential forgetting (fixed size)."""

    n_features: int
    half_life: float = 100_000.0
    weight: float = field(init=False, default=0.0)
    mean: FloatVector = field(init=False)
    second: FloatVector = field(init=False)

    def __post_init__(self) -> None:
        self.mean = np.zeros(self.n_features, dtype=np.float64)
        self.second = np.zeros(self.n_features, dtype=np.float64)

    def update(self, X: FloatMatrix) -> None:
        rows = np.asarray(X, dtype=np.float64)
        if rows.shape[0] == 0:
            return
        decay = 0.5 ** (rows.shape[0] / self.half_life)
        batch_mean = rows.mean(axis=0)
        batch_second = (rows**2).mean(axis=0)
        old, new = self.weight * decay, float(rows.shape[0])
        self.mean = (old * self.mean + new * batch_mean) / (old + new)
        self.second = (old * self.second + new * batch_second) / (old + new)
        self.weight = old + new

    def squared_deviation(self, X: FloatMatrix, floor: float = 0.01) -> FloatMatrix:
        """((x - mean) / std)**2 per feature; std floored so constants do not explode."""
        std = np.sqrt(np.maximum(self.second - self.mean**2, 0.0))
        z = (np.asarray(X, dtype=np.float64) - self.mean) / np.maximum(std, floor)
        return np.asarray(z**2, dtype=np.float64)
