"""Raw detector scores to a common 0-100 scale, learned on NORMAL traffic only.

Both calibrators answer one question: under normal traffic, how likely is a raw score
at least this high? That upper-tail probability ``p`` becomes a "surprise" score

    score = 100 * min(1, -log10(p) / SURPRISE_DECADES)

so a typical normal window scores ~5-10, one in a hundred normal windows scores 50 and
one in ten thousand (``p = 1e-4``) scores 100. The mapping is fixed; only ``p`` is
learned, and it is learned from traffic judged normal (windows not under suspicion for
Half-Space Trees, held-out normal training windows for the autoencoder). It is never a
quantile of the batch being judged: a batch made entirely of theft scores high.

- :class:`StreamingTailCalibrator` (Half-Space Trees): a fixed-size histogram on a known
  raw range with exponential forgetting, updated online. Memory is constant (a few KB)
  however long it runs, and it follows the drift of the online model it calibrates.
- :class:`FrozenTailCalibrator` (autoencoder): knots of the tail probability computed once
  from a sample of normal raw scores, stored in the artifact, plus an exponential tail
  beyond the largest normal score so extreme windows still rank above each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

SURPRISE_DECADES = 4.0
"""Tail probability 10**-SURPRISE_DECADES maps to 100."""


def tail_probability_to_score(tail_p: FloatArray) -> FloatArray:
    """The fixed map from an upper-tail probability under normal traffic to 0-100."""
    clipped = np.clip(tail_p, 10.0 ** (-2 * SURPRISE_DECADES), 1.0)
    surprise = -np.log10(clipped) / SURPRISE_DECADES
    return np.asarray(100.0 * np.clip(surprise, 0.0, 1.0), dtype=np.float64)


@dataclass
class StreamingTailCalibrator:
    """Online tail probability of a bounded raw score, from a decaying histogram.

    ``half_life`` is in observations: a normal window seen ``half_life`` updates ago
    weighs half as much as a new one, so the calibration keeps up with a model that
    keeps learning. Until ``min_count`` (effective) normal observations have been seen
    the calibrator is not ready and :meth:`score` returns 0 (no evidence either way).
    """

    low: float = 0.0
    high: float = 1.0
    n_bins: int = 1000
    half_life: float = 100_000.0
    min_count: float = 500.0
    counts: FloatArray = field(init=False, repr=False)
    total: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        if not self.high > self.low:
            raise ValueError("high must exceed low")
        if self.n_bins < 2 or self.half_life <= 0 or self.min_count < 0:
            raise ValueError("n_bins >= 2, half_life > 0 and min_count >= 0 are required")
        self.counts = np.zeros(self.n_bins, dtype=np.float64)

    @property
    def ready(self) -> bool:
        return self.total >= self.min_count

    def _bins(self, raw: FloatArray) -> tuple[npt.NDArray[np.intp], FloatArray]:
        """Bin index of each raw value and its position inside the bin, in [0, 1)."""
        position = (np.asarray(raw, dtype=np.float64) - self.low) / (self.high - self.low)
        # NaN -> 0, +-inf -> the ends (what nan_to_num then clip gave), in place
        np.copyto(position, 0.0, where=np.isnan(position))
        np.clip(position, 0.0, 1.0, out=position)
        position *= self.n_bins
        index = np.minimum(position.astype(np.intp), self.n_bins - 1)
        return index, position - index

    def update(self, raw: FloatArray) -> None:
        """Fold normal raw scores in (NaNs are ignored)."""
        values = np.asarray(raw, dtype=np.float64)
        values = values[np.isfinite(values)]
        if values.size == 0:
            return
        decay = 0.5 ** (values.size / self.half_life)
        self.counts *= decay
        index, _ = self._bins(values)
        self.counts += np.bincount(index, minlength=self.n_bins)
        self.total = self.total * decay + float(values.size)

    def tail_probability(self, raw: FloatArray) -> FloatArray:
        """P(normal raw score >= raw), smoothed so it is never 0."""
        index, within = self._bins(raw)
        # counts strictly above each bin, then the part of the own bin above the value
        above = np.concatenate([np.cumsum(self.counts[::-1])[::-1][1:], [0.0]])
        mass_above = above[index] + self.counts[index] * (1.0 - within)
        return np.asarray((mass_above + 0.5) / (self.total + 1.0), dtype=np.float64)

    def score(self, raw: FloatArray) -> FloatArray:
        """Calibrated 0-100 score; 0 everywhere while not ready; NaN stays NaN."""
        values = np.asarray(raw, dtype=np.float64)
        if not self.ready:
            return np.where(np.isnan(values), np.nan, 0.0)
        scored = tail_probability_to_score(self.tail_probability(values))
        return np.where(np.isnan(values), np.nan, scored)


@dataclass(frozen=True)
class FrozenTailCalibrator:
    """Tail probability of a raw score from a fixed sample of normal scores.

    ``knots`` are raw scores (ascending) and ``neg_log10_tail`` the matching
    ``-log10 P(normal >= knot)``; between knots it interpolates linearly, beyond the
    last knot it extends the tail exponentially with ``tail_scale`` (the mean excess of
    the top 1% of the sample), so scores past every normal example still order.
    """

    knots: FloatArray
    neg_log10_tail: FloatArray
    tail_scale: float

    @classmethod
    def fit(cls, normal_raw: FloatArray, n_knots: int = 128) -> FrozenTailCalibrator:
        sample = np.sort(np.asarray(normal_raw, dtype=np.float64)[np.isfinite(normal_raw)])
        if sample.size < 20:
            raise ValueError(f"need at least 20 normal scores to calibrate, got {sample.size}")
        n = sample.size
        # tail probabilities from 1 down to 1/n, dense in the tail where alerts live
        tails = np.unique(
            np.concatenate(
                [np.linspace(1.0, 0.05, n_knots // 2), np.geomspace(0.05, 1.0 / n, n_knots // 2)]
            )
        )[::-1]
        knots = np.quantile(sample, 1.0 - tails, method="linear")
        knots, first = np.unique(knots, return_index=True)
        neg_log = -np.log10(tails[first])
        if knots.size < 2:
            raise ValueError("normal scores do not vary: nothing to calibrate against")
        top = sample[sample >= np.quantile(sample, 0.99)]
        scale = float(np.mean(top - top[0])) if top.size > 1 else 0.0
        if not scale > 0.0:
            scale = float(np.std(sample)) or 1.0
        return cls(knots=knots, neg_log10_tail=neg_log, tail_scale=scale)

    def tail_probability(self, raw: FloatArray) -> FloatArray:
        values = np.asarray(raw, dtype=np.float64)
        neg_log = np.interp(values, self.knots, self.neg_log10_tail)
        beyond = values > self.knots[-1]
        extra = (values - self.knots[-1]) / (self.tail_scale * np.log(10.0))
        neg_log = np.where(beyond, self.neg_log10_tail[-1] + extra, neg_log)
        return np.asarray(10.0 ** (-neg_log), dtype=np.float64)

    def score(self, raw: FloatArray) -> FloatArray:
        values = np.asarray(raw, dtype=np.float64)
        scored = tail_probability_to_score(self.tail_probability(values))
        return np.where(np.isnan(values), np.nan, scored)

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and floats, for the artifact."""
        return {
            "knots": [float(v) for v in self.knots],
            "neg_log10_tail": [float(v) for v in self.neg_log10_tail],
            "tail_scale": float(self.tail_scale),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FrozenTailCalibrator:
        knots = np.asarray(data["knots"], dtype=np.float64)
        neg_log = np.asarray(data["neg_log10_tail"], dtype=np.float64)
        scale = float(data["tail_scale"])
        if knots.ndim != 1 or knots.shape != neg_log.shape or knots.size < 2:
            raise ValueError("calibration knots malformed")
        if np.any(np.diff(knots) <= 0) or np.any(np.diff(neg_log) < 0) or not scale > 0:
            raise ValueError("calibration knots not monotone or tail scale not positive")
        return cls(knots=knots, neg_log10_tail=neg_log, tail_scale=scale)
