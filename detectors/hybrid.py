"""The engine's one entry point to the models: HST + frozen autoencoder + calibration.

    scorer = HybridScorer.create(feature_names=FEATURE_NAMES,
                                 artifact_path=settings.model_artifact, seed=0)
    res = scorer.score_windows(X, learn_mask)
    res.hst, res.ae, res.hybrid   # (K,) calibrated 0-100; ae is NaN without an artifact
    res.top_features              # K lists of (feature name, share), largest first

Per batch: every window is scored first; then Half-Space Trees, the HST calibration and
the fallback attribution statistics learn from the windows in ``learn_mask`` only (the
windows the engine does not suspect), so theft cannot teach the model that theft is
normal, and no window is judged by a model that has already seen it.

The hybrid score is the mean of the two calibrated scores (weight ``AE_WEIGHT`` = 0.5).
Both are on the same -log10 tail-probability scale, so the mean is the geometric mean of
the two tail probabilities: a window must look unusual to both models to score near 100,
and one model alone can lift it to at most 50. On a held-out simulated fleet its window
AUC matched the autoencoder's overall and beat both models on bypass, while the max of
the two doubled the clean windows over 50 (tests/benchmarks/test_bench_models.py). When
the autoencoder is missing, or HST is still in its first mass window, the hybrid is the
score that exists.

A missing or corrupt artifact is a degraded mode (HST only, logged once at WARNING),
never a crash; an artifact trained on another feature list is an error, because scoring
would silently mix up columns.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import numpy.typing as npt

from detectors.attribution import RunningMoments, TopFeatures, top_contributions
from detectors.autoencoder import ArtifactError, AutoencoderDetector
from detectors.base import FloatMatrix, FloatVector
from detectors.calibration import StreamingTailCalibrator
from detectors.hst import HalfSpaceTreesDetector, UnitIntervalMap

log = logging.getLogger(__name__)

HST_VERSION = "hst-1"
AE_WEIGHT = 0.5
TOP_K = 3
WALK_BLOCK_WINDOWS = 2000
"""Windows walked through the trees per call (a multiple of the learn chunk)."""


@dataclass(frozen=True)
class ScoreResult:
    """Scores of one batch of K windows; row order is the input's.

    ``attribution`` is each feature's contribution per window (autoencoder squared
    reconstruction error, or squared deviation from normal in degraded mode).
    ``top_features`` turns all K rows into (name, share) lists on first access;
    ``top_features_at(rows)`` does only the rows asked for (e.g. flagged windows), which
    is much cheaper when few windows are flagged.
    """

    hst: FloatVector
    ae: FloatVector
    hybrid: FloatVector
    hst_raw: FloatVector
    ae_raw: FloatVector
    attribution: FloatMatrix
    feature_names: tuple[str, ...]

    @cached_property
    def top_features(self) -> TopFeatures:
        return top_contributions(self.attribution, self.feature_names, TOP_K)

    def top_features_at(self, rows: npt.NDArray[np.intp]) -> TopFeatures:
        return top_contributions(self.attribution[rows], self.feature_names, TOP_K)


def _same_map(a: UnitIntervalMap, b: UnitIntervalMap) -> bool:
    return (
        a.feature_names == b.feature_names
        and np.array_equal(a.low, b.low)
        and np.array_equal(a.span, b.span)
        and np.array_equal(a.has_range, b.has_range)
    )


def _stable_order(ends: npt.NDArray[np.int64]) -> npt.NDArray[np.intp]:
    """``np.argsort(ends, kind="stable")``, faster for window ends: they step by a common
    hop, so ``(ends - min) // gcd`` is an order-preserving map onto small integers, and
    numpy sorts 16-bit keys stably by radix (4-5x faster than merging int64 keys)."""
    if ends.size == 0 or ends.dtype.kind != "i" or int(ends.max()) - int(ends.min()) >= 2**62:
        return np.argsort(ends, kind="stable")
    offsets = ends.astype(np.int64) - ends.min()
    step = int(np.gcd.reduce(offsets))
    if step == 0:
        return np.arange(ends.size)
    keys = offsets // step
    if keys.max() >= 2**16:
        return np.argsort(ends, kind="stable")
    return np.argsort(keys.astype(np.uint16), kind="stable")


class HybridScorer:
    """HST (online, shared) + frozen autoencoder, calibrated and combined. Picklable."""

    def __init__(
        self,
        hst: HalfSpaceTreesDetector,
        autoencoder: AutoencoderDetector | None,
        *,
        hst_calibration: StreamingTailCalibrator | None = None,
        ae_weight: float = AE_WEIGHT,
    ) -> None:
        if not 0.0 <= ae_weight <= 1.0:
            raise ValueError("ae_weight must be in [0, 1]")
        if autoencoder is not None:
            autoencoder.check_features(hst.feature_names)
        self.feature_names = hst.feature_names
        self.hst = hst
        self.autoencoder = autoencoder
        self.hst_calibration = hst_calibration or StreamingTailCalibrator()
        self.normal_moments = RunningMoments(len(self.feature_names))
        self.ae_weight = ae_weight
        # windows per score-then-learn step inside one batch: half a mass window, so the
        # reference masses pivot at most about twice per step
        self.learn_chunk = max(1, hst.window_size // 2)

    @classmethod
    def create(
        cls,
        feature_names: Sequence[str],
        artifact_path: Path | None,
        seed: int = 0,
        *,
        n_trees: int = 10,
        height: int = 8,
        window_size: int = 1000,
        feature_ranges: Mapping[str, tuple[float, float]] | None = None,
        calibration_min_count: float = 500.0,
    ) -> HybridScorer:
        """Build the scorer; ``artifact_path=None`` means HST only, on purpose.

        ``feature_ranges`` defaults to the physical ranges published by
        ``detectors.features.FEATURE_RANGES`` (for the features it knows); features
        without a range are squashed (see :class:`detectors.hst.UnitIntervalMap`).
        """
        if feature_ranges is None:
            from detectors.features import FEATURE_RANGES

            feature_ranges = {n: FEATURE_RANGES[n] for n in feature_names if n in FEATURE_RANGES}
        hst = HalfSpaceTreesDetector(
            feature_names,
            n_trees=n_trees,
            height=height,
            window_size=window_size,
            seed=seed,
            ranges=feature_ranges,
        )
        autoencoder: AutoencoderDetector | None = None
        if artifact_path is not None:
            try:
                autoencoder = AutoencoderDetector.load(Path(artifact_path))
            except ArtifactError as exc:
                log.warning("autoencoder disabled, scoring with Half-Space Trees only: %s", exc)
        return cls(
            hst,
            autoencoder,
            hst_calibration=StreamingTailCalibrator(min_count=calibration_min_count),
        )

    @property
    def shared_unit_map(self) -> bool:
        """The artifact's input map is HST's (both use the physical ranges, normally):
        then a batch is mapped to [0, 1] once for both models. A property, not state, so
        a pickled scorer (snapshots) keeps its layout."""
        return self.autoencoder is not None and _same_map(
            self.hst.unit_map, self.autoencoder.scaler.unit_map
        )

    @property
    def artifact_loaded(self) -> bool:
        return self.autoencoder is not None

    @property
    def model_version(self) -> str:
        if self.autoencoder is None:
            return HST_VERSION
        return f"{HST_VERSION}+ae-{self.autoencoder.content_hash[:8]}"

    def score_windows(
        self,
        X: FloatMatrix,
        learn_mask: npt.NDArray[np.bool_] | None = None,
        *,
        window_end_ms: npt.NDArray[np.int64] | None = None,
    ) -> ScoreResult:
        """Score K windows; HST learns the ones in ``learn_mask`` (default: none).

        The batch is walked in chunks of ``learn_chunk`` windows (in ``window_end_ms``
        order when given, else row order): each chunk is scored by the model as it is,
        then its unsuspected windows are learned. So a batch of a whole day (a replay)
        is scored like a stream would be, and a window is never judged by a model that has
        already learned it. Results are in row order.
        """
        matrix = np.asarray(X, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[1] != len(self.feature_names):
            raise ValueError(
                f"expected a (K, {len(self.feature_names)}) matrix, got shape {matrix.shape}"
            )
        n_windows = matrix.shape[0]
        learn = (
            np.zeros(n_windows, dtype=np.bool_)
            if learn_mask is None
            else np.asarray(learn_mask, dtype=np.bool_)
        )
        if learn.shape != (n_windows,):
            raise ValueError(f"learn_mask must have shape ({n_windows},), got {learn.shape}")
        if window_end_ms is None:
            walk = np.arange(n_windows)
        else:
            ends = np.asarray(window_end_ms)
            if ends.shape != (n_windows,):
                raise ValueError(f"window_end_ms must have shape ({n_windows},)")
            walk = _stable_order(ends)

        hst_raw = np.zeros(n_windows, dtype=np.float64)
        hst_score = np.zeros(n_windows, dtype=np.float64)
        hst_usable = np.zeros(n_windows, dtype=np.bool_)
        degraded = self.autoencoder is None
        attribution = np.zeros_like(matrix) if degraded else np.empty((0, 0))
        # elementwise, so mapping the batch once equals mapping each chunk
        unit = self.hst.unit_map(matrix)
        # the trees are walked a block of chunks at a time (the leaves do not depend on the
        # masses, and numpy works faster on ~2,000 windows than on 500)
        walk_block = self.learn_chunk * max(1, WALK_BLOCK_WINDOWS // self.learn_chunk)
        leaves = np.empty((0, 0), dtype=np.int64)
        for start in range(0, n_windows, self.learn_chunk):
            if start % walk_block == 0:
                leaves = self.hst.leaves(unit[walk[start : start + walk_block]])
            rows = walk[start : start + self.learn_chunk]
            rows_learn = learn[rows]
            was_ready, calibrated = self.hst.ready, self.hst_calibration.ready
            at = start % walk_block
            raw = self.hst.score_then_learn_leaves(
                leaves[:, at : at + self.learn_chunk], rows_learn
            )
            hst_raw[rows] = raw
            if was_ready:
                hst_score[rows] = self.hst_calibration.score(raw)
                hst_usable[rows] = calibrated
                # out-of-sample raw scores: computed before the model saw these windows
                self.hst_calibration.update(raw[rows_learn])
            if degraded:
                chunk_unit = unit[rows]
                if self.normal_moments.weight > 0.0:
                    attribution[rows] = self.normal_moments.squared_deviation(chunk_unit)
                self.normal_moments.update(chunk_unit[rows_learn])

        if self.autoencoder is not None:
            attribution = self.autoencoder.reconstruction_errors(
                matrix, unit if self.shared_unit_map else None
            )
            ae_raw = np.asarray(attribution.mean(axis=1), dtype=np.float64)
            ae_score = self.autoencoder.calibrated(ae_raw)
            mixed = self.ae_weight * ae_score + (1.0 - self.ae_weight) * hst_score
            hybrid = np.where(hst_usable, mixed, ae_score)
        else:
            ae_raw = np.full(n_windows, np.nan)
            ae_score = np.full(n_windows, np.nan)
            hybrid = hst_score.copy()

        return ScoreResult(
            hst=hst_score,
            ae=np.asarray(ae_score, dtype=np.float64),
            hybrid=np.asarray(hybrid, dtype=np.float64),
            hst_raw=hst_raw,
            ae_raw=ae_raw,
            attribution=attribution,
            feature_names=self.feature_names,
        )

    # -- WindowDetector form (calibrated hybrid score), for the contract suite -------------

    def score_many(self, X: FloatMatrix) -> FloatVector:
        return self.score_windows(X).hybrid

    def learn_many(self, X: FloatMatrix) -> None:
        matrix = np.asarray(X, dtype=np.float64)
        self.score_windows(matrix, np.ones(matrix.shape[0], dtype=np.bool_))

    def _row(self, x: Mapping[str, float]) -> FloatMatrix:
        return np.array([[float(x.get(name, np.nan)) for name in self.feature_names]])

    def score_one(self, x: Mapping[str, float]) -> float:
        return float(self.score_many(self._row(x))[0])

    def learn_one(self, x: Mapping[str, float]) -> None:
        self.learn_many(self._row(x))
