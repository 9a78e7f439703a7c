"""Prometheus metrics of the streaming worker (data contracts, section 6).

Every metric is registered on a ``CollectorRegistry`` passed in, so tests and
benchmarks build their own registry and several workers can live in one process.
Label values are bounded: reasons, forms, detectors, severities, rule ids,
partitions and sink names. Nothing is ever labelled by meter.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from stream.engine import ENGINE_STAGES

SCORE_BUCKETS = (5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 95.0, 100.0)
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0)
BATCH_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DETECTORS = ("hst", "ae", "hybrid")
SINKS = ("redis", "alertmanager", "kafka")
# why a partition snapshot was not restored: another format or state-shaping settings
# (window/hop changed by an upgrade), or bytes that do not decode as a snapshot
SNAPSHOT_RESTORE_FAILURE_REASONS = ("incompatible", "corrupt")


class StreamMetrics:
    """The worker's metrics, all on one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.readings = Counter(
            "meterwatch_readings", "Readings accepted by the engine", registry=registry
        )
        self.messages = Counter(
            "meterwatch_messages",
            "Kafka messages consumed, by form",
            ["form"],
            registry=registry,
        )
        self.rejected = Counter(
            "meterwatch_rejected",
            "Messages or readings rejected to the dead-letter topic, by reason",
            ["reason"],
            registry=registry,
        )
        self.duplicates = Counter(
            "meterwatch_duplicates",
            "Duplicate readings dropped (same meter and ts)",
            registry=registry,
        )
        self.windows_scored = Counter(
            "meterwatch_windows_scored", "Windows scored", registry=registry
        )
        self.comms_gap_windows = Counter(
            "meterwatch_comms_gap_windows",
            "Windows with a comms gap (data-quality fact, never theft on its own)",
            registry=registry,
        )
        self.window_score = Histogram(
            "meterwatch_window_score",
            "Window scores 0-100, by detector",
            ["detector"],
            buckets=SCORE_BUCKETS,
            registry=registry,
        )
        self.open_events = Gauge(
            "meterwatch_open_events", "Events currently open", registry=registry
        )
        self.alerts = Counter(
            "meterwatch_alerts",
            "Theft alerts raised (first raise or material update), by severity and top cue",
            ["severity", "cue"],
            registry=registry,
        )
        self.est_unbilled_kwh = Counter(
            "meterwatch_est_unbilled_kwh",
            "Estimated unbilled energy of raised alerts, kWh",
            ["severity"],
            registry=registry,
        )
        self.scoring_latency = Histogram(
            "meterwatch_scoring_latency_seconds",
            "Reading published (Kafka record time) to window scored",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.alert_latency = Histogram(
            "meterwatch_alert_latency_seconds",
            "Reading published (Kafka record time) to alert written in Redis",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "meterwatch_consumer_lag_messages",
            "Messages behind the partition's high-water mark",
            ["partition"],
            registry=registry,
        )
        self.state_bytes = Gauge(
            "meterwatch_state_bytes", "Engine state held by this worker, bytes", registry=registry
        )
        self.meters_tracked = Gauge(
            "meterwatch_meters_tracked", "Meters with state in this worker", registry=registry
        )
        self.meters_reporting = Gauge(
            "meterwatch_meters_reporting",
            "Meters with a reading in the last window",
            registry=registry,
        )
        self.gateways_seen = Gauge(
            "meterwatch_gateways_seen", "Gateways seen by this worker", registry=registry
        )
        self.gateways_silent = Gauge(
            "meterwatch_gateways_silent",
            "Gateways seen before but silent in the last window",
            registry=registry,
        )
        self.sink_retries = Counter(
            "meterwatch_sink_retries",
            "Retries of a sink write after a failure",
            ["sink"],
            registry=registry,
        )
        self.snapshot_restore_failures = Counter(
            "meterwatch_snapshot_restore_failures",
            "Partition snapshots that could not be restored; the partition started fresh",
            ["reason"],
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "meterwatch_batch_seconds",
            "Wall time to process one micro-batch (decode, engine, sinks)",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.engine_seconds = Counter(
            "meterwatch_engine_seconds",
            "Seconds the engine spent per stage: admit (validate, order), pane_rounds "
            "(facts, windows, rules), models (features, HST, autoencoder), events",
            ["stage"],
            registry=registry,
        )
        self.model = Info(
            "meterwatch_model", "Model version per detector", ["detector"], registry=registry
        )
        self.model_artifact_loaded = Gauge(
            "meterwatch_model_artifact_loaded",
            "1 when the frozen autoencoder artifact is loaded",
            registry=registry,
        )
        # Children exist from the start so dashboards show zeros, not gaps.
        for detector in DETECTORS:
            self.window_score.labels(detector=detector)
        for sink in SINKS:
            self.sink_retries.labels(sink=sink)
        for form in ("single", "batch"):
            self.messages.labels(form=form)
        for reason in SNAPSHOT_RESTORE_FAILURE_REASONS:
            self.snapshot_restore_failures.labels(reason=reason)
        for stage in ENGINE_STAGES:
            self.engine_seconds.labels(stage=stage)

    # --- input ------------------------------------------------------------------
    def count_message(self, form: str) -> None:
        self.messages.labels(form=form).inc()

    def count_messages(self, *, batch: int, single: int) -> None:
        """Messages of one micro-batch by form (one counter update per form, not per
        message)."""
        if batch:
            self.messages.labels(form="batch").inc(batch)
        if single:
            self.messages.labels(form="single").inc(single)

    def count_rejections(self, rejections: Iterable[Any]) -> None:
        for rejection in rejections:
            self.rejected.labels(reason=str(rejection.reason)).inc()

    # --- engine output ----------------------------------------------------------
    def observe_engine_output(self, out: Any) -> None:
        """Counters and score histograms of one ``EngineOutput``."""
        self.readings.inc(int(out.readings_accepted))
        self.duplicates.inc(int(out.duplicates))
        self.windows_scored.inc(int(out.windows_scored))
        for stage, seconds in getattr(out, "stage_seconds", {}).items():
            if stage in ENGINE_STAGES and seconds > 0:
                self.engine_seconds.labels(stage=stage).inc(seconds)
        gaps = getattr(out, "comms_gap_windows", 0)
        if gaps:
            self.comms_gap_windows.inc(int(gaps))
        scores = getattr(out, "scores", None) or {}
        for detector, values in scores.items():
            if detector not in DETECTORS:
                continue
            observe_many(self.window_score.labels(detector=detector), values)

    def count_alerts(self, alerts: Sequence[Any]) -> None:
        """Alerts raised now (not resolves): by severity and top cue."""
        for alert in alerts:
            if _field(alert, "status") == "closed":
                continue
            severity = str(_field(alert, "severity"))
            self.alerts.labels(severity=severity, cue=top_cue_id(alert)).inc()
            kwh = _field(alert, "est_unbilled_kwh") or 0.0
            if kwh > 0:
                self.est_unbilled_kwh.labels(severity=severity).inc(float(kwh))

    def observe_scoring_latency(self, seconds: float, windows: int) -> None:
        observe_many(self.scoring_latency, np.full(windows, max(seconds, 0.0)))

    def observe_alert_latency(self, seconds: float) -> None:
        self.alert_latency.observe(max(seconds, 0.0))

    def set_model_versions(self, versions: dict[str, str], artifact_loaded: bool) -> None:
        for detector, version in versions.items():
            self.model.labels(detector=detector).info({"model_version": str(version)})
        self.model_artifact_loaded.set(1 if artifact_loaded else 0)

    def count_sink_retry(self, sink: str) -> None:
        self.sink_retries.labels(sink=sink).inc()

    def count_snapshot_restore_failure(self, reason: str) -> None:
        """``reason``: one of ``SNAPSHOT_RESTORE_FAILURE_REASONS`` (anything else is
        counted as ``corrupt`` so the label stays bounded)."""
        if reason not in SNAPSHOT_RESTORE_FAILURE_REASONS:
            reason = "corrupt"
        self.snapshot_restore_failures.labels(reason=reason).inc()


def observe_many(histogram: Any, values: Any) -> None:
    """``observe`` every finite value, in one numpy pass per batch instead of one call per
    value (a batch has a window per meter). Uses the client's per-bucket counters; falls
    back to plain ``observe`` if a prometheus_client version lays them out differently."""
    array = np.asarray(values, dtype=np.float64)
    array = array[np.isfinite(array)]
    if array.size == 0:
        return
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for value in array.tolist():
            histogram.observe(value)
        return
    index = np.searchsorted(np.asarray(bounds, dtype=np.float64), array, side="left")
    for bucket, count in zip(*np.unique(index, return_counts=True), strict=True):
        buckets[int(bucket)].inc(int(count))
    total.inc(float(array.sum()))


def _field(event: Any, name: str) -> Any:
    if isinstance(event, dict):
        return event.get(name)
    return getattr(event, name, None)


def top_cue_id(event: Any) -> str:
    """The id of the event's first (strongest) cue, ``none`` when it has none."""
    cues = _field(event, "cues") or []
    if not cues:
        return "none"
    first = cues[0]
    cue_id = first.get("id") if isinstance(first, dict) else getattr(first, "id", None)
    return str(cue_id) if cue_id else "none"
