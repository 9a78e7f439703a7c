"""The streaming pipeline on the real stack: simulator messages -> Kafka -> `meterwatch worker`
subprocesses -> Redis, Alertmanager, Kafka (events, DLQ).

Each test has its own topics and consumer group, a small fleet (40 meters x 3 days at 1 min,
~170k readings in gateway batches), a bounded run time, and stops its workers itself.
"""

from __future__ import annotations

import secrets
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from stream_harness import (
    WorkerGroup,
    first_raises,
    messages_of,
    private_redis_server,
    publish,
    redis_alerts,
    reference_alerts,
    small_fleet,
)

from stream.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]
PARTITIONS = 4


@pytest.fixture(scope="module")
def fleet() -> dict[str, Any]:
    table, labels = small_fleet()
    messages = messages_of(table)
    reference = reference_alerts(Settings(), messages)
    thieves = {m["meter_id"] for m in labels["meters"] if m["theft"]}
    return {"messages": messages, "reference": first_raises(reference), "thieves": thieves}


@pytest.fixture
def redis_url(stack: Settings, tmp_path: Path) -> Iterator[str]:
    """This test's own redis-server: the workers' outputs are counted exactly, and parallel
    test runs on the shared stack cannot add or clear keys under it."""
    with private_redis_server(tmp_path / "redis") as url:
        yield url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[Any]:
    import redis

    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def group(
    stack: Settings, unique_topic: Any, kafka_admin: Any, redis_url: str, tmp_path: Path
) -> Iterator[WorkerGroup]:
    topic = unique_topic(partitions=PARTITIONS)
    app_id = f"mwtest-stream-{secrets.token_hex(4)}"
    workers = WorkerGroup(stack, tmp_path, topic, PARTITIONS, app_id, redis_url=redis_url)
    yield workers
    workers.stop_all()
    extra = [f"{topic}.dlq", f"{topic}.events", f"{app_id}-engine-snapshots"]
    kafka_admin.delete_topics(extra, raise_errors=False)


def dlq_records(settings: Settings, topic: str) -> list[dict[str, Any]]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, bootstrap_servers=settings.kafka_bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=3000)  # fmt: skip
    try:
        return [orjson.loads(record.value) for record in consumer]
    finally:
        consumer.close()


def test_end_to_end_alerts_equal_the_in_process_engine(
    fleet: dict[str, Any], group: WorkerGroup, redis_client: Any, webhook_receiver: Any
) -> None:
    group.start()
    publish(group.settings, group.topic, fleet["messages"])
    group.wait_caught_up(timeout_s=300)

    streamed = first_raises(redis_alerts(redis_client))
    assert streamed, "no alert reached Redis"
    assert streamed == fleet["reference"]
    alerted = {meter for meter, _, _ in streamed.values()}
    caught = alerted & fleet["thieves"]
    assert len(caught) >= len(fleet["thieves"]) // 2, (caught, fleet["thieves"])
    # each alert once per (event_id, version) in the stream
    keys = [(e["event_id"], e["version"]) for e in redis_alerts(redis_client)]
    assert len(keys) == len(set(keys))
    # Alertmanager delivered at least one of them to the webhook receiver, with evidence
    ids = set(streamed)
    body = webhook_receiver.wait_for(
        lambda b: any(a["labels"].get("event_id") in ids for a in b.get("alerts", [])), 60
    )
    alert = next(a for a in body["alerts"] if a["labels"].get("event_id") in ids)
    assert orjson.loads(alert["annotations"]["evidence"])
    # metrics of contract section 6 moved
    from stream.cli_worker import metric_sum

    samples = group.metrics(0)
    assert metric_sum(samples, "meterwatch_readings_total") > 100_000
    assert metric_sum(samples, "meterwatch_windows_scored_total") > 0
    assert metric_sum(samples, "meterwatch_alerts_total") > 0
    assert metric_sum(samples, "meterwatch_state_bytes") > 0
    assert metric_sum(samples, "meterwatch_scoring_latency_seconds_count") > 0
    assert metric_sum(samples, "meterwatch_meters_tracked") == 40
    lag_partitions = {
        dict(labels)["partition"] for (name, labels) in samples
        if name == "meterwatch_consumer_lag_messages"
    }  # fmt: skip
    assert lag_partitions and lag_partitions <= {"0", "1", "2", "3"}
    # caught up: the lag gauge (refreshed every 5 s) comes down to zero
    deadline = time.monotonic() + 20
    while metric_sum(group.metrics(0), "meterwatch_consumer_lag_messages") and (
        time.monotonic() < deadline
    ):
        time.sleep(0.5)
    assert metric_sum(group.metrics(0), "meterwatch_consumer_lag_messages") == 0
    assert any(name == "meterwatch_model_info" for (name, _) in samples)


def test_malformed_messages_land_on_the_dlq_and_the_worker_keeps_going(
    fleet: dict[str, Any], group: WorkerGroup, redis_client: Any
) -> None:
    garbage = [
        (b"GW-X", b"{truncated"),
        (b"GW-X", b"[1, 2, 3]"),
        (b"GW-X", orjson.dumps({"gateway_id": "GW-X", "readings": [
            {"meter_id": "MTR-X", "ts": 1767571200000, "p": 1.0, "v": -3.0, "i": 0.1, "pf": 0.9},
            {"meter_id": "MTR-X", "ts": 1767571200000, "p": 1.0, "v": 230.0, "i": 0.1, "pf": 7},
            {"meter_id": "MTR-X", "ts": 1767571200000, "p": 1.0, "v": 230.0, "i": 0.1, "pf": 0.9,
             "colour": "red"},
        ]})),
    ]  # fmt: skip
    group.start()
    publish(group.settings, group.topic, garbage + fleet["messages"][:300])
    group.wait_caught_up(timeout_s=240)
    assert group.processes[0].poll() is None  # still up
    records = dlq_records(group.settings, f"{group.topic}.dlq")
    reasons = Counter(r["reason"] for r in records)
    for reason in ("unparsable", "not_an_object", "voltage_non_positive", "pf_out_of_range",
                   "unknown_field"):  # fmt: skip
        assert reasons[reason] >= 1, reasons
    assert all(set(r) == {"reason", "detail", "raw"} for r in records)
    from stream.cli_worker import metric_sum

    samples = group.metrics(0)
    assert metric_sum(samples, "meterwatch_rejected_total") == len(records)
    assert metric_sum(samples, "meterwatch_readings_total") > 1_000  # 300 messages x 5


def test_kill_9_mid_stream_loses_and_duplicates_no_alert_and_keeps_baselines(
    fleet: dict[str, Any], group: WorkerGroup, redis_client: Any
) -> None:
    group.start()
    publish(group.settings, group.topic, fleet["messages"])
    # past the 1-day warm-up of most meters and at least one checkpoint, then kill -9
    group.wait_metric(0, "meterwatch_readings_total", 90_000, timeout_s=240)
    time.sleep(2.5)
    group.kill9(0)
    alerts_before = len(redis_alerts(redis_client))
    group.start()
    group.wait_caught_up(timeout_s=300)

    log = group.log_text(1)
    assert "restored snapshot" in log, log[-3000:]
    streamed = redis_alerts(redis_client)
    keys = [(e["event_id"], e["version"]) for e in streamed]
    assert len(keys) == len(set(keys)), "an alert was duplicated in mw:alerts"
    assert first_raises(streamed) == fleet["reference"]
    assert len(streamed) >= alerts_before
    # baselines survived: the restarted worker did not start its meters from scratch
    from stream.cli_worker import metric_sum

    restarted_readings = metric_sum(group.metrics(1), "meterwatch_readings_total")
    assert restarted_readings < 90_000  # it resumed from the checkpoint, not from offset 0


def test_two_workers_split_partitions_and_equal_one_worker(
    fleet: dict[str, Any], group: WorkerGroup, redis_client: Any
) -> None:
    group.start()
    group.start()
    time.sleep(8)  # let the group rebalance onto both before data arrives
    publish(group.settings, group.topic, fleet["messages"])
    group.wait_caught_up(timeout_s=300)
    from stream.cli_worker import metric_sum

    tracked = [metric_sum(group.metrics(k), "meterwatch_meters_tracked") for k in (0, 1)]
    assert all(t > 0 for t in tracked), f"one worker got no partition: {tracked}"
    assert sum(tracked) == 40
    assert first_raises(redis_alerts(redis_client)) == fleet["reference"]
