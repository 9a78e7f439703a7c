"""Window-level evaluation of detector scores against simulator labels (offline only).

Labels never reach detection: these helpers are used by tests and benchmarks after the
engine has scored everything.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from detectors.base import FloatVector

BoolVector = npt.NDArray[np.bool_]


def roc_auc(scores: FloatVector, positive: BoolVector) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties).

    NaN scores count as the lowest score. Needs at least one positive and one negative.
    """
    values = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf)
    labels = np.asarray(positive, dtype=np.bool_)
    n_pos = int(labels.sum())
    n_neg = int(labels.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUC needs both positive and negative examples")
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    average_rank = np.cumsum(counts) - (counts - 1) / 2.0
    ranks = average_rank[inverse]
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


@dataclass(frozen=True)
class WindowTruth:
    """Per-window ground truth: ``theft`` (window overlaps a theft interval of its
    meter), ``clean`` (the meter never steals), and the theft type (or "")."""

    theft: BoolVector
    clean: BoolVector
    theft_type: npt.NDArray[np.str_]


def window_truth(
    labels_path: Path,
    meter_ids: Sequence[str],
    window_end_ms: npt.NDArray[np.int64],
    window_ms: int,
) -> WindowTruth:
    """Label windows from a ``meterwatch.labels.v1`` file."""
    document = json.loads(labels_path.read_text(encoding="utf-8"))
    intervals: dict[str, list[tuple[int, int, str]]] = {}
    for meter in document["meters"]:
        intervals[meter["meter_id"]] = [
            (int(t["start_ms"]), int(t["end_ms"]), str(t["type"])) for t in meter["theft"]
        ]
    ends = np.asarray(window_end_ms, dtype=np.int64)
    ids = np.asarray(meter_ids, dtype=object)
    theft = np.zeros(ends.size, dtype=np.bool_)
    clean = np.zeros(ends.size, dtype=np.bool_)
    kind = np.full(ends.size, "", dtype=object)
    for meter in np.unique(ids):
        rows = np.flatnonzero(ids == meter)
        spans = intervals.get(str(meter), [])
        if not spans:
            clean[rows] = True
            continue
        for start, end, theft_type in spans:
            overlap = (ends[rows] > start) & (ends[rows] - window_ms < end)
            theft[rows[overlap]] = True
            kind[rows[overlap]] = theft_type
    return WindowTruth(theft=theft, clean=clean, theft_type=kind.astype(np.str_))
