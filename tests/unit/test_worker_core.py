"""StreamWorker without Faust or servers: DLQ, sinks order, checkpoints, commits, recovery."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from fakes_streaming import MemoryRedisSink, MemorySnapshotStore, ToyEngine, gateway_batch, reading
from prometheus_client import CollectorRegistry

from stream.codecs import concat_batches, decode_message
from stream.metrics import StreamMetrics
from stream.settings import Settings
from stream.sinks.alertmanager import AlertmanagerSink
from stream.sinks.kafka_sink import KafkaOutputSink
from stream.worker import InputMessage, Sinks, StreamWorker, decode_snapshot

T0 = 1_767_571_200_000  # 2026-01-05T00:00:00Z


class Clock:
    def __init__(self) -> None:
        self.mono = 0.0
        self.wall_s = T0 / 1000 + 3600.0

    def monotonic(self) -> float:
        return self.mono

    def wall(self) -> float:
        return self.wall_s


class Harness:
    def __init__(self, store: MemorySnapshotStore | None = None, redis: Any = None) -> None:
        self.clock = Clock()
        self.registry = CollectorRegistry()
        self.metrics = StreamMetrics(self.registry)
        self.kafka_records: list[tuple[str, bytes | None, bytes]] = []
        self.posts: list[list[dict[str, Any]]] = []
        self.commits: list[tuple[int, int]] = []
        self.order: list[str] = []
        self.store = store or MemorySnapshotStore()
        self.redis = redis or MemoryRedisSink()

        async def send(topic: str, key: bytes | None, value: bytes) -> None:
            self.kafka_records.append((topic, key, value))

        async def post(url: str, body: bytes) -> None:
            self.posts.append(orjson.loads(body))

        async def commit(partition: int, offset: int) -> None:
            self.order.append("commit")
            self.commits.append((partition, offset))

        async def no_sleep(_: float) -> None:
            return None

        original_save = self.store.save

        async def save(partition: int, blob: bytes) -> None:
            self.order.append("snapshot")
            await original_save(partition, blob)

        self.store.save = save  # type: ignore[method-assign]
        settings = Settings(snapshot_interval_seconds=10.0)
        self.worker = StreamWorker(
            settings,
            new_engine=ToyEngine,
            restore_engine=ToyEngine.restore,
            decode=decode_message,
            concat=concat_batches,
            sinks=Sinks(
                kafka=KafkaOutputSink(
                    send, events_topic="theft.events", dlq_topic="dlq",
                    on_retry=self.metrics.count_sink_retry, sleep=no_sleep,
                ),
                redis=self.redis,  # type: ignore[arg-type]
                alertmanager=AlertmanagerSink(
                    "http://am", on_retry=self.metrics.count_sink_retry,
                    clock=lambda: datetime.fromtimestamp(self.clock.wall_s, tz=UTC),
                    post=post, sleep=no_sleep,
                ),
            ),
            snapshots=self.store,
            commit=commit,
            metrics=self.metrics,
            monotonic=self.clock.monotonic,
            wall=self.clock.wall,
        )  # fmt: skip

    def value(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels or None) or 0.0


def stream_of(meters: int, steps: int) -> list[bytes]:
    """Each step one reading per meter; meter m steals (p < 0) in steps [3m+2, 3m+4)."""
    out = []
    for step in range(steps):
        for m in range(meters):
            stealing = 3 * m + 2 <= step < 3 * m + 4
            out.append(reading(f"MTR-{m:03d}", T0 + step * 60_000, -50.0 if stealing else 400.0))
    return out


def messages(values: list[bytes], partition: int = 0, start: int = 0) -> list[InputMessage]:
    return [
        InputMessage(partition, start + k, v, timestamp_s=(T0 / 1000) + 3600.0 - 1.0)
        for k, v in enumerate(values)
    ]


def test_malformed_messages_go_to_dlq_with_reasons_and_good_ones_are_scored() -> None:
    h = Harness()
    values = [
        b"{not json",
        reading("MTR-1", T0, 100.0, pf=1.5),
        reading("MTR-1", T0, 100.0, v=0.0),
        reading("MTR-1", T0 + 60_000, 100.0),
        gateway_batch(
            "GW-9", [reading("MTR-2", T0, 10.0), reading("MTR-3", T0, float("nan"))]
        ),  # NaN -> null
    ]
    asyncio.run(h.worker.process(messages(values)))
    dlq = [orjson.loads(v) for t, _, v in h.kafka_records if t == "dlq"]
    reasons = sorted(r["reason"] for r in dlq)
    assert reasons == sorted(["unparsable", "pf_out_of_range", "voltage_non_positive",
                              "bad_type"])  # fmt: skip
    assert all(set(r) == {"reason", "detail", "raw"} for r in dlq)
    assert h.value("meterwatch_rejected_total", reason="pf_out_of_range") == 1
    assert h.value("meterwatch_readings_total") == 2
    assert h.value("meterwatch_messages_total", form="batch") == 1
    assert h.value("meterwatch_messages_total", form="single") == 4
    assert h.worker.partitions[0].next_offset == len(values)


def test_alerts_reach_redis_alertmanager_and_kafka_with_metrics() -> None:
    h = Harness()
    asyncio.run(h.worker.process(messages(stream_of(2, 8))))
    assert h.redis.alert_stream == [
        ("MTR-000:" + str(T0 + 2 * 60_000), 1),
        ("MTR-000:" + str(T0 + 2 * 60_000), 3),
        ("MTR-001:" + str(T0 + 5 * 60_000), 1),
        ("MTR-001:" + str(T0 + 5 * 60_000), 3),
    ]
    events = [orjson.loads(v) for t, _, v in h.kafka_records if t == "theft.events"]
    assert len(events) == 6  # open, update, close per meter
    posted = [a for batch in h.posts for a in batch]
    # both events opened and closed within the same wall-clock second: Alertmanager would
    # never notify an alert it first sees resolved, so the closes are held, still firing
    assert [("endsAt" in a) for a in posted] == [False, False, False, False]
    assert h.value("meterwatch_alerts_total", severity="high", cue="reverse_flow") == 2
    assert h.value("meterwatch_alert_latency_seconds_count") == 4
    assert h.value("meterwatch_open_events") == 0
    sink = h.worker.sinks.alertmanager
    assert {a.event["status"] for a in sink.open_alerts.values()} == {"closed"}
    h.clock.wall_s += sink.min_firing_s
    assert asyncio.run(sink.repost_open()) == 2
    assert all("endsAt" in a for a in h.posts[-1])
    assert not sink.open_alerts


def test_checkpoint_is_written_before_the_commit_and_only_when_due() -> None:
    h = Harness()
    values = stream_of(3, 6)
    asyncio.run(h.worker.process(messages(values[:9])))
    assert h.commits == []  # interval not reached: nothing committed
    h.clock.mono += 11.0
    asyncio.run(h.worker.process(messages(values[9:12], start=9)))
    assert h.order == ["snapshot", "commit"]
    assert h.commits == [(0, 12)]
    header, _ = decode_snapshot(h.store.blobs[0])
    assert header["next_offset"] == 12
    asyncio.run(h.worker.checkpoint_due())  # nothing new since: no second snapshot
    assert h.order == ["snapshot", "commit"]


def test_crash_replay_neither_loses_nor_duplicates_alerts_and_keeps_state() -> None:
    values = stream_of(4, 16)
    reference = Harness()
    asyncio.run(reference.worker.process(messages(values)))

    store, redis = MemorySnapshotStore(), MemoryRedisSink()
    first = Harness(store, redis)
    cut = 30
    asyncio.run(first.worker.process(messages(values[:cut])))
    first.clock.mono += 11.0
    asyncio.run(first.worker.process(messages(values[cut : cut + 5], start=cut)))
    committed = first.commits[-1][1]
    asyncio.run(first.worker.process(messages(values[cut + 5 : 50], start=cut + 5)))
    # kill -9: the first worker vanishes without a checkpoint; the second resumes at the
    # committed offset and also sees a few messages from before it (fetch overlap).
    second = Harness(store, redis)
    resume = committed - 3
    asyncio.run(second.worker.process(messages(values[resume:], start=resume)))

    assert redis.alert_stream == reference.redis.alert_stream
    assert len(set(redis.alert_stream)) == len(redis.alert_stream)
    ref_state = reference.worker.partitions[0].engine.state
    assert second.worker.partitions[0].engine.state == ref_state


def test_sink_failure_is_retried_and_offsets_wait_for_it() -> None:
    h = Harness()
    attempts = {"n": 0}
    real_post = h.worker.sinks.alertmanager._post

    async def flaky_post(url: str, body: bytes) -> None:
        attempts["n"] += 1
        if attempts["n"] <= 3:
            raise ConnectionRefusedError("alertmanager down")
        await real_post(url, body)

    h.worker.sinks.alertmanager._post = flaky_post
    asyncio.run(h.worker.process(messages(stream_of(1, 4))))
    assert h.value("meterwatch_sink_retries_total", sink="alertmanager") == 3
    assert len(h.posts) == 1
    h.clock.mono += 11.0
    asyncio.run(h.worker.checkpoint_due())
    assert h.commits == [(0, 4)]


def test_revoke_checkpoints_and_drops_partition_state() -> None:
    h = Harness()
    asyncio.run(h.worker.process(messages(stream_of(2, 3), partition=1)))
    asyncio.run(h.worker.revoke({1, 7}))
    assert h.worker.partitions == {}
    assert h.commits == [(1, 6)]
    header, blob = decode_snapshot(h.store.blobs[1])
    assert ToyEngine.restore(blob).meters_tracked == 2


def test_open_alerts_survive_in_the_snapshot_for_reposting() -> None:
    store = MemorySnapshotStore()
    h = Harness(store)
    asyncio.run(h.worker.process(messages(stream_of(1, 3))))  # meter 0 steals from step 2
    h.clock.mono += 11.0
    asyncio.run(h.worker.checkpoint_due())
    assert len(h.worker.sinks.alertmanager.open_alerts) == 1
    again = Harness(store)
    again.clock.wall_s += again.worker.sinks.alertmanager.min_firing_s  # it has fired a while
    asyncio.run(again.worker.process(messages([reading("MTR-000", T0 + 9 * 60_000, 1.0)], start=3)))
    closing = [a for batch in again.posts for a in batch]
    assert len(closing) == 1 and "endsAt" in closing[0]
    assert closing[0]["startsAt"] == h.posts[0][0]["startsAt"]


def test_a_held_resolve_survives_the_snapshot_and_resolves_after_the_restart() -> None:
    store = MemorySnapshotStore()
    h = Harness(store)
    asyncio.run(h.worker.process(messages(stream_of(1, 8))))  # raised and closed at once
    h.clock.mono += 11.0
    asyncio.run(h.worker.checkpoint_due())
    [held] = h.worker.sinks.alertmanager.open_alerts.values()
    assert held.event["status"] == "closed"
    again = Harness(store)
    asyncio.run(again.worker.prepare({0}))
    sink = again.worker.sinks.alertmanager
    assert asyncio.run(sink.repost_open()) == 1 and "endsAt" not in again.posts[-1][0]
    again.clock.wall_s += sink.min_firing_s
    assert asyncio.run(sink.repost_open()) == 1 and "endsAt" in again.posts[-1][0]
    assert again.posts[-1][0]["startsAt"] == h.posts[0][0]["startsAt"]
    assert not sink.open_alerts


@pytest.mark.parametrize("bad", [b"", b"MWS0\x00\x00\x00\x02{}"])
def test_decode_snapshot_rejects_foreign_blobs(bad: bytes) -> None:
    with pytest.raises(ValueError, match="not a meterwatch"):
        decode_snapshot(bad)


def test_prepare_restores_assigned_partitions_before_their_data() -> None:
    store = MemorySnapshotStore()
    first = Harness(store)
    asyncio.run(first.worker.process(messages(stream_of(2, 3), partition=2)))
    asyncio.run(first.worker.revoke({2}))
    second = Harness(store)
    asyncio.run(second.worker.prepare({2, 3}))
    assert set(second.worker.partitions) == {2, 3}
    assert second.worker.partitions[2].next_offset == 6
    assert second.worker.partitions[2].engine.meters_tracked == 2
    assert second.worker.partitions[3].next_offset is None  # no snapshot: fresh engine
    engine = second.worker.partitions[2].engine
    asyncio.run(second.worker.process(messages([reading("MTR-000", T0 + 9 * 60_000, 1.0)], 2, 6)))
    assert second.worker.partitions[2].engine is engine  # not restored a second time
