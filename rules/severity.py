"""Confidence, value at risk and severity of an event (pure functions)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

SEVERITIES: tuple[str, ...] = ("info", "low", "medium", "high", "critical")


def combine_confidence(cue_confidences: Iterable[float]) -> float:
    """Noisy-or of independent cues: 1 - prod(1 - c).

    >>> round(combine_confidence([0.9, 0.5]), 3)
    0.95
    >>> combine_confidence([])
    0.0
    """
    miss = 1.0
    for c in cue_confidences:
        miss *= 1.0 - min(max(c, 0.0), 1.0)
    return 1.0 - miss


def unbilled_kwh(expected_w: float, reported_w: float, span_s: float) -> float:
    """Energy the meter did not bill over ``span_s``: (expected - reported) x time, >= 0.

    >>> unbilled_kwh(600.0, 100.0, 3600.0)
    0.5
    >>> unbilled_kwh(100.0, 600.0, 3600.0)
    0.0
    """
    return max(expected_w - reported_w, 0.0) * max(span_s, 0.0) / 3.6e6


def severity_for(
    theft_likely: bool,
    confidence: float,
    est_kwh: float,
    peak_score: float,
    bands: Mapping[str, float],
) -> str:
    """Severity from confidence x value at risk (kWh) for theft; anomalies stay low.

    >>> bands = {"low_kwh": 0.1, "medium_kwh": 1.0, "high_kwh": 5.0, "critical_kwh": 25.0}
    >>> severity_for(True, 0.9, 10.0, 80.0, bands)
    'high'
    >>> severity_for(True, 0.9, 0.01, 80.0, bands)
    'low'
    >>> severity_for(False, 0.0, 10.0, 99.0, bands)
    'low'
    """
    if not theft_likely:
        return "low" if peak_score >= 99.0 else "info"
    risk = confidence * est_kwh
    if risk >= bands["critical_kwh"]:
        return "critical"
    if risk >= bands["high_kwh"]:
        return "high"
    if risk >= bands["medium_kwh"]:
        return "medium"
    # a theft cue is never just "info": someone should look, even before the risk adds up
    return "low"


def severity_rank(severity: str) -> int:
    """Position of a severity in SEVERITIES (info = 0)."""
    return SEVERITIES.index(severity)
