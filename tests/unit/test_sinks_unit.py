"""Sinks with fakes: retry/backoff, Alertmanager payloads and resolution, Kafka records."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from fakes_streaming import ToyEngine

from stream.codecs import Rejection
from stream.sinks.alertmanager import ALERT_NAME, AlertmanagerSink
from stream.sinks.events import event_to_dict
from stream.sinks.kafka_sink import KafkaOutputSink, rejection_record
from stream.sinks.redis_sink import iso_to_ms, stream_fields
from stream.sinks.retry import retry_until_done


def an_event(status: str = "open", version: int = 1, **extra: Any) -> dict[str, Any]:
    event = ToyEngine._event(
        "MTR-7", {"event_id": "E-1", "version": version, "start": 0}, 1, status
    )
    event.update(extra)
    return event


def test_retry_backs_off_exponentially_with_a_cap_and_counts() -> None:
    delays: list[float] = []
    retries: list[str] = []
    calls = {"n": 0}

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    async def op() -> str:
        calls["n"] += 1
        if calls["n"] <= 6:
            raise ConnectionError("down")
        return "done"

    result = asyncio.run(
        retry_until_done(op, sink="redis", on_retry=retries.append, sleep=sleep,
                         first_delay_s=0.1, max_delay_s=1.0)
    )  # fmt: skip
    assert result == "done"
    assert retries == ["redis"] * 6
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_retry_does_not_swallow_errors_it_is_not_told_to_retry() -> None:
    async def op() -> None:
        raise KeyError("bug")

    async def sleep(_: float) -> None:
        return None

    with pytest.raises(KeyError):
        asyncio.run(
            retry_until_done(op, sink="kafka", on_retry=lambda _: None, sleep=sleep,
                             retry_on=(ConnectionError,))
        )  # fmt: skip


class Recorder:
    def __init__(self) -> None:
        self.bodies: list[list[dict[str, Any]]] = []
        self.urls: list[str] = []
        self.now = datetime(2026, 11, 21, 20, 0, tzinfo=UTC)

    async def post(self, url: str, body: bytes) -> None:
        self.urls.append(url)
        self.bodies.append(orjson.loads(body))

    def sink(self) -> AlertmanagerSink:
        return AlertmanagerSink(
            "http://127.0.0.1:19094/", on_retry=lambda _: None, clock=lambda: self.now,
            post=self.post,
        )  # fmt: skip


def test_alertmanager_labels_annotations_and_resolution() -> None:
    rec = Recorder()
    sink = rec.sink()
    asyncio.run(sink.send([an_event()], partition=2))
    alert = rec.bodies[0][0]
    assert rec.urls[0] == "http://127.0.0.1:19094/api/v2/alerts"
    assert alert["labels"] == {
        "alertname": ALERT_NAME, "event_id": "E-1", "meter_id": "MTR-7",
        "severity": "high", "cue": "reverse_flow", "gateway": "GW-1",
    }  # fmt: skip
    assert orjson.loads(alert["annotations"]["evidence"]) == {"reverse_flow": {"p_w": -5.0}}
    assert "endsAt" not in alert
    first_start = alert["startsAt"]

    rec.now += timedelta(minutes=3)
    assert asyncio.run(sink.repost_open()) == 1
    assert rec.bodies[1][0]["startsAt"] == first_start

    rec.now += timedelta(minutes=3)
    asyncio.run(sink.send([an_event("closed", 3)], partition=2))
    closed = rec.bodies[2][0]
    assert closed["endsAt"] == rec.now.isoformat()
    assert closed["startsAt"] == first_start
    assert sink.open_alerts == {}
    assert asyncio.run(sink.repost_open()) == 0


def test_alertmanager_holds_a_resolve_until_the_alert_has_fired_long_enough() -> None:
    rec = Recorder()
    sink = rec.sink()
    # raised and closed within seconds (a backlog caught up): Alertmanager would drop a
    # group it first sees resolved, so the close is posted as still firing
    asyncio.run(sink.send([an_event()], partition=0))
    rec.now += timedelta(seconds=2)
    asyncio.run(sink.send([an_event("closed", 2)], partition=0))
    assert "endsAt" not in rec.bodies[-1][0]
    assert rec.bodies[-1][0]["annotations"]["event_version"] == "2"
    rec.now += timedelta(seconds=sink.min_firing_s - 3)
    assert asyncio.run(sink.repost_open()) == 1
    assert "endsAt" not in rec.bodies[-1][0]
    rec.now += timedelta(seconds=1)
    assert asyncio.run(sink.repost_open()) == 1
    resolved = rec.bodies[-1][0]
    assert resolved["endsAt"] == rec.now.isoformat()
    assert resolved["startsAt"] == rec.bodies[0][0]["startsAt"]
    assert sink.open_alerts == {}
    assert asyncio.run(sink.repost_open()) == 0


def test_alertmanager_resolves_the_superseded_label_set_when_severity_grows() -> None:
    rec = Recorder()
    sink = rec.sink()
    asyncio.run(sink.send([an_event(severity="low")], partition=0))
    asyncio.run(sink.send([an_event(version=2, severity="high")], partition=0))
    old, new = rec.bodies[-1]
    assert old["labels"]["severity"] == "low" and old["endsAt"] == rec.now.isoformat()
    assert new["labels"]["severity"] == "high" and "endsAt" not in new
    assert old["startsAt"] == new["startsAt"]
    # an update with the same labels posts the alert alone
    asyncio.run(sink.send([an_event(version=3, severity="high")], partition=0))
    assert len(rec.bodies[-1]) == 1


def test_alertmanager_extra_labels_tell_worker_groups_apart() -> None:
    rec = Recorder()
    sinks = [
        AlertmanagerSink(
            "http://am",
            on_retry=lambda _: None,
            clock=lambda: rec.now,
            post=rec.post,
            extra_labels={"app": app},
        )  # fmt: skip
        for app in ("meterwatch-staging", "meterwatch")
    ]
    for sink in sinks:
        asyncio.run(sink.send([an_event()], partition=0))
    staging, production = (body[0]["labels"] for body in rec.bodies)
    assert staging["app"] == "meterwatch-staging" and production["app"] == "meterwatch"
    assert {k: v for k, v in staging.items() if k != "app"} == {
        k: v for k, v in production.items() if k != "app"
    }


def test_alertmanager_ignores_events_that_are_not_theft() -> None:
    rec = Recorder()
    sink = rec.sink()
    asyncio.run(sink.send([an_event(theft_likely=False)], partition=0))
    assert rec.bodies == []


def test_alertmanager_partition_export_import_drop() -> None:
    rec = Recorder()
    sink = rec.sink()
    asyncio.run(sink.send([an_event(), an_event(event_id="E-2")], partition=1))
    exported = sink.export_partition(1)
    assert {i["event"]["event_id"] for i in exported} == {"E-1", "E-2"}
    assert sink.export_partition(0) == []
    sink.drop_partition(1)
    assert sink.open_alerts == {}
    sink.import_partition(1, exported)
    assert set(sink.open_alerts) == {"E-1", "E-2"}


def test_kafka_sink_keys_events_and_formats_rejections() -> None:
    sent: list[tuple[str, bytes | None, bytes]] = []
    failures = {"n": 1}

    async def send(topic: str, key: bytes | None, value: bytes) -> None:
        if failures["n"]:
            failures["n"] -= 1
            raise ConnectionError("broker restarting")
        sent.append((topic, key, value))

    async def sleep(_: float) -> None:
        return None

    retries: list[str] = []
    sink = KafkaOutputSink(send, events_topic="theft.events", dlq_topic="meter.readings.dlq",
                           on_retry=retries.append, sleep=sleep)  # fmt: skip
    rejection = Rejection("pf_out_of_range", "pf 1.5 outside [-1, 1]", {"pf": 1.5})
    asyncio.run(sink.publish([an_event()], [rejection]))
    assert retries == ["kafka"]
    # a retried batch is sent again whole: at-least-once, consumers keep one per version
    events = [(k, orjson.loads(v)) for t, k, v in sent if t == "theft.events"]
    dlq = {v for t, _, v in sent if t == "meter.readings.dlq"}
    assert events == [(b"E-1", an_event())]
    assert len(dlq) == 1
    assert orjson.loads(dlq.pop()) == {
        "reason": "pf_out_of_range", "detail": "pf 1.5 outside [-1, 1]", "raw": {"pf": 1.5},
    }  # fmt: skip


def test_rejection_record_turns_raw_bytes_into_text() -> None:
    record = rejection_record({"reason": "unparsable", "detail": None, "raw": b"\xff{x"})
    assert record == {"reason": "unparsable", "detail": "", "raw": "\ufffd{x"}


def test_stream_fields_are_strings_with_cue_ids_and_full_event() -> None:
    fields = stream_fields(an_event(gateway_id=None))
    as_dict = dict(zip(fields[::2], fields[1::2], strict=True))
    assert all(isinstance(v, str) for v in fields)
    assert as_dict["gateway_id"] == "" and as_dict["cues"] == "reverse_flow"
    assert as_dict["detected_at"] == "0" and as_dict["status"] == "open"
    assert orjson.loads(as_dict["event"])["event_id"] == "E-1"


def test_iso_to_ms_and_event_to_dict() -> None:
    assert iso_to_ms("2026-01-05T00:00:00+00:00") == 1_767_571_200_000
    assert iso_to_ms("2026-01-05T00:00:00Z") == 1_767_571_200_000
    assert iso_to_ms(None) == 0
    with pytest.raises(TypeError):
        event_to_dict(object())
