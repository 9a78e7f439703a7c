"""Engine snapshots on a compacted Kafka changelog topic, and topic set-up.

A partition's snapshot can be tens of MB (a few KB per meter), more than one Kafka
record may hold, so it is written as chunks followed by a manifest:

- chunk records, key ``{partition}/{slot}/{index}``, value = 16-byte snapshot id + data;
- then the manifest, key ``{partition}/manifest``, value = JSON ``{id, slot, chunks,
  size, sha256}``.

Consecutive snapshots of a partition alternate between two slots, so a crash while
writing one never damages the chunks the latest manifest points to; compaction keeps
the latest record per key and so bounds the topic at about two snapshots per partition.
Loading reads the partition of the changelog to its end, keeps the latest value per
key, and checks the chunks against the manifest's id and SHA-256.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from typing import Any

import orjson

log = logging.getLogger(__name__)

CHUNK_BYTES = 512 * 1024


def snapshot_topic(settings: Any) -> str:
    return f"{settings.app_id}-engine-snapshots"


class KafkaSnapshotStore:
    def __init__(self, bootstrap: str, topic: str, *, chunk_bytes: int = CHUNK_BYTES) -> None:
        self._bootstrap = bootstrap
        self.topic = topic
        self._chunk_bytes = chunk_bytes
        self._producer: Any = None
        self._slot: dict[int, int] = {}
        self._topic_partitions: int | None = None

    async def start(self) -> None:
        from aiokafka import AIOKafkaProducer

        self._producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            acks="all",
            max_request_size=self._chunk_bytes + 64 * 1024,
            linger_ms=0,
        )
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def _partition_of(self, partition: int) -> int:
        if self._topic_partitions is None:
            parts = await self._producer.partitions_for(self.topic)
            self._topic_partitions = max(len(parts), 1)
        return partition % self._topic_partitions

    async def save(self, partition: int, blob: bytes) -> None:
        if self._producer is None:
            await self.start()
        slot = 1 - self._slot.get(partition, 1)
        snapshot_id = uuid.uuid4().bytes
        target = await self._partition_of(partition)
        chunks = [blob[k : k + self._chunk_bytes] for k in range(0, len(blob), self._chunk_bytes)]
        futures = []
        for index, chunk in enumerate(chunks or [b""]):
            key = f"{partition}/{slot}/{index}".encode()
            futures.append(
                await self._producer.send(
                    self.topic, key=key, value=snapshot_id + chunk, partition=target
                )
            )
        for future in futures:
            await future
        manifest = {
            "id": snapshot_id.hex(),
            "slot": slot,
            "chunks": max(len(chunks), 1),
            "size": len(blob),
            "sha256": hashlib.sha256(blob).hexdigest(),
        }
        await self._producer.send_and_wait(
            self.topic,
            key=f"{partition}/manifest".encode(),
            value=orjson.dumps(manifest),
            partition=target,
        )
        self._slot[partition] = slot

    async def load(self, partition: int) -> bytes | None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        if self._producer is None:
            await self.start()
        target = await self._partition_of(partition)
        tp = TopicPartition(self.topic, target)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            enable_auto_commit=False,
            group_id=None,
            fetch_max_bytes=8 * 1024 * 1024,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        await consumer.start()
        latest: dict[bytes, bytes] = {}
        prefix = f"{partition}/".encode()
        try:
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            end = (await consumer.end_offsets([tp]))[tp]
            while await consumer.position(tp) < end:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                for record in batch.get(tp, []):
                    if record.key is not None and record.key.startswith(prefix):
                        latest[record.key] = record.value
        finally:
            await consumer.stop()
        raw_manifest = latest.get(f"{partition}/manifest".encode())
        if raw_manifest is None:
            return None
        manifest = orjson.loads(raw_manifest)
        snapshot_id = bytes.fromhex(manifest["id"])
        parts = []
        for index in range(int(manifest["chunks"])):
            value = latest.get(f"{partition}/{manifest['slot']}/{index}".encode())
            if value is None or value[:16] != snapshot_id:
                raise RuntimeError(f"snapshot of partition {partition} is incomplete")
            parts.append(value[16:])
        blob = b"".join(parts)
        if hashlib.sha256(blob).hexdigest() != manifest["sha256"]:
            raise RuntimeError(f"snapshot of partition {partition} fails its checksum")
        self._slot[partition] = int(manifest["slot"])
        return blob


async def ensure_topics(settings: Any) -> None:
    """Create the worker's topics if missing (idempotent)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(settings.topic_readings, settings.readings_partitions, 1),
            NewTopic(settings.topic_dlq, 1, 1),
            NewTopic(settings.topic_events, settings.readings_partitions, 1),
            NewTopic(
                snapshot_topic(settings),
                settings.readings_partitions,
                1,
                topic_configs={
                    "cleanup.policy": "compact",
                    "min.cleanable.dirty.ratio": "0.1",
                    "segment.ms": "600000",
                },
            ),
        ]
        missing = [t for t in wanted if t.name not in existing]
        if missing:
            try:
                await admin.create_topics(missing)
                log.info("created topics %s", ", ".join(t.name for t in missing))
            except TopicAlreadyExistsError:
                pass  # another worker created them at the same time
    finally:
        await admin.close()
