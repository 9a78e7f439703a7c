"""Streaming metrics on their own registry: names of contract section 6, bounded labels."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from stream.codecs import Rejection
from stream.metrics import SCORE_BUCKETS, StreamMetrics, observe_many, top_cue_id

CONTRACT = Path(__file__).resolve().parents[2] / "stream" / "schemas" / "README.md"


def contract_metric_families() -> set[str]:
    """Metric family names in the table of contract section 6 (counters without _total)."""
    text = CONTRACT.read_text(encoding="utf-8")
    section = text[text.index("## 6.") : text.index("## 7.")]
    names = set(re.findall(r"`(meterwatch_[a-z_]+)`", section))
    return {name.removesuffix("_total") for name in names}


CONTRACT_METRICS = contract_metric_families()
BOUNDED_LABELS = {"form", "reason", "detector", "severity", "cue", "partition", "sink",
                  "model_version", "le", "stage"}  # fmt: skip


def test_every_contract_metric_is_registered_on_the_given_registry() -> None:
    registry = CollectorRegistry()
    StreamMetrics(registry)
    names = {family.name for family in registry.collect()}
    assert names == CONTRACT_METRICS
    assert {f.name for f in CollectorRegistry().collect()} == set()


def test_engine_output_counts_and_scores() -> None:
    registry = CollectorRegistry()
    metrics = StreamMetrics(registry)
    out = SimpleNamespace(
        readings_accepted=10, duplicates=2, windows_scored=3, comms_gap_windows=1,
        scores={"hybrid": np.array([10.0, 55.0, np.nan]), "other": np.array([1.0])},
    )  # fmt: skip
    metrics.observe_engine_output(out)
    metrics.count_rejections([Rejection("bad_type", "x", None)] * 2)
    get = registry.get_sample_value
    assert get("meterwatch_readings_total") == 10
    assert get("meterwatch_duplicates_total") == 2
    assert get("meterwatch_windows_scored_total") == 3
    assert get("meterwatch_comms_gap_windows_total") == 1
    assert get("meterwatch_window_score_count", {"detector": "hybrid"}) == 2  # NaN skipped
    assert get("meterwatch_window_score_bucket", {"detector": "hybrid", "le": "10.0"}) == 1
    assert get("meterwatch_rejected_total", {"reason": "bad_type"}) == 2


def test_engine_seconds_by_stage_add_up_and_unknown_stages_are_dropped() -> None:
    registry = CollectorRegistry()
    metrics = StreamMetrics(registry)
    get = registry.get_sample_value
    # every stage has its child from the start (a dashboard shows 0, not a gap)
    assert get("meterwatch_engine_seconds_total", {"stage": "models"}) == 0.0
    for _ in range(2):
        metrics.observe_engine_output(
            SimpleNamespace(
                readings_accepted=0,
                duplicates=0,
                windows_scored=0,
                scores={},
                stage_seconds={"admit": 0.25, "models": 1.5, "events": 0.0, "meter-42": 9.0},
            )  # fmt: skip
        )
    assert get("meterwatch_engine_seconds_total", {"stage": "admit"}) == 0.5
    assert get("meterwatch_engine_seconds_total", {"stage": "models"}) == 3.0
    assert get("meterwatch_engine_seconds_total", {"stage": "pane_rounds"}) == 0.0
    assert get("meterwatch_engine_seconds_total", {"stage": "meter-42"}) is None


def test_alerts_by_severity_and_top_cue_skip_resolves() -> None:
    registry = CollectorRegistry()
    metrics = StreamMetrics(registry)
    cue = [{"id": "bypass_zero", "evidence": {}}, {"id": "pf_abnormal", "evidence": {}}]
    metrics.count_alerts([
        {"status": "open", "severity": "critical", "cues": cue, "est_unbilled_kwh": 4.0},
        {"status": "closed", "severity": "critical", "cues": cue, "est_unbilled_kwh": 4.0},
        {"status": "open", "severity": "low", "cues": [], "est_unbilled_kwh": 0.0},
    ])  # fmt: skip
    get = registry.get_sample_value
    assert get("meterwatch_alerts_total", {"severity": "critical", "cue": "bypass_zero"}) == 1
    assert get("meterwatch_alerts_total", {"severity": "low", "cue": "none"}) == 1
    assert get("meterwatch_est_unbilled_kwh_total", {"severity": "critical"}) == 4.0
    assert top_cue_id(SimpleNamespace(cues=[SimpleNamespace(id="reverse_flow")])) == "reverse_flow"


def test_model_info_and_label_names_stay_bounded() -> None:
    registry = CollectorRegistry()
    metrics = StreamMetrics(registry)
    metrics.set_model_versions({"ae": "ae-v1", "hst": "river-0.26"}, artifact_loaded=True)
    metrics.consumer_lag.labels(partition="3").set(12)
    metrics.observe_scoring_latency(0.3, windows=5)
    metrics.observe_alert_latency(-1.0)  # clock skew never gives a negative latency
    get = registry.get_sample_value
    assert get("meterwatch_model_info", {"detector": "ae", "model_version": "ae-v1"}) == 1
    assert get("meterwatch_model_artifact_loaded") == 1
    assert get("meterwatch_scoring_latency_seconds_count") == 5
    assert get("meterwatch_alert_latency_seconds_bucket", {"le": "0.05"}) == 1
    for family in registry.collect():
        for sample in family.samples:
            assert set(sample.labels) <= BOUNDED_LABELS, sample
    assert b"meter_id" not in generate_latest(registry)


@given(
    st.lists(
        st.one_of(
            st.floats(min_value=-10, max_value=200),
            st.sampled_from([float("nan"), float("inf"), 50.0, 100.0, 5.0]),
        ),
        max_size=60,
    )
)
def test_observe_many_equals_one_observe_per_finite_value(values: list[float]) -> None:
    bulk_registry, loop_registry = CollectorRegistry(), CollectorRegistry()
    bulk = Histogram("h", "h", buckets=SCORE_BUCKETS, registry=bulk_registry)
    loop = Histogram("h", "h", buckets=SCORE_BUCKETS, registry=loop_registry)
    observe_many(bulk, np.array(values))
    for value in values:
        if np.isfinite(value):
            loop.observe(value)

    def samples(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
        return {
            (s.name, s.labels.get("le", "")): s.value
            for f in registry.collect() for s in f.samples if not s.name.endswith("_created")
        }  # fmt: skip

    bulk_samples, loop_samples = samples(bulk_registry), samples(loop_registry)
    assert bulk_samples.keys() == loop_samples.keys()
    for key, value in loop_samples.items():
        assert bulk_samples[key] == pytest.approx(value), key
