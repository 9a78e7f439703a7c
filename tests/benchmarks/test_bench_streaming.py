"""Streaming benchmark (run on demand: `make bench`, or
`.venv/bin/pytest tests/benchmarks/test_bench_streaming.py -s -p no:cacheprovider`).

Prints, never asserts on time:
- A. sustained readings/s of one `meterwatch worker` draining a pre-loaded backlog of
  gateway batches through Kafka (broker on the same cores), next to the in-process engine
  (the replay code path) on the same messages in the same run,
  and the ratio; worker memory (RSS growth) and engine state per 10,000 meters. Also CPU
  seconds per million readings (worker process vs in-process): the machine is shared, and
  CPU time is much less disturbed by other load than wall time. Then two workers in one
  group on the same backlog (scale-out onto the second core). Part A runs twice on the
  same readings: gateways that send at each arrival (a late reading goes out alone) and
  gateways that upload every 60 s (``encode_table(..., upload_every_s=60)``), because
  Faust's cost is per Kafka message.
- B. latency with the worker keeping up: the fleet published at a fixed accelerated pace;
  p50 / p99 from the worker's histograms of Kafka record time -> window scored and
  -> alert in Redis.
- C. (``test_bench_streaming_at_target_rate``) the same at the target rate
  (``MW_BENCH_TARGET_READINGS_S``, 50,000 readings/s) for a 4,000-meter fleet whose
  gateways upload every 60 s: how long after the last send the worker had the readings,
  and p50 / p99 latency while sustaining that rate.
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from stream_harness import (  # noqa: E402
    WorkerGroup,
    clear_meterwatch_keys,
    messages_of,
    process_cpu_seconds,
    publish,
    redis_test_db_client,
)

from stream.settings import Settings  # noqa: E402

pytestmark = [pytest.mark.benchmark, pytest.mark.timeout(1800)]
PARTITIONS = 4
POLL_S = 0.5  # /metrics polls while timing: each scrape costs the worker CPU


def _fleet(meters: int, days: float, cadence_s: int, seed: int) -> tuple[Any, dict[str, Any]]:
    from simulator.config import FleetConfig
    from simulator.fleet import simulate

    return simulate(FleetConfig(meters=meters, days=days, cadence_s=cadence_s, seed=seed))


def _rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _quantile(samples: dict[Any, float], name: str, q: float) -> float:
    """Upper bucket bound holding the q-quantile of a Prometheus histogram."""
    buckets = sorted(
        (float(dict(labels)["le"]), value)
        for (sample, labels), value in samples.items()
        if sample == f"{name}_bucket"
    )
    if not buckets or buckets[-1][1] == 0:
        return float("nan")
    total = buckets[-1][1]
    for bound, count in buckets:
        if count >= q * total:
            return bound
    return float("inf")


def _latency_rows(samples: dict[Any, float]) -> list[tuple[str, str]]:
    """p50 / p99 rows from a worker's latency histograms."""
    from stream.cli_worker import metric_sum

    score = "meterwatch_scoring_latency_seconds"
    alert = "meterwatch_alert_latency_seconds"
    return [
        ("reading -> scored p50 / p99 (bucket bound)",
         f"<= {_quantile(samples, score, 0.5)} s / <= {_quantile(samples, score, 0.99)} s"),
        ("reading -> alert in Redis p50 / p99",
         f"<= {_quantile(samples, alert, 0.5)} s / <= {_quantile(samples, alert, 0.99)} s"
         f" ({metric_sum(samples, alert + '_count'):.0f} alerts)"),
    ]  # fmt: skip


def _print_table(title: str, rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    print(f"\n== {title} ==")
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


@pytest.fixture
def stack_settings() -> Settings:
    from deploy.local.stack import stack_status

    settings = Settings()
    if stack_status(settings, echo=lambda *_: None) != 0:
        pytest.skip("local stack not running: `.venv/bin/meterwatch stack up`")
    return settings


def _group(settings: Settings, tmp: Path, admin: Any, tag: str) -> WorkerGroup:
    topic = f"mwbench.{tag}.{secrets.token_hex(4)}"
    admin.create_topics(
        {topic: {"num_partitions": PARTITIONS, "replication_factor": 1}}, wait_for_metadata=True
    )
    return WorkerGroup(
        settings, tmp, topic, PARTITIONS, f"mwbench-{tag}-{secrets.token_hex(3)}",
        snapshot_interval_s=60.0,
        worker_args=[] if os.environ.get("MW_BENCH_WINDOWS") == "1" else ["--no-windows"],
    )  # fmt: skip


def _drop(admin: Any, group: WorkerGroup) -> None:
    admin.delete_topics(
        [group.topic, f"{group.topic}.dlq", f"{group.topic}.events",
         f"{group.app_id}-engine-snapshots"],
        raise_errors=False,
    )  # fmt: skip


def _throughput_run(
    settings: Settings,
    tmp: Path,
    admin: Any,
    redis: Any,
    messages: list[tuple[bytes | None, bytes]],
    readings: int,
) -> dict[str, Any]:
    """One worker draining ``messages`` from a backlog, next to the in-process engine on
    the same messages in the same run."""
    from stream.cli_worker import metric_sum
    from stream.codecs import concat_batches, decode_message
    from stream.engine import Engine

    engine = Engine.from_settings(settings)
    started, cpu_started = time.perf_counter(), time.process_time()
    for k in range(0, len(messages), 400):
        batches = [decode_message(v)[0] for _, v in messages[k : k + 400]]
        engine.process(concat_batches([b for b in batches if len(b)]))
    out: dict[str, Any] = {"messages": len(messages)}
    out["in_process_rate"] = readings / (time.perf_counter() - started)
    out["in_process_cpu"] = (time.process_time() - cpu_started) / readings * 1e6
    out["state_per_10k"] = engine.state_bytes() / max(engine.meters_tracked, 1) * 10_000
    del engine

    group = _group(settings, tmp, admin, "throughput")
    tmp.mkdir()
    clear_meterwatch_keys(redis)
    try:
        publish(settings, group.topic, messages)
        worker = group.start()
        group.wait_up(0, timeout_s=120)
        first_readings = group.wait_metric(0, "meterwatch_readings_total", 1, timeout_s=300)
        first, cpu_first = time.perf_counter(), group.cpu_seconds()
        # after the first batch the engine, model and libraries are loaded: memory from
        # here on grows with the meters tracked
        rss_first = _rss_bytes(worker.pid)
        tracked_first = metric_sum(group.metrics(0), "meterwatch_meters_tracked")
        done = group.wait_metric(
            0, "meterwatch_readings_total", readings * 0.97, 1200, poll_s=POLL_S
        )
        out["worker_rate"] = (done - first_readings) / (time.perf_counter() - first)
        out["worker_cpu"] = (group.cpu_seconds() - cpu_first) / (done - first_readings) * 1e6
        rss_full = _rss_bytes(worker.pid)
        tracked = metric_sum(group.metrics(0), "meterwatch_meters_tracked")
    finally:
        group.stop_all()
        _drop(admin, group)
    # growth per meter is only meaningful when most meters arrived after the first
    # sample: a worker that decodes a whole micro-batch at once may track nearly the
    # fleet after its first batch, and a few MB over a few meters is no per-meter figure
    grown = tracked - tracked_first
    out["rss_growth"] = (
        f"{(rss_full - rss_first) / grown * 10_000 / 1e6:,.1f} MB"
        if grown >= tracked / 2
        else f"n/a (first sample already at {tracked_first:,.0f} of {tracked:,.0f} meters)"
    )
    out["rss"] = (f"{rss_first / 1e6:,.0f} MB at {tracked_first:,.0f} meters / "
                  f"{rss_full / 1e6:,.0f} MB at {tracked:,.0f}")  # fmt: skip
    return out


def _broker_cpu_seconds(settings: Settings) -> float:
    """CPU seconds of the local stack's Kafka broker so far (0 if it is not ours)."""
    import json

    try:
        pid = json.loads((settings.stack_dir / "pids" / "kafka.json").read_text())["pid"]
        return process_cpu_seconds(int(pid))
    except (OSError, ValueError, KeyError):
        return 0.0


def _paced_run(
    settings: Settings,
    tmp: Path,
    admin: Any,
    redis: Any,
    messages: list[tuple[bytes | None, bytes]],
    readings: int,
    pace: float,
    workers: int = 1,
) -> dict[str, Any]:
    """``workers`` workers of one group fed ``messages`` at ``pace`` readings/s from one
    producer; their latency histograms afterwards (summed over the workers), and the CPU
    seconds the workers, the broker and the publishing process used meanwhile."""
    from kafka import KafkaProducer

    group = _group(settings, tmp, admin, "paced")
    tmp.mkdir()
    clear_meterwatch_keys(redis)
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=5, acks=1,
                             max_request_size=4 * 1024 * 1024)  # fmt: skip
    try:
        for index in range(workers):
            group.start()
            group.wait_up(index, timeout_s=120)
        time.sleep(5 + 3 * (workers - 1))  # partitions assigned (and rebalanced)
        per_message = readings / len(messages)
        cpu0 = (group.cpu_seconds(), _broker_cpu_seconds(settings), time.process_time())
        t0 = time.perf_counter()
        for k, (key, value) in enumerate(messages):
            producer.send(group.topic, key=key, value=value)
            if k % 50 == 49:
                lag = t0 + (k + 1) * per_message / pace - time.perf_counter()
                if lag > 0:
                    time.sleep(lag)
        producer.flush()
        publish_s = time.perf_counter() - t0
        group.wait_total("meterwatch_readings_total", readings * 0.97, 600, poll_s=POLL_S)
        behind_s = time.perf_counter() - t0 - publish_s
        cpu = (group.cpu_seconds() - cpu0[0], _broker_cpu_seconds(settings) - cpu0[1],
               time.process_time() - cpu0[2])  # fmt: skip
        samples: dict[Any, float] = {}
        for index in range(workers):
            for key, value in group.metrics(index).items():
                samples[key] = samples.get(key, 0.0) + value
    finally:
        producer.close()
        group.stop_all()
        _drop(admin, group)
        clear_meterwatch_keys(redis)
    return {"published_rate": readings / publish_s, "publish_s": publish_s,
            "behind_s": behind_s, "samples": samples, "wall_s": publish_s + behind_s,
            "cpu_workers": cpu[0], "cpu_broker": cpu[1], "cpu_publisher": cpu[2]}  # fmt: skip


def test_bench_streaming(stack_settings: Settings, tmp_path: Path) -> None:
    from kafka import KafkaAdminClient

    meters = int(os.environ.get("MW_BENCH_METERS", "10000"))
    admin = KafkaAdminClient(bootstrap_servers=stack_settings.kafka_bootstrap)
    redis = redis_test_db_client(stack_settings)
    rows: list[tuple[str, str]] = []

    # --- A. throughput on a backlog, and memory per 10k meters ---------------------
    # Two encodings of the same readings: gateways sending at each arrival (a late or
    # re-sent reading goes out alone: about half the messages hold one reading), and
    # gateways uploading every 60 s of the arrival clock (late readings ride along with
    # their gateway's next upload). Faust costs about the same per message whatever it
    # holds, so readings per message set much of the worker's rate.
    table, _ = _fleet(meters, days=1.0, cadence_s=900, seed=21)
    readings = table.num_rows
    a_runs = {
        name: _throughput_run(stack_settings, tmp_path / name, admin, redis, messages, readings)
        for name, messages in (
            ("per arrival", messages_of(table, max_batch=500)),
            ("uploads every 60 s", messages_of(table, max_batch=500, upload_every_s=60)),
        )
    }
    messages = messages_of(table, max_batch=500)

    # --- A2. the same backlog, two workers in one group -----------------------------
    group2 = _group(stack_settings, tmp_path / "a2", admin, "twoworkers")
    (tmp_path / "a2").mkdir()
    clear_meterwatch_keys(redis)
    try:
        publish(stack_settings, group2.topic, messages)
        group2.start()
        group2.start()
        group2.wait_up(0, timeout_s=120)
        group2.wait_up(1, timeout_s=120)
        # both have partitions (and their first batch) before the clock starts
        group2.wait_metric(0, "meterwatch_readings_total", 1, timeout_s=300)
        group2.wait_metric(1, "meterwatch_readings_total", 1, timeout_s=300)
        name = "meterwatch_readings_total"
        first_two = group2.wait_total(name, 1, 60, poll_s=POLL_S)
        start_two = time.perf_counter()
        done_two = group2.wait_total(name, readings * 0.97, 1200, poll_s=POLL_S)
        two_rate = (done_two - first_two) / (time.perf_counter() - start_two)
    finally:
        group2.stop_all()
        _drop(admin, group2)

    # --- B. latency while keeping up (paced publishing) ----------------------------
    pace = float(os.environ.get("MW_BENCH_PACE_READINGS_S", "5000"))
    table_b, _ = _fleet(500, days=2.5, cadence_s=300, seed=22)
    messages_b = messages_of(table_b, max_batch=500)
    per_message = table_b.num_rows / len(messages_b)
    group_b = _group(stack_settings, tmp_path / "b", admin, "latency")
    (tmp_path / "b").mkdir()
    clear_meterwatch_keys(redis)
    try:
        group_b.start()
        group_b.wait_up(0, timeout_s=120)
        time.sleep(5)  # partitions assigned
        chunk = max(int(pace * 0.2 / per_message), 1)
        t0 = time.perf_counter()
        for k in range(0, len(messages_b), chunk):
            publish(stack_settings, group_b.topic, messages_b[k : k + chunk])
            lag = t0 + (k + chunk) * per_message / pace - time.perf_counter()
            if lag > 0:
                time.sleep(lag)
        group_b.wait_metric(0, "meterwatch_readings_total", table_b.num_rows * 0.97, 600)
        samples = group_b.metrics(0)
    finally:
        group_b.stop_all()
        _drop(admin, group_b)
        clear_meterwatch_keys(redis)

    admin.close()

    rows += [
        ("fleet A (backlog)", f"{meters} meters x 1 day @ 15 min, {readings:,} readings"),
    ]  # fmt: skip
    for name, run in a_runs.items():
        rows += [
            (f"[{name}] gateway batches", f"{run['messages']:,} "
                                          f"({readings / run['messages']:.1f} readings each)"),
            (f"[{name}] in-process engine (replay path)",
             f"{run['in_process_rate']:,.0f} readings/s"),
            (f"[{name}] worker through Kafka (1 worker, 4 partitions)",
             f"{run['worker_rate']:,.0f} readings/s"),
            (f"[{name}] ratio worker / in-process",
             f"{run['worker_rate'] / run['in_process_rate']:.2f}"),
            (f"[{name}] CPU s per 1M readings: worker / in-process",
             f"{run['worker_cpu']:.1f} / {run['in_process_cpu']:.1f}"),
            (f"[{name}] worker RSS growth per 10,000 meters", run["rss_growth"]),
            (f"[{name}] worker RSS: first batch / all meters", run["rss"]),
        ]  # fmt: skip
    rows += [
        ("2 workers through Kafka (one group, 4 partitions; per arrival)",
         f"{two_rate:,.0f} readings/s"),
        ("engine state per 10,000 meters",
         f"{a_runs['per arrival']['state_per_10k'] / 1e6:,.1f} MB"),
        ("fleet B (paced)", f"500 meters x 2.5 days @ 5 min, {table_b.num_rows:,} readings "
                            f"at {pace:,.0f} readings/s"),
        *_latency_rows(samples),
    ]  # fmt: skip
    _print_table("streaming benchmark", rows)
    assert all(r["worker_rate"] > 0 for r in a_runs.values())  # ran; never a timed assert


def test_bench_streaming_at_target_rate(stack_settings: Settings, tmp_path: Path) -> None:
    """C. Latency at the target rate: a fleet whose gateways upload every 60 s, published
    from one producer at ``MW_BENCH_TARGET_READINGS_S`` (50,000) readings/s, first to one
    worker, then to a group of two (one per core). The workers' micro-batch size is
    ``METERWATCH_BATCH_SIZE`` from the environment (default 2,000)."""
    from kafka import KafkaAdminClient

    pace = float(os.environ.get("MW_BENCH_TARGET_READINGS_S", "50000"))
    meters = int(os.environ.get("MW_BENCH_C_METERS", "4000"))
    # two days: the first is every meter's warm-up, the second has alerts to time
    days = float(os.environ.get("MW_BENCH_C_DAYS", "2"))
    table, _ = _fleet(meters, days=days, cadence_s=300, seed=23)
    messages = messages_of(table, max_batch=500, upload_every_s=60)
    admin = KafkaAdminClient(bootstrap_servers=stack_settings.kafka_bootstrap)
    runs = {}
    try:
        redis = redis_test_db_client(stack_settings)
        for workers in (1, 2):
            runs[workers] = _paced_run(
                stack_settings, tmp_path / f"c{workers}", admin, redis, messages,
                table.num_rows, pace, workers=workers,
            )  # fmt: skip
    finally:
        admin.close()
    rows = [
        ("fleet C (paced, uploads every 60 s)",
         f"{meters} meters x {days:g} days @ 5 min, {table.num_rows:,} readings in "
         f"{len(messages):,} batches"),
        ("worker micro-batch (METERWATCH_BATCH_SIZE)",
         os.environ.get("METERWATCH_BATCH_SIZE", "2000 (default)")),
    ]  # fmt: skip
    for workers, run in runs.items():
        wall = run["wall_s"]
        rows += [
            (f"-- {workers} worker(s): published at",
             f"{run['published_rate']:,.0f} readings/s for {run['publish_s']:.0f} s"),
            ("   workers had 97 % of the readings", f"{run['behind_s']:.1f} s after the last send"),
            ("   CPU cores used: workers / broker / publisher",
             f"{run['cpu_workers'] / wall:.2f} / {run['cpu_broker'] / wall:.2f} / "
             f"{run['cpu_publisher'] / wall:.2f} (of 2)"),
            *[("   " + k, v) for k, v in _latency_rows(run["samples"])],
        ]  # fmt: skip
    _print_table("streaming benchmark at the target rate", rows)
    assert all(run["published_rate"] > 0 for run in runs.values())  # ran; never timed
