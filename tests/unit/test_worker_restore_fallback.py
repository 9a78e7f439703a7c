"""The worker's restore path when a partition snapshot cannot be restored: an ERROR naming
the partition and the reason, a bounded-label metric, and a fresh engine instead of a
crash loop. Engine snapshots here are real ones; the store, sinks and clocks are fakes."""

from __future__ import annotations

import asyncio
import logging
import pickle
from datetime import UTC, datetime

import pytest
from fakes_streaming import MemoryRedisSink, MemorySnapshotStore, reading
from prometheus_client import CollectorRegistry

from rules.thresholds import load_thresholds
from stream.codecs import concat_batches, decode_message
from stream.engine import Engine, EngineConfig
from stream.metrics import StreamMetrics
from stream.settings import Settings
from stream.sinks.alertmanager import AlertmanagerSink
from stream.sinks.kafka_sink import KafkaOutputSink
from stream.worker import InputMessage, Sinks, StreamWorker, encode_snapshot

T0 = 1_767_571_200_000  # 2026-01-05T00:00:00Z
WALL_S = T0 / 1000 + 3600.0


def wall() -> float:
    return WALL_S


class Harness:
    """A StreamWorker over the real engine, configured by ``settings``."""

    def __init__(self, settings: Settings, store: MemorySnapshotStore) -> None:
        self.registry = CollectorRegistry()
        self.metrics = StreamMetrics(self.registry)
        self.store = store
        self.commits: list[tuple[int, int]] = []
        self.fresh_engines = 0

        async def send(topic: str, key: bytes | None, value: bytes) -> None:
            return None

        async def post(url: str, body: bytes) -> None:
            return None

        async def commit(partition: int, offset: int) -> None:
            self.commits.append((partition, offset))

        async def no_sleep(_: float) -> None:
            return None

        def new_engine() -> Engine:
            self.fresh_engines += 1
            return Engine.from_settings(settings, scorer=None, clock=wall)

        def restore_engine(blob: bytes) -> Engine:
            return Engine.restore(settings, blob, clock=wall, scorer=None)

        self.worker = StreamWorker(
            settings,
            new_engine=new_engine,
            restore_engine=restore_engine,
            decode=decode_message,
            concat=concat_batches,
            sinks=Sinks(
                kafka=KafkaOutputSink(
                    send,
                    events_topic="theft.events",
                    dlq_topic="dlq",
                    on_retry=self.metrics.count_sink_retry,
                    sleep=no_sleep,
                ),
                redis=MemoryRedisSink(),  # type: ignore[arg-type]
                alertmanager=AlertmanagerSink(
                    "http://am",
                    on_retry=self.metrics.count_sink_retry,
                    clock=lambda: datetime.fromtimestamp(WALL_S, tz=UTC),
                    post=post,
                    sleep=no_sleep,
                ),
            ),
            snapshots=store,
            commit=commit,
            metrics=self.metrics,
            monotonic=lambda: 0.0,
            wall=wall,
        )

    def failures(self, reason: str) -> float:
        sample = self.registry.get_sample_value(
            "meterwatch_snapshot_restore_failures_total", {"reason": reason}
        )
        return sample or 0.0


def readings(meters: int, steps: int, start_step: int = 0) -> list[bytes]:
    return [
        reading(f"MTR-{m:03d}", T0 + step * 60_000, 400.0 + m)
        for step in range(start_step, start_step + steps)
        for m in range(meters)
    ]


def messages(values: list[bytes], partition: int, start: int) -> list[InputMessage]:
    return [InputMessage(partition, start + k, v) for k, v in enumerate(values)]


def engine_snapshot(settings: Settings, meters: int) -> bytes:
    """A real snapshot of an engine that saw ``meters`` meters, in the worker's envelope."""
    engine = Engine(
        EngineConfig(settings.window_seconds, settings.hop_seconds),
        load_thresholds(settings.thresholds_file),
        None,
        wall,
    )
    batch = concat_batches([decode_message(v, None)[0] for v in readings(meters, 5)])
    assert len(batch) == 5 * meters
    engine.process(batch)
    assert engine.meters_tracked == meters
    header = {"partition": 3, "next_offset": 40, "newest_ts_ms": T0, "open_alerts": []}
    return encode_snapshot(header, engine.snapshot())


def test_compatible_snapshot_is_restored_with_its_meters() -> None:
    settings = Settings()
    store = MemorySnapshotStore()
    store.blobs[3] = engine_snapshot(settings, meters=4)
    h = Harness(settings, store)
    asyncio.run(h.worker.prepare({3}))
    assert h.worker.partitions[3].engine.meters_tracked == 4
    assert h.worker.partitions[3].next_offset == 40
    assert h.fresh_engines == 0
    assert h.failures("incompatible") == h.failures("corrupt") == 0.0


def test_incompatible_snapshot_starts_fresh_logs_and_counts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = MemorySnapshotStore()
    store.blobs[3] = engine_snapshot(Settings(hop_seconds=60), meters=4)
    h = Harness(Settings(hop_seconds=120), store)  # the upgrade changed the hop
    with caplog.at_level(logging.ERROR, logger="stream.worker"):
        asyncio.run(h.worker.prepare({3}))
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "partition 3" in errors[0] and "incompatible" in errors[0]
    assert "state-shaping" in errors[0]
    assert h.failures("incompatible") == 1.0 and h.failures("corrupt") == 0.0
    state = h.worker.partitions[3]
    assert h.fresh_engines == 1 and state.engine.meters_tracked == 0
    assert state.engine.config.hop_s == 120
    # the readable header keeps the offset semantics: input the snapshot covered is skipped
    assert state.next_offset == 40
    values = readings(2, 3)
    asyncio.run(h.worker.process(messages(values, partition=3, start=38)))
    assert state.engine.meters_tracked == 2
    assert state.next_offset == 38 + len(values)


def test_old_format_snapshot_counts_as_incompatible() -> None:
    # a v1 snapshot pickled engine objects (thresholds, detectors) with the engine blob
    old = {"format": "meterwatch.engine.snapshot.v1", "thresholds": load_thresholds()}
    store = MemorySnapshotStore()
    store.blobs[2] = encode_snapshot({"partition": 2, "next_offset": 3}, pickle.dumps(old))
    h = Harness(Settings(), store)
    asyncio.run(h.worker.prepare({2}))
    assert h.failures("incompatible") == 1.0 and h.failures("corrupt") == 0.0
    assert h.fresh_engines == 1 and h.worker.partitions[2].next_offset == 3


@pytest.mark.parametrize(
    "blob",
    [
        b"garbage that is not a snapshot",
        b"MWS1\x00\x00\x00\x05{bad}",
        encode_snapshot({"partition": 5, "next_offset": 7}, b"\x80\x05truncated"),
        encode_snapshot({"partition": 5}, b""),
    ],
    ids=["no-magic", "bad-header", "bad-engine-bytes", "header-without-offset"],
)
def test_corrupt_snapshot_starts_fresh_and_counts(
    blob: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    store = MemorySnapshotStore()
    store.blobs[5] = blob
    h = Harness(Settings(), store)
    values = readings(3, 2)
    with caplog.at_level(logging.ERROR, logger="stream.worker"):
        asyncio.run(h.worker.process(messages(values, partition=5, start=10)))  # past 7
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "partition 5" in errors[0] and "corrupt" in errors[0]
    assert h.failures("corrupt") == 1.0 and h.failures("incompatible") == 0.0
    state = h.worker.partitions[5]
    assert h.fresh_engines == 1
    assert state.engine.meters_tracked == 3  # the batch went through the fresh engine
    assert state.next_offset == 10 + len(values)


def test_fresh_partition_checkpoints_again_after_a_failed_restore() -> None:
    store = MemorySnapshotStore()
    store.blobs[1] = b"garbage"
    settings = Settings()
    h = Harness(settings, store)

    async def run() -> None:
        await h.worker.process(messages(readings(2, 2), partition=1, start=10))
        await h.worker.checkpoint_all()

    asyncio.run(run())
    assert h.commits == [(1, 14)]
    # the new checkpoint replaces the garbage and restores cleanly
    restored = Harness(settings, store)
    asyncio.run(restored.worker.prepare({1}))
    assert restored.failures("corrupt") == 0.0
    assert restored.worker.partitions[1].engine.meters_tracked == 2
    assert restored.worker.partitions[1].next_offset == 14


def test_failure_reason_label_stays_bounded() -> None:
    metrics = StreamMetrics(CollectorRegistry())
    metrics.count_snapshot_restore_failure("some new reason with MTR-123")
    samples = {
        s.labels["reason"]: s.value
        for s in metrics.snapshot_restore_failures.collect()[0].samples
        if s.name.endswith("_total")
    }
    assert samples == {"incompatible": 0.0, "corrupt": 1.0}


def test_load_errors_from_the_store_still_propagate() -> None:
    # a store that cannot be read (e.g. Kafka down) is not a bad snapshot: starting fresh
    # there would throw away good baselines, so the error reaches the caller
    class Failing(MemorySnapshotStore):
        async def load(self, partition: int) -> bytes | None:
            raise ConnectionError("store unavailable")

    h = Harness(Settings(), Failing())
    with pytest.raises(ConnectionError):
        asyncio.run(h.worker.prepare({0}))
    assert h.failures("corrupt") == 0.0 and h.fresh_engines == 0
