"""Helpers of the streaming integration tests: fleets, reference runs, worker subprocesses.

Every worker runs as a real ``meterwatch worker`` subprocess on the shared stack, with
its own consumer group, topics (``unique_topic``), metrics port, and Redis test db.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from stack_support import free_port

from stream.settings import Settings

REDIS_TEST_DB = 15
REPO = Path(__file__).resolve().parents[2]


def small_fleet(meters: int = 40, days: float = 3.0, seed: int = 11) -> tuple[Any, dict[str, Any]]:
    """A fleet with several gateways (so several partitions) and a quarter of thieves."""
    from simulator.config import FleetConfig
    from simulator.fleet import simulate

    config = FleetConfig(
        meters=meters, days=days, cadence_s=60, seed=seed, theft_share=0.25,
        meters_per_transformer=5, transformers_per_gateway=1,
    )  # fmt: skip
    return simulate(config)


def messages_of(
    table: Any, max_batch: int = 200, upload_every_s: float | None = None
) -> list[tuple[bytes | None, bytes]]:
    from simulator.publish import encode_table

    return [(m.key, m.value) for m in encode_table(table, "batch", max_batch, upload_every_s)]


def publish(settings: Settings, topic: str, messages: list[tuple[bytes | None, bytes]]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=10, acks=1,
                             max_request_size=4 * 1024 * 1024)  # fmt: skip
    for key, value in messages:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()


def first_raises(alerts: list[dict[str, Any]]) -> dict[str, tuple[str, str, tuple[str, ...]]]:
    """event_id -> (meter_id, start, cue ids) at the event's first theft alert."""
    out: dict[str, tuple[str, str, tuple[str, ...]]] = {}
    for event in sorted(alerts, key=lambda e: int(e["version"])):
        if event.get("theft_likely") and event["event_id"] not in out:
            cues = tuple(sorted(str(c["id"]) for c in event.get("cues") or []))
            out[event["event_id"]] = (event["meter_id"], event["start"], cues)
    return out


def reference_alerts(settings: Settings, messages: list[tuple[bytes | None, bytes]]) -> list[Any]:
    """The same messages through one in-process engine (the replay code path), no flush:
    a stream never reaches end of input, so events still pending at the end are not raised."""
    from stream.codecs import concat_batches, decode_message
    from stream.engine import Engine
    from stream.sinks.events import event_to_dict

    engine = Engine.from_settings(settings)
    alerts: list[dict[str, Any]] = []
    for k in range(0, len(messages), 50):
        batches = [decode_message(v)[0] for _, v in messages[k : k + 50]]
        out = engine.process(concat_batches([b for b in batches if len(b)]))
        alerts += [event_to_dict(a) for a in out.alerts]
    return alerts


def write_fleet_file(path: Path, meters: int = 40, days: float = 3.0, seed: int = 11) -> Path:
    """The simulator writes the fleet of :func:`small_fleet` to a readings file (Parquet) and
    its labels next to it; returns the labels path."""
    from simulator.config import FleetConfig
    from simulator.fleet import write_files

    config = FleetConfig(
        meters=meters, days=days, cadence_s=60, seed=seed, theft_share=0.25,
        meters_per_transformer=5, transformers_per_gateway=1,
    )  # fmt: skip
    _, labels_path = write_files(config, path)
    return labels_path


def replay_cli(path: Path, out_dir: Path, *flags: str) -> dict[str, dict[str, Any]]:
    """``meterwatch replay FILE --out DIR [flags]`` as a subprocess: event_id -> final event."""
    exe = str(Path(sys.executable).with_name("meterwatch"))
    done = subprocess.run(  # noqa: S603
        [exe, "replay", str(path), "--out", str(out_dir), "--no-progress", *flags],
        capture_output=True, timeout=600, check=False, cwd=REPO,
    )  # fmt: skip
    if done.returncode != 0:
        raise AssertionError(f"meterwatch replay failed:\n{done.stderr.decode()[-3000:]}")
    lines = (out_dir / "events.jsonl").read_bytes().splitlines()
    return {e["event_id"]: e for e in map(orjson.loads, lines)}


def kafka_final_events(settings: Settings, topic: str) -> dict[str, dict[str, Any]]:
    """event_id -> the highest version of that event on the events topic."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, bootstrap_servers=settings.kafka_bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=5000)  # fmt: skip
    latest: dict[str, dict[str, Any]] = {}
    try:
        for record in consumer:
            event = orjson.loads(record.value)
            assert record.key == event["event_id"].encode(), "theft.events not keyed by event_id"
            held = latest.get(event["event_id"])
            if held is None or event["version"] > held["version"]:
                latest[event["event_id"]] = event
    finally:
        consumer.close()
    return latest


def redis_final_events(client: Any) -> dict[str, dict[str, Any]]:
    """event_id -> the event JSON held in its ``mw:event:{event_id}`` hash."""
    out: dict[str, dict[str, Any]] = {}
    for key in client.scan_iter(match="mw:event:*", count=1000):
        event = orjson.loads(client.hget(key, "event"))
        out[event["event_id"]] = event
    return out


def redis_alerts(client: Any) -> list[dict[str, Any]]:
    return [orjson.loads(fields[b"event"]) for _, fields in client.xrange("mw:alerts")]


@contextlib.contextmanager
def private_redis_server(directory: Path) -> Iterator[str]:
    """A redis-server of one test alone (same Debian binary as the stack's), so tests that
    clear and count ``mw:*`` keys cannot disturb, or be disturbed by, parallel runs."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server is not installed (make sysdeps)")
    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(  # noqa: S603
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(directory)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("private redis-server did not start")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def redis_test_db_client(settings: Settings) -> Any:
    """A client on the integration tier's Redis db. (``Redis.from_url(url, db=...)`` keeps the
    URL's own db, so the host and port are given explicitly here.)"""
    import redis

    return redis.Redis(host="127.0.0.1", port=settings.redis_port, db=REDIS_TEST_DB)


def clear_meterwatch_keys(client: Any) -> None:
    for pattern in ("mw:alerts", "mw:risk", "mw:event:*", "mw:meter:*"):
        keys = list(client.scan_iter(match=pattern, count=1000))
        if keys:
            client.delete(*keys)


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class WorkerGroup:
    """Worker subprocesses of one consumer group on private topics."""

    settings: Settings
    tmp: Path
    topic: str
    partitions: int
    app_id: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)
    snapshot_interval_s: float = 2.0
    redis_url: str | None = None  # default: the stack's Redis, test db
    worker_args: list[str] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        return dict(
            os.environ,
            METERWATCH_APP_ID=self.app_id,
            METERWATCH_TOPIC_READINGS=self.topic,
            METERWATCH_TOPIC_DLQ=f"{self.topic}.dlq",
            METERWATCH_TOPIC_EVENTS=f"{self.topic}.events",
            METERWATCH_READINGS_PARTITIONS=str(self.partitions),
            METERWATCH_REDIS_URL=self.redis_url
            or f"redis://127.0.0.1:{self.settings.redis_port}/{REDIS_TEST_DB}",
            METERWATCH_SNAPSHOT_INTERVAL_SECONDS=str(self.snapshot_interval_s),
            METERWATCH_BATCH_WITHIN_SECONDS="0.2",
            METERWATCH_STACK_DIR=str(self.tmp / "stack"),
        )

    def start(self) -> subprocess.Popen[bytes]:
        port = free_port()
        log = self.tmp / f"worker-{len(self.processes)}.log"
        exe = str(Path(sys.executable).with_name("meterwatch"))
        with open(log, "wb") as out:
            proc = subprocess.Popen(  # noqa: S603
                [exe, "worker", "--metrics-port", str(port), *self.worker_args],
                env=self.env(), stdout=out, stderr=subprocess.STDOUT, cwd=self.tmp,
            )  # fmt: skip
        self.processes.append(proc)
        self.ports.append(port)
        self.logs.append(log)
        return proc

    def log_text(self, index: int) -> str:
        return self.logs[index].read_text(errors="replace")

    def committed_behind(self) -> int:
        """Messages not yet covered by a committed (checkpointed) offset, over all partitions."""
        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap,
                                 group_id=self.app_id, enable_auto_commit=False)  # fmt: skip
        try:
            tps = [TopicPartition(self.topic, p) for p in range(self.partitions)]
            ends = consumer.end_offsets(tps)
            behind = 0
            for tp in tps:
                committed = consumer.committed(tp) or 0
                behind += max(ends[tp] - committed, 0)
            return behind
        finally:
            consumer.close()

    def wait_caught_up(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for k, proc in enumerate(self.processes):
                if proc.poll() is not None and proc.returncode not in (0, -9, -15):
                    raise AssertionError(f"worker {k} died:\n{self.log_text(k)[-3000:]}")
            if self.committed_behind() == 0:
                return
            time.sleep(0.5)
        raise AssertionError(
            f"workers not caught up after {timeout_s}s; {self.committed_behind()} behind;\n"
            + "\n".join(self.log_text(k)[-1500:] for k in range(len(self.processes)))
        )

    def wait_group_stable(self, members: int, timeout_s: float) -> None:
        """Until the workers' consumer group is Stable with ``members`` members: the
        rebalance that gives each its partitions is over (a fixed sleep is not enough on a
        busy host, where a worker that joins late leaves the first one reading every
        partition for a while)."""
        from kafka.admin import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=self.settings.kafka_bootstrap)
        seen: dict[str, Any] = {}
        try:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                seen = admin.describe_groups([self.app_id]).get(self.app_id) or {}
                if (
                    seen.get("group_state") == "Stable"
                    and len(seen.get("members") or []) == members
                ):
                    return
                time.sleep(0.5)
        finally:
            admin.close()
        raise AssertionError(
            f"group {self.app_id} not Stable with {members} members after {timeout_s}s: "
            f"{seen.get('group_state')}, {len(seen.get('members') or [])} members"
        )

    def metrics(self, index: int) -> dict[Any, float]:
        from stream.cli_worker import scrape

        return scrape(f"http://127.0.0.1:{self.ports[index]}/metrics")

    def wait_up(self, index: int, timeout_s: float) -> None:
        """Until the worker serves /metrics."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.metrics(index):
                return
            if self.processes[index].poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"worker {index} has no /metrics:\n{self.log_text(index)[-3000:]}")

    def wait_metric(
        self, index: int, name: str, at_least: float, timeout_s: float, poll_s: float = 0.2
    ) -> float:
        from stream.cli_worker import metric_sum

        deadline = time.monotonic() + timeout_s
        value = 0.0
        while time.monotonic() < deadline:
            value = metric_sum(self.metrics(index), name)
            if value >= at_least:
                return value
            if self.processes[index].poll() is not None:
                break
            time.sleep(poll_s)
        raise AssertionError(f"{name} = {value} < {at_least}:\n{self.log_text(index)[-3000:]}")

    def wait_total(self, name: str, at_least: float, timeout_s: float, poll_s: float) -> float:
        """Until a metric summed over every worker reaches ``at_least``; returns the sum."""
        from stream.cli_worker import metric_sum

        deadline = time.monotonic() + timeout_s
        total = 0.0
        while time.monotonic() < deadline:
            total = sum(metric_sum(self.metrics(k), name) for k in range(len(self.processes)))
            if total >= at_least:
                return total
            time.sleep(poll_s)
        raise AssertionError(f"{name} summed = {total} < {at_least}")

    def cpu_seconds(self) -> float:
        """User + system CPU time of every worker process so far (Linux /proc)."""
        return sum(process_cpu_seconds(proc.pid) for proc in self.processes)

    def kill9(self, index: int) -> None:
        self.processes[index].send_signal(signal.SIGKILL)
        self.processes[index].wait(timeout=10)

    def stop_all(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.processes:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
