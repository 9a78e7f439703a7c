"""Events: anomalous windows of one meter grouped in time (contract section 4).

An event opens on the first flagged window, takes in every flagged window that follows
within ``quiet_period_s`` (the gap tolerance), and closes once the meter's event time has
gone ``quiet_period_s`` past its last flagged window. A physical theft cue on a meter whose
open event is a plain anomaly closes that event and opens a theft event, so that
``detected_at`` of a theft event is the time the theft was first flagged.

The tracker holds one small record per meter WITH an open event (not per meter), is
deterministic and picklable. Updates are batched: one new version per event per
:meth:`EventTracker.drain`, and alerts only on a first raise, material risk growth, a
higher severity, or the close (resolve) of an alerted event.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rules.severity import combine_confidence, severity_for, severity_rank

SCHEMA = "meterwatch.event.v1"


def event_id_for(meter_id: str, start_ms: int) -> str:
    """Deterministic id from meter and start: replay, stream and restarts agree.

    >>> event_id_for("MTR-000001", 1767571200000)
    'ev-3bf84a4f777d2aa2'
    """
    digest = hashlib.blake2b(f"{meter_id}|{start_ms}".encode(), digest_size=8).hexdigest()
    return f"ev-{digest}"


def iso_utc(ms: int) -> str:
    """Epoch ms as an ISO-8601 UTC string with milliseconds.

    >>> iso_utc(1767571200000)
    '2026-01-05T00:00:00.000Z'
    """
    return datetime.fromtimestamp(ms / 1000.0, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class Event:
    event_id: str
    meter_id: str
    gateway_id: str | None
    start_ms: int
    end_ms: int
    detected_at_ms: int
    last_flag_ms: int
    theft_likely: bool
    model_version: str
    version: int = 0
    status: str = "open"
    peak_score: float = 0.0
    score_sum: float = 0.0
    n_windows: int = 0
    est_unbilled_kwh: float = 0.0
    confidence: float = 0.0
    severity: str = "info"
    cues: dict[str, dict[str, Any]] = field(default_factory=dict)
    top_features: list[tuple[str, float]] = field(default_factory=list)
    alerted_risk: float = -1.0
    alerted_severity: str = ""

    @property
    def mean_score(self) -> float:
        return self.score_sum / self.n_windows if self.n_windows else 0.0

    def to_json(self) -> dict[str, Any]:
        """The event as contract JSON (schema ``meterwatch.event.v1``)."""
        return {
            "schema": SCHEMA,
            "event_id": self.event_id,
            "version": self.version,
            "meter_id": self.meter_id,
            "gateway_id": self.gateway_id,
            "start": iso_utc(self.start_ms),
            "end": iso_utc(self.end_ms),
            "detected_at": iso_utc(self.detected_at_ms),
            "status": self.status,
            "peak_score": round(float(self.peak_score), 3),
            "mean_score": round(float(self.mean_score), 3),
            "severity": self.severity,
            "theft_likely": self.theft_likely,
            "cues": [
                {"id": c["id"], "name": name, "evidence": dict(c["evidence"])}
                # strongest first (the alert's "top cue"), ties by id so the order is stable
                for name, c in sorted(
                    self.cues.items(), key=lambda kv: (-float(kv[1]["conf"]), str(kv[1]["id"]))
                )
            ],
            "top_features": [
                {"name": n, "contribution": round(float(v), 6)} for n, v in self.top_features
            ],
            "est_unbilled_kwh": round(float(self.est_unbilled_kwh), 4),
            "model_version": self.model_version,
        }


@dataclass(frozen=True)
class FlaggedWindow:
    """One anomalous window of one meter, as the engine hands it to the tracker."""

    meter_id: str
    gateway_id: str | None
    window_start_ms: int
    window_end_ms: int
    score: float
    theft: bool
    cues: Mapping[str, tuple[str, float, Mapping[str, float]]]  # name -> (id, conf, evidence)
    unbilled_kwh: float
    top_features: tuple[tuple[str, float], ...]


#: the fields of :class:`Event` that hold mutable containers, copied by :func:`event_copy`
MUTABLE_EVENT_FIELDS = ("cues", "top_features")


def event_copy(ev: Event) -> Event:
    """An independent copy of an event (what ``copy.deepcopy`` gives, 5-10x cheaper):
    scalar fields are immutable, ``cues`` is a dict of small dicts whose values are
    immutable except the evidence dict, ``top_features`` a list of (name, value) tuples."""
    snap = Event.__new__(Event)
    snap.__dict__.update(ev.__dict__)
    snap.cues = {name: {**cue, "evidence": dict(cue["evidence"])} for name, cue in ev.cues.items()}
    snap.top_features = list(ev.top_features)
    return snap


class EventTracker:
    """Open, update and close events; collect updates and alerts to emit."""

    def __init__(self, thresholds: Mapping[str, Mapping[str, float]], model_version: str):
        ev = thresholds["events"]
        self.quiet_ms = int(ev["quiet_period_s"] * 1000)
        self.realert_growth = float(ev["realert_growth_ratio"])
        self.bands = dict(thresholds["severity"])
        self.model_version = model_version
        self.open: dict[str, Event] = {}
        self._touched: dict[str, Event] = {}

    # ----------------------------------------------------------------- lifecycle
    def _close(self, ev: Event) -> None:
        ev.status = "closed"
        ev.end_ms = max(ev.end_ms, ev.last_flag_ms)
        self._touched[ev.event_id] = ev
        del self.open[ev.meter_id]

    def flag(self, w: FlaggedWindow) -> None:
        ev = self.open.get(w.meter_id)
        if ev is not None and (
            w.window_end_ms - ev.last_flag_ms > self.quiet_ms or (w.theft and not ev.theft_likely)
        ):
            self._close(ev)
            ev = None
        if ev is None:
            ev = Event(
                event_id=event_id_for(w.meter_id, w.window_start_ms),
                meter_id=w.meter_id,
                gateway_id=w.gateway_id,
                start_ms=w.window_start_ms,
                end_ms=w.window_end_ms,
                detected_at_ms=w.window_end_ms,
                last_flag_ms=w.window_end_ms,
                theft_likely=w.theft,
                model_version=self.model_version,
            )
            self.open[w.meter_id] = ev
        ev.end_ms = max(ev.end_ms, w.window_end_ms)
        ev.last_flag_ms = max(ev.last_flag_ms, w.window_end_ms)
        if w.gateway_id is not None:
            ev.gateway_id = w.gateway_id
        ev.n_windows += 1
        ev.score_sum += w.score
        ev.peak_score = max(ev.peak_score, w.score)
        ev.est_unbilled_kwh += w.unbilled_kwh
        for name, (cue_id, conf, evidence) in w.cues.items():
            prev = ev.cues.get(name)
            if prev is None:
                ev.cues[name] = {"id": cue_id, "conf": conf, "evidence": dict(evidence)}
            else:
                prev["evidence"] = dict(evidence)  # latest evidence of a still-firing cue
        if w.top_features:
            ev.top_features = list(w.top_features)
        ev.confidence = combine_confidence(float(c["conf"]) for c in ev.cues.values())
        ev.severity = severity_for(
            ev.theft_likely, ev.confidence, ev.est_unbilled_kwh, ev.peak_score, self.bands
        )
        self._touched[ev.event_id] = ev

    def advance(self, meter_id: str, now_ms: int) -> None:
        """The meter's event time reached ``now_ms``: close its event if quiet long enough."""
        ev = self.open.get(meter_id)
        if ev is not None and now_ms - ev.last_flag_ms > self.quiet_ms:
            self._close(ev)

    def close_all(self) -> None:
        for ev in list(self.open.values()):
            self._close(ev)

    # ----------------------------------------------------------------- output
    def drain(self) -> tuple[list[Event], list[Event]]:
        """(event updates, alerts) since the last drain; each event once, version + 1."""
        updates: list[Event] = []
        alerts: list[Event] = []
        for ev in self._touched.values():
            ev.version += 1
            updates.append(event_copy(ev))
            if not ev.theft_likely:
                continue
            risk = ev.confidence * ev.est_unbilled_kwh
            first = ev.alerted_risk < 0
            grew = not first and risk >= max(ev.alerted_risk, 0.05) * self.realert_growth
            higher = bool(ev.alerted_severity) and severity_rank(ev.severity) > severity_rank(
                ev.alerted_severity
            )
            resolve = ev.status == "closed" and not first
            if first or grew or higher or resolve:
                ev.alerted_risk = risk
                ev.alerted_severity = ev.severity
                alerts.append(updates[-1])
        self._touched = {}
        return updates, alerts
