"""The streaming worker's core, independent of Faust: per-partition engines, sinks,
checkpoints, recovery and offset commits.

Design (README "Streaming: state and recovery"):

- Each input partition has its own :class:`stream.engine.Engine`. Kafka partitions are the
  unit of state: the engine of partition ``p`` only ever sees readings of partition ``p``.
- A micro-batch of messages is decoded, run through the partition's engine, and its outputs
  are handed to the sinks: Kafka (``theft.events`` + DLQ), Redis, Alertmanager. Sinks retry
  until they succeed, so a batch is finished only when every output was accepted.
- Every ``snapshot_interval_seconds`` (wall clock) and when a partition is revoked or the
  worker stops, the partition's engine snapshot is written to a compacted changelog topic
  together with ``next_offset``: the first input offset the snapshot does *not* cover.
  Only then is ``next_offset`` committed to the consumer group. Committed offset and
  snapshot therefore always agree (or the snapshot is ahead, see below).
- On (re)assignment the first batch of a partition restores its snapshot. The consumer
  resumes at the committed offset; messages below the snapshot's ``next_offset`` (possible
  when a crash fell between the snapshot write and the commit) are skipped.
- Outputs produced again after a crash (the readings between the last snapshot and the
  crash are processed a second time by the same deterministic engine) carry the same
  (event_id, version), and the Redis sink writes each (event_id, version) once: no alert
  is lost and none is duplicated in ``mw:alerts``.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import orjson

from stream.engine import SnapshotCorrupt, SnapshotIncompatible
from stream.metrics import StreamMetrics
from stream.sinks.alertmanager import AlertmanagerSink
from stream.sinks.events import event_to_dict
from stream.sinks.kafka_sink import KafkaOutputSink
from stream.sinks.redis_sink import RedisSink, WindowBatch

log = logging.getLogger(__name__)

SNAPSHOT_MAGIC = b"MWS1"
FLEET_GAUGES_INTERVAL_S = 5.0


@dataclass(frozen=True, slots=True)
class InputMessage:
    """One consumed Kafka record, as the worker needs it."""

    partition: int
    offset: int
    value: bytes
    timestamp_s: float | None = None  # Kafka record time (publisher's wall clock), seconds


class SnapshotStore(Protocol):
    async def load(self, partition: int) -> bytes | None: ...

    async def save(self, partition: int, blob: bytes) -> None: ...


Commit = Callable[[int, int], Awaitable[None]]  # (partition, next_offset)


@dataclass
class Sinks:
    kafka: KafkaOutputSink
    redis: RedisSink
    alertmanager: AlertmanagerSink


@dataclass
class PartitionState:
    engine: Any
    next_offset: int | None
    last_snapshot_at: float
    newest_ts_ms: int = 0
    processed_since_snapshot: int = 0
    open_event_ids: set[str] = field(default_factory=set)


def encode_snapshot(header: dict[str, Any], engine_blob: bytes) -> bytes:
    head = orjson.dumps(header)
    return SNAPSHOT_MAGIC + struct.pack(">I", len(head)) + head + engine_blob


def decode_snapshot(blob: bytes) -> tuple[dict[str, Any], bytes]:
    if blob[:4] != SNAPSHOT_MAGIC:
        raise ValueError("not a meterwatch partition snapshot")
    (length,) = struct.unpack(">I", blob[4:8])
    header: dict[str, Any] = orjson.loads(blob[8 : 8 + length])
    return header, blob[8 + length :]


def _header_offset(header: dict[str, Any] | None) -> int | None:
    """The snapshot header's ``next_offset`` when it is readable, else None."""
    try:
        return None if header is None else int(header["next_offset"])
    except (KeyError, TypeError, ValueError):
        return None


def message_form(value: bytes) -> str:
    return "batch" if b'"readings"' in value else "single"


def window_batch(out: Any) -> WindowBatch | None:
    """Per-window drill-down columns, when the engine exposes per-window meter ids."""
    meters = getattr(out, "window_meter_ids", None)
    if meters is None or len(meters) == 0:
        return None
    return WindowBatch(
        meter_id=meters,
        end_ms=out.window_end_ms,
        scores=out.scores or {},
        means=getattr(out, "window_means", None) or {},
        gateway_id=getattr(out, "window_gateway_ids", None),
    )


class StreamWorker:
    """Processes micro-batches of consumed messages for the partitions this worker owns."""

    def __init__(
        self,
        settings: Any,
        *,
        new_engine: Callable[[], Any],
        restore_engine: Callable[[bytes], Any],
        decode: Callable[[bytes, int | None], tuple[Any, list[Any]]],
        concat: Callable[[list[Any]], Any],
        sinks: Sinks,
        snapshots: SnapshotStore,
        commit: Commit,
        metrics: StreamMetrics,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        write_windows: bool = True,
        decode_many: Callable[[list[bytes], int | None], tuple[Any, list[Any]]] | None = None,
    ) -> None:
        """``decode`` turns one message into (batch, rejections); ``decode_many``, when
        given, does a whole micro-batch of one partition at once with the same result as
        ``decode`` on each message and ``concat`` (it is faster: arrays built once)."""
        self.settings = settings
        self._decode_many = decode_many
        self._new_engine = new_engine
        self._restore_engine = restore_engine
        self._decode = decode
        self._concat = concat
        self.sinks = sinks
        self._snapshots = snapshots
        self._commit = commit
        self.metrics = metrics
        self._monotonic = monotonic
        self._wall = wall
        self._write_windows = write_windows
        self.partitions: dict[int, PartitionState] = {}
        self._fleet_gauges_at = float("-inf")
        self._lock = asyncio.Lock()
        self._revoked: set[int] = set()

    # --- the micro-batch path ----------------------------------------------------
    def _decode_all(self, values: list[bytes], newest_ms: int | None) -> tuple[Any, list[Any]]:
        """The messages of one partition's micro-batch as one engine batch, and the
        rejections in message order."""
        if self._decode_many is not None:
            return self._decode_many(values, newest_ms)
        batches = []
        rejections: list[Any] = []
        for value in values:
            batch, rejected = self._decode(value, newest_ms)
            rejections.extend(rejected)
            if len(batch):
                batches.append(batch)
        return self._concat(batches), rejections

    async def process(self, messages: Sequence[InputMessage]) -> None:
        """Decode, score and deliver one micro-batch; checkpoint partitions that are due."""
        if not messages:
            return
        started = self._monotonic()
        by_partition: dict[int, list[InputMessage]] = {}
        for message in messages:
            by_partition.setdefault(message.partition, []).append(message)
        async with self._lock:
            for partition, batch in sorted(by_partition.items()):
                self._revoked.discard(partition)
                await self._process_partition(partition, batch)
            self._update_gauges()
            for partition in list(self.partitions):
                if self._snapshot_due(partition):
                    await self._checkpoint(partition)
        self.metrics.batch_seconds.observe(self._monotonic() - started)

    async def _process_partition(self, partition: int, messages: list[InputMessage]) -> None:
        state = self.partitions.get(partition)
        if state is None:
            state = await self._restore(partition)
            self.partitions[partition] = state
        if state.next_offset is not None:
            messages = [m for m in messages if m.offset >= state.next_offset]
            if not messages:
                return
        clock_ms = int(self._wall() * 1000)
        newest = max(clock_ms, state.newest_ts_ms)
        values = [m.value for m in messages]
        batches = sum(1 for value in values if message_form(value) == "batch")
        self.metrics.count_messages(batch=batches, single=len(values) - batches)
        readings, rejections = self._decode_all(values, newest)
        out = None
        if len(readings):
            state.newest_ts_ms = max(state.newest_ts_ms, int(np.max(readings.ts_ms)))
            out = state.engine.process(readings)
            rejections.extend(out.rejected)
        stamps = [m.timestamp_s for m in messages if m.timestamp_s is not None]
        oldest_publish_s = min(stamps) if stamps else None
        await self._deliver(partition, state, out, rejections, oldest_publish_s)
        state.next_offset = messages[-1].offset + 1
        state.processed_since_snapshot += len(messages)

    async def _deliver(
        self,
        partition: int,
        state: PartitionState,
        out: Any,
        rejections: list[Any],
        oldest_publish_s: float | None,
    ) -> None:
        updates = [event_to_dict(e) for e in out.event_updates] if out is not None else []
        alerts = [event_to_dict(e) for e in out.alerts] if out is not None else []
        alert_keys = {(str(a["event_id"]), int(a["version"])) for a in alerts}
        # An alert the engine did not also list as an update still has to reach Redis.
        known = {(str(u["event_id"]), int(u["version"])) for u in updates}
        updates += [a for a in alerts if (str(a["event_id"]), int(a["version"])) not in known]

        await self.sinks.kafka.publish(updates, rejections)
        self.metrics.count_rejections(rejections)
        if out is not None:
            self.metrics.observe_engine_output(out)
            if oldest_publish_s is not None and out.windows_scored:
                lag = self._wall() - oldest_publish_s
                self.metrics.observe_scoring_latency(lag, int(out.windows_scored))
        written = await self.sinks.redis.write_events(updates, alert_keys)
        if written and oldest_publish_s is not None:
            lag = self._wall() - oldest_publish_s
            for _ in written:
                self.metrics.observe_alert_latency(lag)
        self.metrics.count_alerts(written)
        if alerts:
            await self.sinks.alertmanager.send(alerts, partition)
        for update in updates:
            if update.get("status") == "closed":
                state.open_event_ids.discard(str(update["event_id"]))
            else:
                state.open_event_ids.add(str(update["event_id"]))
        windows = window_batch(out) if self._write_windows and out is not None else None
        if windows is not None:
            await self.sinks.redis.write_windows(windows)

    def _update_gauges(self) -> None:
        engines = [s.engine for s in self.partitions.values()]
        self.metrics.state_bytes.set(sum(int(e.state_bytes()) for e in engines))
        self.metrics.meters_tracked.set(sum(int(e.meters_tracked) for e in engines))
        self.metrics.open_events.set(sum(len(s.open_event_ids) for s in self.partitions.values()))
        # The fleet gauges walk every meter of the partition: at most every few seconds.
        now = self._monotonic()
        if now - self._fleet_gauges_at < FLEET_GAUGES_INTERVAL_S:
            return
        self._fleet_gauges_at = now
        totals = {"meters_reporting": 0, "gateways_seen": 0, "gateways_silent": 0}
        for engine in engines:
            for name, value in engine.fleet_gauges().items():
                totals[name] += value
        for name, value in totals.items():
            getattr(self.metrics, name).set(value)

    # --- checkpoints -------------------------------------------------------------
    def _snapshot_due(self, partition: int) -> bool:
        state = self.partitions[partition]
        if state.processed_since_snapshot == 0:
            return False
        elapsed = self._monotonic() - state.last_snapshot_at
        return bool(elapsed >= float(self.settings.snapshot_interval_seconds))

    async def _checkpoint(self, partition: int) -> None:
        state = self.partitions[partition]
        if state.next_offset is None or partition in self._revoked:
            return
        header = {
            "partition": partition,
            "next_offset": state.next_offset,
            "newest_ts_ms": state.newest_ts_ms,
            "open_event_ids": sorted(state.open_event_ids),
            "open_alerts": self.sinks.alertmanager.export_partition(partition),
            "saved_at": datetime.fromtimestamp(self._wall(), tz=UTC).isoformat(),
        }
        blob = encode_snapshot(header, state.engine.snapshot())
        await self._snapshots.save(partition, blob)
        # The commit follows the snapshot, never precedes it: see the module docstring.
        await self._commit(partition, state.next_offset)
        state.last_snapshot_at = self._monotonic()
        state.processed_since_snapshot = 0
        log.info(
            "partition %d checkpointed at offset %d (%d bytes)",
            partition,
            state.next_offset,
            len(blob),
        )

    async def checkpoint_due(self) -> None:
        """Checkpoint partitions whose interval has passed (called by a timer when idle)."""
        async with self._lock:
            for partition in list(self.partitions):
                if self._snapshot_due(partition):
                    await self._checkpoint(partition)

    async def checkpoint_all(self) -> None:
        async with self._lock:
            for partition in list(self.partitions):
                if self.partitions[partition].processed_since_snapshot:
                    await self._checkpoint(partition)

    async def _restore(self, partition: int) -> PartitionState:
        blob = await self._snapshots.load(partition)
        now = self._monotonic()
        if blob is None:
            log.info("partition %d: no snapshot, starting with a fresh engine", partition)
            return self._fresh(partition, None, now)
        header: dict[str, Any] | None = None
        try:
            header, engine_blob = decode_snapshot(blob)
            next_offset = int(header["next_offset"])
            engine = self._restore_engine(engine_blob)
        except Exception as exc:  # noqa: BLE001 - any unrestorable snapshot: see below
            # Exiting here would crash-loop the worker on every restart. Trade-off: this
            # partition's baselines are relearned (its meters go through warm-up again, so
            # empty baselines raise no alerts); offsets keep their meaning.
            readable = isinstance(exc, SnapshotIncompatible) and not isinstance(
                exc, SnapshotCorrupt
            )
            reason = "incompatible" if readable else "corrupt"
            self.metrics.count_snapshot_restore_failure(reason)
            log.error(
                "partition %d: snapshot not restored (%s: %s); starting a fresh engine, "
                "its meters' baselines are relearned",
                partition,
                reason,
                exc,
            )
            resume = _header_offset(header)
            return self._fresh(partition, resume, now)
        self._report_model(engine)
        self.sinks.alertmanager.import_partition(partition, header.get("open_alerts", []))
        log.info(
            "partition %d: restored snapshot at offset %d (%d meters)",
            partition,
            next_offset,
            int(engine.meters_tracked),
        )
        return PartitionState(
            engine,
            next_offset,
            now,
            newest_ts_ms=int(header.get("newest_ts_ms", 0)),
            open_event_ids=set(header.get("open_event_ids", [])),
        )

    def _fresh(self, partition: int, next_offset: int | None, now: float) -> PartitionState:
        """A partition state with a new engine; ``next_offset`` from a readable snapshot
        header keeps skipping input that snapshot already covered (its outputs were sent)."""
        engine = self._new_engine()
        self._report_model(engine)
        return PartitionState(engine, next_offset, now)

    def _report_model(self, engine: Any) -> None:
        version = getattr(engine, "model_version", None)
        if version is not None:
            loaded = getattr(engine, "scorer", None) is not None
            self.metrics.set_model_versions({"hybrid": str(version)}, artifact_loaded=loaded)

    # --- rebalance ---------------------------------------------------------------
    async def prepare(self, partitions: set[int]) -> None:
        """Restore (or create) the engines of newly assigned partitions before their data
        arrives, so the first batch does not pay for loading models and snapshots."""
        async with self._lock:
            for partition in sorted(partitions):
                self._revoked.discard(partition)
                if partition not in self.partitions:
                    self.partitions[partition] = await self._restore(partition)

    async def revoke(self, partitions: set[int], *, timeout_s: float = 10.0) -> None:
        """Drop revoked partitions' state, checkpointing first when no batch is in flight.

        Dropping without a checkpoint is also correct (the next owner replays from the last
        snapshot and sinks deduplicate); the checkpoint only shortens that replay.
        """
        mine = partitions & set(self.partitions)
        if not mine:
            return
        try:
            await asyncio.wait_for(self._lock.acquire(), timeout=timeout_s)
        except TimeoutError:
            log.warning("revoke: a batch is still in flight; dropping without checkpoint")
            self._drop(mine)
            return
        try:
            for partition in mine:
                if self.partitions[partition].processed_since_snapshot:
                    try:
                        await asyncio.wait_for(self._checkpoint(partition), timeout=timeout_s)
                    except (TimeoutError, Exception) as exc:  # noqa: BLE001 - best effort
                        log.warning("revoke: checkpoint of %d failed: %r", partition, exc)
            self._drop(mine)
        finally:
            self._lock.release()

    def _drop(self, partitions: set[int]) -> None:
        self._revoked |= partitions
        for partition in partitions:
            self.partitions.pop(partition, None)
            self.sinks.alertmanager.drop_partition(partition)
            try:
                self.metrics.consumer_lag.remove(str(partition))
            except KeyError:
                pass  # no lag reported yet for this partition

    def set_lag(self, lags: dict[int, int]) -> None:
        for partition, lag in lags.items():
            if partition in self.partitions:
                self.metrics.consumer_lag.labels(partition=str(partition)).set(max(lag, 0))
