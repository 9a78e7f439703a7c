"""Kafka publisher of the simulator: message forms, malformed frames, rate control on a
fake clock, with a recording stand-in for the producer (unit tier)."""

from __future__ import annotations

import json
import math
from typing import Any

import orjson
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.fleet import FleetConfig, simulate
from simulator.publish import (
    FakeClock,
    Pacer,
    PublishStats,
    encode_table,
    parse_rate,
    publish_labels,
    publish_messages,
)


class RecordingProducer:
    def __init__(self, clock: FakeClock | None = None) -> None:
        self.sent: list[tuple[str, bytes, bytes, float]] = []
        self.clock = clock

    def send(self, topic: str, key: bytes, value: bytes) -> None:
        self.sent.append((topic, key, value, self.clock.now() if self.clock else 0.0))


def table_of(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(
        rows,
        schema=pa.schema(
            [
                ("meter_id", pa.string()),
                ("ts", pa.string()),
                ("power_w", pa.float64()),
                ("voltage_v", pa.float64()),
                ("current_a", pa.float64()),
                ("pf", pa.float64()),
                ("gateway_id", pa.string()),
            ]
        ),
    )


def row(meter: str, ts: str, gw: str = "GW-0001", p: float | None = 100.0) -> dict[str, Any]:
    return {
        "meter_id": meter,
        "ts": ts,
        "power_w": p,
        "voltage_v": 230.0,
        "current_a": 0.5,
        "pf": 0.87,
        "gateway_id": gw,
    }


def test_parse_rate() -> None:
    assert parse_rate("max") is None
    assert parse_rate("realtime") == 1.0
    assert parse_rate("x60") == 60.0 and parse_rate("60x") == 60.0 and parse_rate("2.5") == 2.5
    for bad in ("fast-ish", "x0", "-3", ""):
        with pytest.raises(ValueError):
            parse_rate(bad)


def test_single_form_is_one_reading_per_message_keyed_by_meter() -> None:
    table = table_of(
        [row("MTR-1", "2026-01-05T00:00:00+00:00"), row("MTR-2", "2026-01-05T00:00:05+00:00")]
    )
    messages = list(encode_table(table, "single"))
    assert [m.key for m in messages] == [b"MTR-1", b"MTR-2"]
    body = orjson.loads(messages[1].value)
    assert body == {
        "meter_id": "MTR-2",
        "ts": 1767571205000,
        "p": 100.0,
        "v": 230.0,
        "i": 0.5,
        "pf": 0.87,
    }
    assert messages[1].event_ms == 1767571205000


def test_batch_form_groups_runs_of_a_gateway_and_caps_size() -> None:
    ts = "2026-01-05T00:00:00+00:00"
    rows = [row(f"MTR-{k}", ts, "GW-1") for k in range(5)] + [row("MTR-9", ts, "GW-2")]
    rows += [row("MTR-0", "2026-01-05T00:00:05+00:00", "GW-1")]
    messages = list(encode_table(table_of(rows), "batch", max_batch=3))
    assert [(m.key, m.readings) for m in messages] == [
        (b"GW-1", 3),
        (b"GW-1", 2),
        (b"GW-2", 1),
        (b"GW-1", 1),
    ]
    body = orjson.loads(messages[0].value)
    assert body["gateway_id"] == "GW-1" and len(body["readings"]) == 3
    assert set(body["readings"][0]) == {"meter_id", "ts", "p", "v", "i", "pf"}
    with pytest.raises(ValueError):
        list(encode_table(table_of(rows), "carrier-pigeon"))


def test_malformed_rows_go_out_as_a_broken_gateway_would_send_them() -> None:
    rows = [
        row("MTR-1", "garbage"),
        row("MTR-2", "2026-01-05T00:00:00+00:00", p=math.nan),
        row("MTR-3", "2026-01-05T00:00:00+00:00", p=None),
        row("MTR-4", "2026-01-05T00:00:00+00:00"),
    ]
    for form in ("single", "batch"):
        messages = list(encode_table(table_of(rows), form))
        unparsable = [m for m in messages if m.event_ms is None]
        assert len(unparsable) == 1
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(unparsable[0].value)
        nan_msgs = [m for m in messages if b"NaN" in m.value]
        assert len(nan_msgs) == 1 and math.isnan(json.loads(nan_msgs[0].value)["p"])
        readings = [
            r
            for m in messages
            if m.event_ms is not None and b"NaN" not in m.value
            for r in (orjson.loads(m.value).get("readings") or [orjson.loads(m.value)])
        ]
        missing = [r for r in readings if r["meter_id"] == "MTR-3"][0]
        assert "p" not in missing and missing["v"] == 230.0
        assert sum(m.readings for m in messages) == len(rows)


def test_pacer_holds_the_event_time_rate_on_a_fake_clock() -> None:
    clock = FakeClock(t=100.0)
    pacer = Pacer(60.0, clock)
    for k in range(0, 601, 5):  # ten minutes of event time, every 5 s
        pacer.wait_for(1_000_000 + k * 1000)
    assert clock.now() - 100.0 == pytest.approx(600 / 60.0)
    # a late reading never rewinds the clock, and max speed never sleeps
    before = clock.now()
    pacer.wait_for(1_000_000)
    assert clock.now() == before
    fast_clock = FakeClock()
    fast = Pacer(None, fast_clock)
    for k in range(100):
        fast.wait_for(k * 1000)
    assert fast_clock.sleeps == []


@settings(max_examples=10)
@given(speed=st.sampled_from([1.0, 10.0, 300.0]), form=st.sampled_from(["single", "batch"]))
def test_publishing_a_fleet_holds_the_rate_and_sends_every_reading(speed: float, form: str) -> None:
    table, labels = simulate(
        FleetConfig(meters=6, days=0.02, cadence_s=5, seed=5, malformed_share=0.01)
    )
    clock = FakeClock()
    producer = RecordingProducer(clock)
    stats = PublishStats()
    publish_messages(
        producer, "meter.readings", encode_table(table, form), Pacer(speed, clock), stats
    )
    assert stats.readings == table.num_rows
    assert stats.messages == len(producer.sent)
    span_s = (stats.last_event_ms - stats.first_event_ms) / 1000.0
    # wall time on the fake clock = event span / speed (within one cadence step)
    assert clock.now() == pytest.approx(span_s / speed, abs=5.0 / speed + 1e-9)
    # the event-time clock never lets a message out before its time
    first_wall = producer.sent[0][3]
    for _, _, value, wall in producer.sent:
        if b"NaN" in value:
            continue
        try:
            body = orjson.loads(value)
        except orjson.JSONDecodeError:
            continue
        newest = max(r["ts"] for r in body.get("readings", [body]))
        assert (
            wall + 1e-9
            >= first_wall + (newest - stats.first_event_ms) / 1000.0 / speed - 5.0 / speed
        )


def test_labels_go_one_document_per_meter() -> None:
    _, labels = simulate(FleetConfig(meters=4, days=0.01, cadence_s=60, seed=1))
    producer = RecordingProducer()
    assert publish_labels(producer, labels) == 4
    for (topic, key, value, _), meter in zip(producer.sent, labels["meters"], strict=True):
        body = orjson.loads(value)
        assert topic == "meter.labels" and key == meter["meter_id"].encode()
        assert body["schema"] == "meterwatch.labels.v1" and body["meters"] == [meter]


def test_fleet_publisher_object_uses_the_given_producer_and_clock() -> None:
    from simulator.publish import FleetPublisher
    from stream.settings import Settings

    class FlushingProducer(RecordingProducer):
        flushed = 0
        closed = False

        def flush(self) -> None:
            self.flushed += 1

        def close(self) -> None:
            self.closed = True

    table, labels = simulate(FleetConfig(meters=3, days=0.01, cadence_s=10, seed=4))
    clock = FakeClock()
    producer = FlushingProducer(clock)
    with FleetPublisher(Settings(), clock, producer) as pub:
        stats = pub.publish(table, form="single", rate="x10")
        assert pub.publish_labels(labels, topic="t.labels") == 3
    assert stats.readings == table.num_rows == len(producer.sent) - 3
    assert clock.now() == pytest.approx(
        (stats.last_event_ms - stats.first_event_ms) / 1000 / 10, abs=1.0
    )
    assert producer.flushed >= 2 and not producer.closed  # not ours to close
    assert {t for t, *_ in producer.sent} == {"meter.readings", "t.labels"}
