"""The one small interface every window detector follows.

Modelled on river's ``anomaly`` API: ``learn_one``/``score_one`` on a mapping of
feature name to value, plus batch forms on a matrix whose columns are in
``feature_names`` order. High scores mean suspicious. Raw scores are not
comparable across detectors; ``detectors.calibration`` maps them to 0-100.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

FloatMatrix = npt.NDArray[np.float64]
FloatVector = npt.NDArray[np.float64]


@runtime_checkable
class WindowDetector(Protocol):
    """A detector of anomalous windows. Implementations must be picklable and
    deterministic for a given seed, and must not mutate their inputs."""

    feature_names: tuple[str, ...]

    def learn_one(self, x: Mapping[str, float]) -> None: ...

    def score_one(self, x: Mapping[str, float]) -> float: ...

    def learn_many(self, X: FloatMatrix) -> None: ...

    def score_many(self, X: FloatMatrix) -> FloatVector: ...
