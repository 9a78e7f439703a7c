"""Kafka of the local stack: topic admin and a keyed round trip across partitions."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import TopicAlreadyExistsError

from stream.settings import Settings

pytestmark = pytest.mark.integration

ROUND_TRIP_TIMEOUT_S = 30.0


def _partition_count(kafka_admin: Any, topic: str) -> int:
    (described,) = kafka_admin.describe_topics([topic])
    assert described["error_code"] == 0, described
    return len(described["partitions"])


def test_admin_creates_a_topic_with_several_partitions(
    kafka_admin: Any, unique_topic: Callable[..., str]
) -> None:
    topic = unique_topic(create=False)
    assert topic not in kafka_admin.list_topics()

    kafka_admin.create_topics(
        {topic: {"num_partitions": 6, "replication_factor": 1}}, wait_for_metadata=True
    )
    try:
        assert topic in kafka_admin.list_topics()
        assert _partition_count(kafka_admin, topic) == 6
        # the error path: the broker refuses a second topic of the same name
        with pytest.raises(TopicAlreadyExistsError):
            kafka_admin.create_topics({topic: {"num_partitions": 2, "replication_factor": 1}})
        assert _partition_count(kafka_admin, topic) == 6
    finally:
        kafka_admin.delete_topics([topic], raise_errors=False)


def test_keyed_round_trip_across_partitions(
    stack: Settings, kafka_admin: Any, unique_topic: Callable[..., str]
) -> None:
    topic = unique_topic(partitions=4)
    assert _partition_count(kafka_admin, topic) == 4
    keys = [f"MTR-{n:06d}".encode() for n in range(12)]
    sent = {(key, f"{key.decode()}#{seq}".encode()) for key in keys for seq in range(5)}

    producer = KafkaProducer(bootstrap_servers=stack.kafka_bootstrap, acks="all", linger_ms=5)
    try:
        futures = [producer.send(topic, key=key, value=value) for key, value in sorted(sent)]
        producer.flush(timeout=ROUND_TRIP_TIMEOUT_S)
        acked = [future.get(timeout=ROUND_TRIP_TIMEOUT_S) for future in futures]
    finally:
        producer.close(timeout=10)
    assert len(acked) == len(sent)

    consumer = KafkaConsumer(
        bootstrap_servers=stack.kafka_bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    received: list[tuple[bytes, bytes, int]] = []
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(4)])
        consumer.seek_to_beginning()
        deadline = time.monotonic() + ROUND_TRIP_TIMEOUT_S
        while len(received) < len(sent) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                received += [(r.key, r.value, r.partition) for r in records]
    finally:
        consumer.close()

    assert {(key, value) for key, value, _ in received} == sent
    assert len(received) == len(sent), "a message came back twice"
    partitions_of_key: dict[bytes, set[int]] = defaultdict(set)
    for key, _, partition in received:
        partitions_of_key[key].add(partition)
    # one key -> one partition (the per-meter ordering the engine relies on) ...
    assert all(len(parts) == 1 for parts in partitions_of_key.values()), partitions_of_key
    # ... and the keys spread over more than one partition
    assert len(set().union(*partitions_of_key.values())) > 1
    # within a key, the order of sending is the order of reading
    for key in keys:
        values = [value for k, value, _ in received if k == key]
        assert values == sorted(values)
