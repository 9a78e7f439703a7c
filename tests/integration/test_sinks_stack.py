"""Sinks and the snapshot store against the real local stack (Redis, Alertmanager, Kafka)."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from stack_support import free_port

from stream.settings import Settings
from stream.sinks.alertmanager import AlertmanagerSink
from stream.sinks.redis_sink import RedisSink, WindowBatch
from stream.snapshots import KafkaSnapshotStore

pytestmark = pytest.mark.integration
TEST_DB = 15  # the integration tier's Redis database (tests/integration/conftest.py)


def event(event_id: str, version: int, status: str = "open", **extra: Any) -> dict[str, Any]:
    body = {
        "event_id": event_id, "version": version, "meter_id": f"M-{event_id}",
        "gateway_id": "GW-7", "start": "2026-01-07T10:00:00+00:00",
        "end": f"2026-01-07T1{version}:00:00+00:00", "detected_at": "2026-01-07T10:10:00+00:00",
        "status": status, "peak_score": 60.0 + version, "mean_score": 50.0,
        "severity": "high", "theft_likely": True,
        "cues": [{"id": "bypass_zero", "name": "Bypass", "evidence": {"p_w": 3.5, "v_v": 231.0}}],
        "top_features": [{"name": "p_rel", "contribution": 0.6}],
        "est_unbilled_kwh": 2.0 * version, "model_version": "ae-v1",
    }  # fmt: skip
    body.update(extra)
    return body


def async_redis(settings: Settings, url: str | None = None) -> Any:
    import redis.asyncio as aioredis

    if url is not None:
        return aioredis.Redis.from_url(url, socket_connect_timeout=1.0)
    # not from_url(url, db=...): the URL's own db would win
    return aioredis.Redis(host="127.0.0.1", port=settings.redis_port, db=TEST_DB)


@pytest.fixture
def redis_client(stack: Settings) -> Iterator[Any]:
    """Sync client on the test db, with this module's keys removed afterwards."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=stack.redis_port, db=TEST_DB)
    before = set(client.scan_iter(match="mw:*", count=1000))
    yield client
    new = set(client.scan_iter(match="mw:*", count=1000)) - before
    if new:
        client.delete(*new)
    client.close()


def test_redis_sink_writes_each_event_version_once(stack: Settings, redis_client: Any) -> None:
    eid = f"E-{secrets.token_hex(4)}"
    retries: list[str] = []

    async def run() -> list[list[dict[str, Any]]]:
        client = async_redis(stack)
        sink = RedisSink(client, on_retry=retries.append)
        v1, v2, v3 = event(eid, 1), event(eid, 2), event(eid, 3, "closed")
        written = [
            await sink.write_events([v1], {(eid, 1)}),
            await sink.write_events([v1], {(eid, 1)}),  # replay after a crash
            await sink.write_events([v2], set()),  # update without an alert
            await sink.write_events([v3, v2], {(eid, 3)}),  # resolve; stale v2 again
            await sink.write_events([v3], {(eid, 3)}),
        ]
        windows = WindowBatch([f"M-{eid}"], [1_767_780_000_000], {"hybrid": [70.0]}, {"p": [3.5]})
        await sink.write_windows(windows)
        await sink.write_windows(windows)  # replayed window: Redis rejects the same stream id
        await client.aclose()
        return written

    written = asyncio.run(run())
    assert [len(w) for w in written] == [1, 0, 0, 1, 0]
    alerts = [
        fields for _, fields in redis_client.xrange("mw:alerts")
        if fields[b"event_id"].decode() == eid
    ]  # fmt: skip
    assert [(a[b"version"], a[b"status"]) for a in alerts] == [(b"1", b"open"), (b"3", b"closed")]
    assert orjson.loads(alerts[0][b"event"])["cues"][0]["evidence"] == {"p_w": 3.5, "v_v": 231.0}
    assert redis_client.hget(f"mw:event:{eid}", "version") == b"3"
    assert redis_client.xlen(f"mw:meter:M-{eid}:events") == 3
    assert redis_client.zscore("mw:risk", f"M-{eid}") == 63.0
    meter = redis_client.hgetall(f"mw:meter:M-{eid}")
    assert meter[b"last_event_id"] == eid.encode() and meter[b"risk"] == b"63"
    assert redis_client.xlen(f"mw:meter:M-{eid}:windows") == 1
    assert redis_client.ttl(f"mw:meter:M-{eid}:windows") > 0
    ((_, window),) = redis_client.xrange(f"mw:meter:M-{eid}:windows")
    assert window[b"hybrid"] == b"70.00" and window[b"p"] == b"3.5" and window[b"ae"] == b"nan"
    assert retries == []


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A redis-server of this test alone, which the test stops and starts."""
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server is not installed (make sysdeps)")
    port = free_port()
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        cmd = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
               "no", "--dir", str(tmp_path)]  # fmt: skip
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def stop() -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=10)

    start()
    yield {"url": f"redis://127.0.0.1:{port}/0", "start": start, "stop": stop}
    stop()


def test_redis_down_for_a_while_is_retried_and_nothing_is_lost(
    stack: Settings, private_redis: dict[str, Any]
) -> None:
    retries: list[str] = []

    async def run() -> tuple[int, int]:
        client = async_redis(stack, private_redis["url"])
        sink = RedisSink(client, on_retry=retries.append, max_delay_s=0.2)
        await sink.write_events([event("E-a", 1)], {("E-a", 1)})
        private_redis["stop"]()
        pending = asyncio.create_task(
            sink.write_events([event("E-b", 1), event("E-a", 2)], {("E-b", 1)})
        )
        await asyncio.sleep(1.5)
        assert not pending.done()  # blocked on the outage, not failed
        await asyncio.to_thread(private_redis["start"])  # empty again: no persistence
        written = await asyncio.wait_for(pending, timeout=15)
        length = await client.xlen("mw:alerts")
        await client.aclose()
        return len(written), length

    written, length = asyncio.run(run())
    assert written == 1 and length == 1  # the write made during the outage landed
    assert len(retries) >= 2 and set(retries) == {"redis"}


def test_redis_paused_writes_complete_after_the_pause(stack: Settings, redis_client: Any) -> None:
    eid = f"E-{secrets.token_hex(4)}"

    async def run() -> float:
        client = async_redis(stack)
        sink = RedisSink(client, on_retry=lambda _: None)
        redis_client.execute_command("CLIENT", "PAUSE", "1500", "WRITE")
        started = time.monotonic()
        await sink.write_events([event(eid, 1)], {(eid, 1)})
        await client.aclose()
        return time.monotonic() - started

    waited = asyncio.run(run())
    assert waited >= 1.0
    assert redis_client.hget(f"mw:event:{eid}", "version") == b"1"


def test_alertmanager_fires_then_resolves_through_the_webhook(
    stack: Settings, webhook_receiver: Any
) -> None:
    import urllib.request

    eid = f"E-{secrets.token_hex(4)}"
    sink = AlertmanagerSink(
        stack.alertmanager_url, on_retry=lambda _: None, clock=lambda: datetime.now(tz=UTC),
        min_firing_s=3.0,
    )  # fmt: skip

    def listed() -> list[dict[str, Any]]:
        url = f'{stack.alertmanager_url}/api/v2/alerts?filter=event_id="{eid}"'
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310
            return list(orjson.loads(response.read()))

    # the event closes right after it opened (as when a backlog is caught up): the close is
    # held, so Alertmanager still sees the alert firing and notifies it
    asyncio.run(sink.send([event(eid, 1)], partition=0))
    asyncio.run(sink.send([event(eid, 2, "closed")], partition=0))
    firing = webhook_receiver.wait_for(
        lambda b: (
            b.get("status") == "firing"
            and any(a["labels"].get("event_id") == eid for a in b.get("alerts", []))
        ),
        timeout_s=30,
    )
    alert = next(a for a in firing["alerts"] if a["labels"]["event_id"] == eid)
    assert alert["labels"]["cue"] == "bypass_zero" and alert["labels"]["gateway"] == "GW-7"
    assert orjson.loads(alert["annotations"]["evidence"])["bypass_zero"]["p_w"] == 3.5
    assert len(listed()) == 1
    deadline = time.monotonic() + 10
    while sink.open_alerts and time.monotonic() < deadline:
        asyncio.run(sink.repost_open())  # the worker's repost timer
        time.sleep(0.5)
    assert not sink.open_alerts, "the held resolve was never sent"
    webhook_receiver.wait_for(
        lambda b: any(
            a["labels"].get("event_id") == eid and a["status"] == "resolved"
            for a in b.get("alerts", [])
        ),
        timeout_s=30,
    )
    assert listed() == []


def test_snapshot_store_round_trip_chunks_and_survives_a_torn_write(
    stack: Settings, unique_topic: Any
) -> None:
    topic = unique_topic(partitions=2)
    first = bytes(range(256)) * 40  # 10 KB -> 11 chunks of 1000 bytes
    second = b"second snapshot " * 300

    async def run() -> tuple[Any, ...]:
        store = KafkaSnapshotStore(stack.kafka_bootstrap, topic, chunk_bytes=1000)
        await store.save(1, first)
        loaded_first = await store.load(1)
        none = await store.load(0)
        # a torn write: chunks of a newer snapshot in the other slot, but no manifest
        await store._producer.send_and_wait(topic, key=b"1/1/0", value=b"x" * 16 + b"junk",
                                            partition=1)  # fmt: skip
        fresh = KafkaSnapshotStore(stack.kafka_bootstrap, topic, chunk_bytes=1000)
        after_torn = await fresh.load(1)
        await fresh.save(1, second)
        latest = await KafkaSnapshotStore(stack.kafka_bootstrap, topic).load(1)
        await store.stop()
        await fresh.stop()
        return loaded_first, none, after_torn, latest

    loaded_first, none, after_torn, latest = asyncio.run(run())
    assert loaded_first == first
    assert none is None
    assert after_torn == first
    assert latest == second
