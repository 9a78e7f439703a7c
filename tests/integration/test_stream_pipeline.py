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
    kafka_final_events,
    messages_of,
    private_redis_server,
    publish,
    redis_alerts,
    redis_final_events,
    reference_alerts,
    replay_cli,
    write_fleet_file,
)

from stream.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]
PARTITIONS = 4


# Fields of an event that the stream and `meterwatch replay` must agree on exactly, for every
# theft-likely event. Left out, because they legitimately differ:
# - `version`: one version per engine call that touched the event (EventTracker.drain), so it
#   counts micro-batches: the worker's take() batches per partition vs replay's 131,072-row
#   chunks. It orders the updates of one event (the sinks' idempotency key), nothing more.
# - `peak_score`, `mean_score`: a window's score is max(hybrid, 100 x cue confidence), and the
#   hybrid has the online Half-Space Trees in it, which learn from the windows their own
#   engine saw: one engine per partition here, one for the whole file in replay, and other
#   batch boundaries (contract section 3, "Partition invariance").
# - `top_features`: those of the event's latest flagged window, and a window flagged by the
#   hybrid score alone (same HST dependence) may join a theft event.
DETERMINISTIC = ("schema", "event_id", "meter_id", "gateway_id", "start", "end", "detected_at",
                 "status", "severity", "theft_likely", "cues", "est_unbilled_kwh",
                 "model_version")  # fmt: skip
# An event still open when the stream has run out of input is one that `meterwatch replay`
# closes only at the end of its file (Engine.flush releases the readings held back for the
# allowed lateness, scores them and closes every event). A stream has no end of input, so the
# worker keeps it open; its fields that the flush cannot change must still be equal.
UNTOUCHED_BY_FLUSH = ("schema", "event_id", "meter_id", "gateway_id", "start", "detected_at",
                      "theft_likely", "model_version")  # fmt: skip


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The simulator writes the readings file; the stream gets the same rows, in file order."""
    from simulator.publish import read_readings_file

    path = tmp_path_factory.mktemp("fleet") / "fleet.parquet"
    labels = orjson.loads(write_fleet_file(path).read_bytes())
    messages = messages_of(read_readings_file(path))
    reference = reference_alerts(Settings(), messages)
    thieves = {m["meter_id"] for m in labels["meters"] if m["theft"]}
    return {"path": path, "messages": messages, "reference": first_raises(reference),
            "thieves": thieves}  # fmt: skip


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


def cue_ids(event: dict[str, Any]) -> list[str]:
    return [str(c["id"]) for c in event["cues"]]


def test_end_to_end_events_equal_meterwatch_replay(
    fleet: dict[str, Any],
    group: WorkerGroup,
    redis_client: Any,
    webhook_receiver: Any,
    tmp_path: Path,
) -> None:
    from simulator.publish import publish_file

    group.start()
    stats = publish_file(group.settings.model_copy(update={"topic_readings": group.topic}),
                         fleet["path"], max_batch=200)  # fmt: skip
    assert stats.messages == len(fleet["messages"])
    replayed = replay_cli(fleet["path"], tmp_path / "replay")  # meanwhile the worker works
    # and where a stream stands after the same readings: no end of input, events open
    as_stream = replay_cli(fleet["path"], tmp_path / "replay-no-flush", "--no-flush")
    group.wait_caught_up(timeout_s=300)

    # both sinks hold the same final version of every event
    in_redis = redis_final_events(redis_client)
    on_kafka = kafka_final_events(group.settings, f"{group.topic}.events")
    assert in_redis == on_kafka

    # theft-likely events: the same set as replay's, field by field
    streamed = {k: e for k, e in on_kafka.items() if e["theft_likely"]}
    replay_theft = {k: e for k, e in replayed.items() if e["theft_likely"]}
    assert streamed, "no theft event came out of the stream"
    assert sorted(streamed) == sorted(replay_theft)
    still_open = 0
    for event_id, event in streamed.items():
        offline = replay_theft[event_id]
        if event["status"] == "closed":
            assert {f: event[f] for f in DETERMINISTIC} == {f: offline[f] for f in DETERMINISTIC}
            continue
        still_open += 1
        assert offline["status"] == "closed"
        assert {f: event[f] for f in UNTOUCHED_BY_FLUSH} == {
            f: offline[f] for f in UNTOUCHED_BY_FLUSH
        }
        # the flush only adds the held-back tail: cues, time and kWh can only grow
        assert set(cue_ids(event)) <= set(cue_ids(offline))
        assert offline["end"] >= event["end"]
        assert offline["est_unbilled_kwh"] >= event["est_unbilled_kwh"]
    assert still_open < len(streamed), "no theft event closed in the stream: nothing compared"
    # against `replay --no-flush` the equality is exact for open events too
    assert still_open, "no theft event left open: the no-flush comparison adds nothing"
    unflushed = {k: e for k, e in as_stream.items() if e["theft_likely"]}
    assert sorted(streamed) == sorted(unflushed)
    for event_id, event in streamed.items():
        assert {f: event[f] for f in DETERMINISTIC} == {
            f: unflushed[event_id][f] for f in DETERMINISTIC
        }, event_id

    # every theft event was alerted once in mw:alerts, and those equal the in-process engine's
    raised = first_raises(redis_alerts(redis_client))
    assert sorted(raised) == sorted(streamed)
    assert raised == fleet["reference"]
    keys = [(e["event_id"], e["version"]) for e in redis_alerts(redis_client)]
    assert len(keys) == len(set(keys))
    # injected thieves (labels file) are alerted, and alerts are on thieves
    alerted = {event["meter_id"] for event in streamed.values()}
    caught = alerted & fleet["thieves"]
    assert len(caught) >= len(fleet["thieves"]) // 2, (caught, fleet["thieves"])
    assert alerted <= fleet["thieves"], (
        f"theft alerts on clean meters: {alerted - fleet['thieves']}"
    )

    # Alertmanager's receiver got every theft-likely event firing, with its evidence (the
    # `app` label keeps this run's alerts apart from earlier runs' with the same event ids)
    def delivered() -> dict[str, dict[str, Any]]:
        return {
            a["labels"]["event_id"]: a
            for body in webhook_receiver.received()
            for a in body.get("alerts", [])
            if a["labels"].get("app") == group.app_id and a["status"] == "firing"
        }

    deadline = time.monotonic() + 120
    while set(delivered()) != set(streamed) and time.monotonic() < deadline:
        time.sleep(0.5)
    missing = {k: streamed[k]["status"] for k in set(streamed) - set(delivered())}
    assert not missing, f"not notified by Alertmanager (event status): {missing}"
    assert set(delivered()) == set(streamed)
    for event_id, alert in delivered().items():
        evidence = orjson.loads(alert["annotations"]["evidence"])
        # the last notified version: later updates may only have added cues
        assert evidence and set(evidence) <= set(cue_ids(streamed[event_id]))

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
    group.wait_group_stable(members=2, timeout_s=90)  # both hold partitions before data
    publish(group.settings, group.topic, fleet["messages"])
    group.wait_caught_up(timeout_s=300)
    from stream.cli_worker import metric_sum

    tracked = [metric_sum(group.metrics(k), "meterwatch_meters_tracked") for k in (0, 1)]
    assert all(t > 0 for t in tracked), f"one worker got no partition: {tracked}"
    assert sum(tracked) == 40
    assert first_raises(redis_alerts(redis_client)) == fleet["reference"]
