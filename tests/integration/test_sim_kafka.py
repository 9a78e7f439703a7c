"""The simulator's Kafka publisher against the real broker of the local stack."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer

from simulator.fleet import FleetConfig, simulate
from simulator.publish import SystemClock, publish_config, publish_fleet
from stream.codecs import decode_message
from stream.settings import Settings

pytestmark = pytest.mark.integration


def consume_all(
    settings: Settings, topic: str, expected: int, timeout_s: float = 30.0
) -> list[Any]:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=1000,
    )
    records: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
    finally:
        consumer.close()
    return records


@pytest.mark.parametrize("form", ["single", "batch"])
def test_fleet_arrives_on_the_broker_in_both_forms(
    stack: Settings, unique_topic: Callable[..., str], form: str
) -> None:
    topic = unique_topic(partitions=2)
    settings = stack.model_copy(update={"topic_readings": topic})
    table, _ = simulate(FleetConfig(meters=8, days=0.02, cadence_s=5, seed=3, malformed_share=0.01))
    stats = publish_fleet(settings, table, form=form)
    assert stats.readings == table.num_rows
    records = consume_all(settings, topic, stats.messages)
    assert len(records) == stats.messages
    accepted = rejected = 0
    for record in records:
        batch, rejections = decode_message(record.value)
        accepted += len(batch)
        rejected += len(rejections)
        if form == "batch" and len(batch):
            assert record.key == orjson.loads(record.value)["gateway_id"].encode()
        elif len(batch):
            assert record.key.decode() == batch.meter_id[0]
    assert accepted + rejected == table.num_rows
    assert accepted > 0.95 * table.num_rows


def test_rate_is_held_against_the_real_broker_and_clock(
    stack: Settings, unique_topic: Callable[..., str]
) -> None:
    topic = unique_topic()
    settings = stack.model_copy(update={"topic_readings": topic})
    # 3 minutes of event time at x60 = 3 s of wall time
    config = FleetConfig(meters=5, days=3 / 1440, cadence_s=1, seed=1, transport_faults=False)
    table, _ = simulate(config)
    started = time.monotonic()
    stats = publish_fleet(settings, table, form="batch", speed=60.0, clock=SystemClock())
    wall = time.monotonic() - started
    span_s = (stats.last_event_ms - stats.first_event_ms) / 1000.0
    assert span_s == pytest.approx(179.0, abs=1.0)
    assert span_s / 60.0 * 0.9 <= wall <= span_s / 60.0 * 1.3 + 1.0, wall
    assert len(consume_all(settings, topic, stats.messages)) == stats.messages


def test_publish_config_streams_readings_and_labels(
    stack: Settings, unique_topic: Callable[..., str], tmp_path: Path, kafka_admin: Any
) -> None:
    topic = unique_topic()
    settings = stack.model_copy(update={"topic_readings": topic})
    labels_out = tmp_path / "labels.json"
    config = FleetConfig(meters=6, days=0.01, cadence_s=10, seed=8)
    labels_topic = unique_topic()
    stats = publish_config(settings, config, labels_out, form="single", labels_topic=labels_topic)
    labels = orjson.loads(labels_out.read_bytes())
    assert labels["readings"] == stats.readings
    records = consume_all(settings, topic, stats.messages)
    assert len(records) == stats.messages


def test_cli_publishes_with_labels(
    stack: Settings, unique_topic: Callable[..., str], tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from stream.cli import app

    topic, labels_topic = unique_topic(), unique_topic()
    labels_out = tmp_path / "labels.json"
    result = CliRunner().invoke(
        app,
        [
            "simulate",
            "--meters",
            "4",
            "--days",
            "0.005",
            "--cadence",
            "5s",
            "--seed",
            "2",
            "--kafka",
            "--labels-out",
            str(labels_out),
            "--labels-topic",
            labels_topic,
            "--form",
            "single",
            "--rate",
            "max",
            "--no-progress",
        ],
        env={
            "METERWATCH_TOPIC_READINGS": topic,
            "METERWATCH_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
        },
    )
    assert result.exit_code == 0, result.output
    labels = orjson.loads(labels_out.read_bytes())
    records = consume_all(stack, topic, labels["readings"])
    assert len(records) == labels["readings"]  # single form: one message per reading
    label_records = consume_all(stack, labels_topic, 4)
    assert sorted(r.key for r in label_records) == [
        m["meter_id"].encode() for m in labels["meters"]
    ]
