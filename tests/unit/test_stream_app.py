"""The Faust app factory with faust's ``test_context()``: agents stay thin, no Kafka needed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from fakes_streaming import MemoryRedisSink, MemorySnapshotStore, ToyEngine, reading
from prometheus_client import CollectorRegistry

from stream.metrics import StreamMetrics
from stream.settings import Settings
from stream.sinks.alertmanager import AlertmanagerSink
from stream.sinks.kafka_sink import KafkaOutputSink
from stream.worker import Sinks

T0 = 1_767_571_200_000


def build(
    tmp_path: Path, engine: Any = ToyEngine, on_fatal: Any = None, **overrides: Any
) -> tuple[Any, list[tuple[str, bytes | None, bytes]], MemoryRedisSink]:
    from stream.app import create_app

    registry = CollectorRegistry()
    metrics = StreamMetrics(registry)
    sent: list[tuple[str, bytes | None, bytes]] = []
    redis = MemoryRedisSink()

    async def send(topic: str, key: bytes | None, value: bytes) -> None:
        sent.append((topic, key, value))

    async def post(url: str, body: bytes) -> None:
        return None

    async def commit(partition: int, offset: int) -> None:
        return None

    sinks = Sinks(
        kafka=KafkaOutputSink(send, events_topic="theft.events", dlq_topic="dlq",
                              on_retry=metrics.count_sink_retry),
        redis=redis,  # type: ignore[arg-type]
        alertmanager=AlertmanagerSink("http://am", on_retry=metrics.count_sink_retry,
                                      clock=lambda: datetime.now(tz=UTC), post=post),
    )  # fmt: skip
    settings = Settings(
        **{"app_id": "mw-test-app", "batch_size": 50, "batch_within_seconds": 0.05, **overrides}
    )
    app = create_app(
        settings, metrics=metrics, sinks=sinks, snapshot_store=MemorySnapshotStore(),
        new_engine=engine, restore_engine=ToyEngine.restore, commit=commit,
        datadir=tmp_path, on_fatal=on_fatal,
    )  # fmt: skip
    return app, sent, redis


def test_factory_has_no_import_side_effects_and_builds_independent_apps(tmp_path: Path) -> None:
    import stream.app

    assert not any(type(v).__name__ == "App" for v in vars(stream.app).values())
    first, _, _ = build(tmp_path / "a")
    second, _, _ = build(tmp_path / "b")
    assert first is not second and first.mw_worker is not second.mw_worker
    topic = first.mw_agent.channel
    assert topic.acks is False  # offsets are committed by the worker after snapshots


def test_agent_decodes_scores_and_routes_outputs(tmp_path: Path) -> None:
    app, sent, redis = build(tmp_path)

    async def run() -> None:
        async with app.mw_agent.test_context() as agent:
            values = [reading("MTR-1", T0 + k * 60_000, -5.0 if k == 2 else 50.0) for k in range(4)]
            values.insert(1, b"\x00garbage")
            for value in values:
                await agent.put(value, key=b"MTR-1", partition=3)
            for _ in range(100):
                if app.mw_worker.partitions.get(3) and redis.alert_stream[1:]:
                    break
                await asyncio.sleep(0.02)

    asyncio.run(run())
    assert redis.alert_stream == [(f"MTR-1:{T0 + 120_000}", 1), (f"MTR-1:{T0 + 120_000}", 2)]
    dlq = [orjson.loads(v) for t, _, v in sent if t == "dlq"]
    assert [d["reason"] for d in dlq] == ["unparsable"]
    assert app.mw_worker.partitions[3].engine.meters_tracked == 1
    assert app.mw_metrics.registry.get_sample_value("meterwatch_readings_total") == 4


class BrokenEngine(ToyEngine):
    def process(self, batch: Any) -> Any:
        raise FloatingPointError("engine bug")


def test_an_engine_failure_exits_without_checkpoint(tmp_path: Path) -> None:
    fatal: list[BaseException] = []
    app, sent, redis = build(tmp_path, engine=BrokenEngine, on_fatal=fatal.append)

    async def run() -> None:
        async with app.mw_agent.test_context() as agent:
            await agent.put(reading("MTR-1", T0, 5.0), key=b"MTR-1", partition=0)
            for _ in range(100):
                if fatal:
                    break
                await asyncio.sleep(0.02)

    asyncio.run(run())
    assert [type(e) for e in fatal] == [FloatingPointError]
    assert app.mw_worker.partitions[0].next_offset is None  # nothing marked as done
    assert redis.calls == 0 and sent == []
