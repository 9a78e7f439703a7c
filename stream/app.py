"""The faust-streaming application: a factory, never an app at import time.

``create_app(settings, registry=...)`` builds a ``faust.App`` with one thin agent:
micro-batches of Kafka records (``stream.take_events(n, within=...)``) are handed to
:class:`stream.worker.StreamWorker`, which decodes them, runs the partition's engine and
writes the outputs to the sinks. Everything else (state, checkpoints, commits) lives in
the worker, which is tested without Faust.

Offsets: the readings topic is declared with ``acks=False``, so Faust never commits its
offsets by itself. The worker commits a partition's offset right after writing the
partition's engine snapshot (see ``stream/worker.py``), so the committed offset is always
covered by a snapshot and a restarted worker neither skips readings nor loses state.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from stream.metrics import StreamMetrics
from stream.worker import InputMessage, Sinks, SnapshotStore, StreamWorker

log = logging.getLogger(__name__)

AGENT_NAME = "score-readings"


def default_sinks(
    settings: Any, metrics: StreamMetrics, send: Any, *, repost_interval_s: float = 60.0
) -> Sinks:
    """Kafka, Redis and Alertmanager sinks on the configured servers."""
    import redis.asyncio as aioredis

    from stream.sinks.alertmanager import AlertmanagerSink
    from stream.sinks.kafka_sink import KafkaOutputSink
    from stream.sinks.redis_sink import RedisSink

    client = aioredis.Redis.from_url(
        settings.redis_url, socket_timeout=10.0, socket_connect_timeout=3.0
    )
    return Sinks(
        kafka=KafkaOutputSink(
            send,
            events_topic=settings.topic_events,
            dlq_topic=settings.topic_dlq,
            on_retry=metrics.count_sink_retry,
        ),
        redis=RedisSink(client, on_retry=metrics.count_sink_retry),
        alertmanager=AlertmanagerSink(
            settings.alertmanager_url,
            on_retry=metrics.count_sink_retry,
            clock=lambda: datetime.now(tz=UTC),
            repost_interval_s=repost_interval_s,
            # alerts of two deployments (say staging and production) sharing one
            # Alertmanager must not merge: the same event_id is the same event only
            # within one worker group
            extra_labels={"app": settings.app_id},
        ),
    )


def exit_now(exc: BaseException) -> None:
    """Leave at once, like a crash: no shutdown hooks, so no checkpoint of suspect state."""
    logging.shutdown()
    os._exit(70)  # EX_SOFTWARE


def default_engine_factories(settings: Any) -> tuple[Callable[[], Any], Callable[[bytes], Any]]:
    from stream.engine import Engine

    return (lambda: Engine.from_settings(settings)), (lambda blob: Engine.restore(settings, blob))


def create_app(
    settings: Any,
    *,
    registry: CollectorRegistry | None = None,
    metrics: StreamMetrics | None = None,
    sinks: Sinks | None = None,
    snapshot_store: SnapshotStore | None = None,
    new_engine: Callable[[], Any] | None = None,
    restore_engine: Callable[[bytes], Any] | None = None,
    commit: Callable[[int, int], Any] | None = None,
    datadir: Path | None = None,
    repost_interval_s: float = 60.0,
    on_fatal: Callable[[BaseException], None] | None = None,
    write_windows: bool = True,
) -> Any:
    """A faust App consuming ``settings.topic_readings``; its worker is ``app.mw_worker``.

    Metrics go on ``registry`` (or pass ``metrics`` already built on one, when the sinks
    passed in count their retries there). Every collaborator can be passed in (tests use
    in-memory fakes with ``test_context()``); the defaults are the real Kafka snapshot
    store, Redis, Alertmanager and the engine.
    """
    from faust.types import TP

    from stream.codecs import concat_batches, decode_message, decode_messages
    from stream.faust_transport import App, fetch_wait_transport
    from stream.snapshots import KafkaSnapshotStore, snapshot_topic

    if metrics is None:
        metrics = StreamMetrics(registry if registry is not None else CollectorRegistry())
    datadir = datadir or (settings.stack_dir / "faust" / settings.app_id)
    datadir.parent.mkdir(parents=True, exist_ok=True)  # faust creates only the last level
    app = App(
        settings.app_id,
        transport_class=fetch_wait_transport(settings.consumer_fetch_max_wait_ms),
        broker=f"kafka://{settings.kafka_bootstrap}",
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,
        autodiscover=False,
        store="memory://",
        datadir=str(datadir),
        topic_partitions=settings.readings_partitions,
        consumer_auto_offset_reset="earliest",
        producer_max_request_size=2 * 1024 * 1024,
        stream_buffer_maxsize=max(4 * settings.batch_size, 4096),
        broker_heartbeat_interval=3.0,
        broker_session_timeout=30.0,
    )
    readings = app.topic(
        settings.topic_readings,
        key_type=bytes,
        value_type=bytes,
        partitions=settings.readings_partitions,
        acks=False,
    )

    async def send(topic: str, key: bytes | None, value: bytes) -> Any:
        future = await app.producer.send(topic, key, value, None, None, None)
        return await future

    async def commit_offset(partition: int, next_offset: int) -> None:
        # Faust commits only acked offsets of acking topics; this topic is not one, so the
        # worker commits through the consumer's own low-level commit (see module doc).
        try:
            await app.consumer._commit({TP(settings.topic_readings, partition): next_offset})  # noqa: SLF001
        except Exception as exc:  # noqa: BLE001 - a lost commit only lengthens the replay
            log.warning("commit of partition %d failed: %r", partition, exc)

    if on_fatal is None:
        on_fatal = exit_now
    if new_engine is None or restore_engine is None:
        new_engine, restore_engine = default_engine_factories(settings)
    store = snapshot_store or KafkaSnapshotStore(settings.kafka_bootstrap, snapshot_topic(settings))
    worker = StreamWorker(
        settings,
        new_engine=new_engine,
        restore_engine=restore_engine,
        decode=decode_message,
        concat=concat_batches,
        decode_many=decode_messages,
        sinks=sinks or default_sinks(settings, metrics, send, repost_interval_s=repost_interval_s),
        snapshots=store,
        commit=commit or commit_offset,
        metrics=metrics,
        write_windows=write_windows,
    )
    app.mw_worker = worker
    app.mw_metrics = metrics

    @app.agent(readings, name=AGENT_NAME)
    async def score_readings(stream: Any) -> None:
        async for events in stream.take_events(
            settings.batch_size, within=settings.batch_within_seconds
        ):
            batch = [
                InputMessage(
                    partition=e.message.partition,
                    offset=e.message.offset,
                    value=e.value,
                    timestamp_s=e.message.timestamp,
                )
                for e in events
            ]
            try:
                await worker.process(batch)
            except Exception as exc:
                # Sinks retry forever and decoding never raises, so this is a bug in the
                # engine path. The in-memory state may be half-updated: never checkpoint it.
                # Exit instead (the process supervisor restarts us); the partitions are
                # then restored from their last checkpoint and replayed.
                log.critical("processing failed, exiting without checkpoint", exc_info=exc)
                on_fatal(exc)

    preparing: set[asyncio.Task[None]] = set()

    @app.on_partitions_assigned.connect
    async def on_assigned(sender: Any, assigned: set[Any], **_: Any) -> None:
        mine = {tp.partition for tp in assigned if tp.topic == readings.topics[0]}
        # In the background: the rebalance callback returns at once; the worker's lock
        # orders the restore before the partition's first batch.
        task = asyncio.ensure_future(prepare_quietly(mine))
        preparing.add(task)
        task.add_done_callback(preparing.discard)

    async def prepare_quietly(partitions: set[int]) -> None:
        try:
            await worker.prepare(partitions)
        except Exception as exc:  # noqa: BLE001 - the first batch restores lazily instead
            log.warning("preparing partitions %s failed: %r", sorted(partitions), exc)

    @app.on_partitions_revoked.connect
    async def on_revoked(sender: Any, revoked: set[Any], **_: Any) -> None:
        await worker.revoke({tp.partition for tp in revoked if tp.topic == readings.topics[0]})

    @app.timer(interval=max(1.0, settings.snapshot_interval_seconds / 2))
    async def checkpoint_idle_partitions() -> None:
        # A partition that stops receiving data still gets its last readings checkpointed.
        await worker.checkpoint_due()

    @app.timer(interval=repost_interval_s)
    async def refresh_open_alerts() -> None:
        await worker.sinks.alertmanager.repost_open()

    @app.timer(interval=5.0)
    async def report_consumer_lag() -> None:
        lags = {}
        for partition, state in list(worker.partitions.items()):
            if state.next_offset is None:
                continue
            try:
                highwater = app.consumer.highwater(TP(settings.topic_readings, partition))
            except Exception:  # noqa: S112 - not assigned any more or not fetched yet
                continue
            if highwater is not None:
                lags[partition] = int(highwater) - state.next_offset
        worker.set_lag(lags)

    @app.on_before_shutdown.connect
    async def checkpoint_on_shutdown(sender: Any, **_: Any) -> None:
        await worker.checkpoint_all()

    app.mw_agent = score_readings
    app.mw_started = time.monotonic()
    return app
