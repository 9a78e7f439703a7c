"""The streaming worker survives a restart of the Kafka broker (issue 5).

A private stack (temp state folder, free ports; the Kafka jars of the shared stack are
linked in) so the shared broker that other test runs use is never restarted. A real
``meterwatch worker`` consumes a small simulated fleet with theft (20 meters x 3 days at
5 min, ~16.6k readings); the broker is restarted with ``restart_server`` while the worker
is consuming the first half; the second half is published by a new producer. The worker
must stay up, consume everything, and leave in Redis exactly the alerts an in-process
engine raises on the same messages, none of them twice.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from stack_support import free_port
from stream_harness import (
    WorkerGroup,
    first_raises,
    messages_of,
    publish,
    redis_alerts,
    reference_alerts,
)

from deploy.local.stack import PidRecord, StackLayout, restart_server, stack_down, stack_up
from stream.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]
PARTITIONS = 2
METERS = 20


@pytest.fixture(scope="module")
def fleet() -> dict[str, Any]:
    from simulator.config import FleetConfig
    from simulator.fleet import simulate

    config = FleetConfig(
        meters=METERS, days=3.0, cadence_s=300, seed=11, theft_share=0.25,
        meters_per_transformer=5, transformers_per_gateway=1,
    )  # fmt: skip
    table, _labels = simulate(config)
    messages = messages_of(table)
    reference = first_raises(reference_alerts(Settings(), messages))
    return {"messages": messages, "accepted": _accepted_in_process(messages),
            "reference": reference}  # fmt: skip


def _accepted_in_process(messages: list[tuple[bytes | None, bytes]]) -> int:
    """Readings one in-process engine accepts from these messages (malformed ones are
    rejected, re-sent ones are dropped as duplicates without counting)."""
    from stream.codecs import concat_batches, decode_message
    from stream.engine import Engine

    engine = Engine.from_settings(Settings())
    accepted = 0
    for k in range(0, len(messages), 50):
        batches = [decode_message(value)[0] for _, value in messages[k : k + 50]]
        out = engine.process(concat_batches([b for b in batches if len(b)]))
        accepted += int(out.readings_accepted)
    return accepted


@pytest.fixture
def private_stack(tmp_path: Path) -> Iterator[Settings]:
    """All four servers on free ports in tmp_path; Kafka runs from the shared stack's jars."""
    shared_libs = StackLayout(Settings().stack_dir).kafka_libs
    if not any(shared_libs.glob("kafka_2.13-*.jar")):
        pytest.skip(f"no Kafka jars in {shared_libs}: run `make sysdeps`")
    settings = Settings(
        stack_dir=tmp_path / "stack",
        kafka_port=(kafka_port := free_port()),
        kafka_controller_port=free_port(),
        kafka_bootstrap=f"127.0.0.1:{kafka_port}",
        redis_port=(redis_port := free_port()),
        redis_url=f"redis://127.0.0.1:{redis_port}/0",
        prometheus_port=(prometheus_port := free_port()),
        prometheus_url=f"http://127.0.0.1:{prometheus_port}",
        alertmanager_port=(alertmanager_port := free_port()),
        alertmanager_url=f"http://127.0.0.1:{alertmanager_port}",
        webhook_port=free_port(),
        metrics_port=free_port(),
        stack_start_timeout_s=120,
    )
    libs = StackLayout(settings.stack_dir).kafka_libs
    libs.parent.mkdir(parents=True)
    libs.symlink_to(shared_libs, target_is_directory=True)
    lines: list[str] = []
    try:
        if stack_up(settings, echo=lines.append) != 0:
            pytest.fail("private stack did not start:\n" + "\n".join(lines), pytrace=False)
        yield settings
    finally:
        stack_down(settings, echo=lambda _line: None)


@dataclass
class PrivateWorkerGroup(WorkerGroup):
    """Workers pointed at the private stack's servers, not at the environment's."""

    def env(self) -> dict[str, str]:
        return dict(
            super().env(),
            METERWATCH_KAFKA_BOOTSTRAP=self.settings.kafka_bootstrap,
            METERWATCH_ALERTMANAGER_URL=self.settings.alertmanager_url,
            METERWATCH_PROMETHEUS_URL=self.settings.prometheus_url,
        )


def _create_topic(settings: Settings, topic: str) -> None:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        admin.create_topics(
            {topic: {"num_partitions": PARTITIONS, "replication_factor": 1}},
            wait_for_metadata=True,
        )
    finally:
        admin.close()


def test_the_worker_survives_a_broker_restart_mid_stream(
    fleet: dict[str, Any], private_stack: Settings, tmp_path: Path
) -> None:
    import redis

    from stream.cli_worker import metric_sum

    settings = private_stack
    topic = f"mwtest.broker-restart.{secrets.token_hex(4)}"
    _create_topic(settings, topic)
    group = PrivateWorkerGroup(
        settings, tmp_path, topic, PARTITIONS, f"mwtest-restart-{secrets.token_hex(4)}",
        redis_url=settings.redis_url,
    )  # fmt: skip
    client = redis.Redis.from_url(settings.redis_url)
    messages = fleet["messages"]
    half = len(messages) // 2
    try:
        worker = group.start()
        group.wait_up(0, timeout_s=120)
        publish(settings, topic, messages[:half])
        # mid-stream: the worker has begun on the first half, then the broker goes away
        at_restart = group.wait_metric(0, "meterwatch_readings_total", 1, timeout_s=120)
        kafka = StackLayout(settings.stack_dir).pid_file("kafka")
        old_broker = PidRecord.read(kafka)
        restart_lines: list[str] = []
        began = time.monotonic()
        assert restart_server(settings, "kafka", echo=restart_lines.append) == 0, restart_lines
        restart_s = time.monotonic() - began
        new_broker = PidRecord.read(kafka)
        assert old_broker is not None and new_broker is not None
        assert new_broker.pid != old_broker.pid
        assert worker.poll() is None, (
            "the worker exited when the broker went away:\n" + (group.log_text(0)[-3000:])
        )

        publish(settings, topic, messages[half:])  # a new producer on the restarted broker
        group.wait_caught_up(timeout_s=240)
        assert worker.poll() is None, group.log_text(0)[-3000:]

        samples = group.metrics(0)
        # every message was consumed and every reading the in-process engine accepts was
        # accepted here too (a replay after a rebalance may count some twice, never fewer)
        assert metric_sum(samples, "meterwatch_messages_total") >= len(messages)
        accepted = metric_sum(samples, "meterwatch_readings_total")
        assert accepted >= fleet["accepted"], samples
        assert metric_sum(samples, "meterwatch_meters_tracked") == METERS
        deadline = time.monotonic() + 20
        while metric_sum(group.metrics(0), "meterwatch_consumer_lag_messages") and (
            time.monotonic() < deadline
        ):
            time.sleep(0.5)
        assert metric_sum(group.metrics(0), "meterwatch_consumer_lag_messages") == 0

        streamed = redis_alerts(client)
        assert fleet["reference"], "the fleet raises no alert: the comparison would be empty"
        assert first_raises(streamed) == fleet["reference"]
        keys = [(event["event_id"], event["version"]) for event in streamed]
        assert len(keys) == len(set(keys)), "an alert was duplicated in mw:alerts"
        print(
            f"broker restart {restart_s:.1f}s, begun at {at_restart:.0f} readings accepted; "
            f"worker pid {worker.pid} stayed up; "
            f"{accepted:.0f} readings accepted (in-process {fleet['accepted']}), "
            f"{len(streamed)} alerts, {len(fleet['reference'])} raised as in-process"
        )
    finally:
        client.close()
        group.stop_all()
