"""THE control-room test: after a short real streaming run, every PromQL expression of
the dashboards and the rules is valid and returns data from the stack's Prometheus.

The run is real end to end: the stack's Kafka, Redis, Prometheus and Alertmanager; a
`meterwatch worker` process serving /metrics on ``settings.metrics_port`` (the port
the stack's Prometheus scrapes as job ``meterwatch-worker``); `meterwatch simulate
--kafka` publishing a small fleet with theft and malformed records. The worker gets
its own consumer group, topics and Redis database, all removed afterwards.
"""

from __future__ import annotations

import math
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from live_controlroom import ensure_current_configs, prometheus_query

from deploy.grafana.dashboards import DASHBOARDS, WORKER_JOB
from deploy.grafana.promql import (
    Query,
    dashboard_queries,
    expand_macros,
    rule_queries,
    series_selectors,
)
from stream.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# A database of its own: other integration tests clean up keys that appear in db 15
# while they run, which would remove this run's keys when the two overlap.
REDIS_RUN_DB = 13
# 60 meters x 3 days at 5-minute cadence ~ 52k readings: past the 1-day warm-up and
# into the theft that starts on day 3, with malformed records for the dead letters.
SIMULATION = [
    "--meters", "60", "--days", "3", "--cadence", "5m", "--theft-share", "0.3",
    "--malformed-share", "0.01", "--seed", "11", "--rate", "max", "--no-progress",
]  # fmt: skip
PORT_WAIT_S = 120.0
WORKER_READY_TIMEOUT_S = 120.0
DRAIN_TIMEOUT_S = 300.0
SCRAPES_AFTER_DRAIN_S = 20.0  # 4 scrapes at 5 s: rate() and deriv() have points to use


def _exe() -> str:
    candidate = Path(sys.executable).with_name("meterwatch")
    return str(candidate) if candidate.exists() else "meterwatch"


def _scrape(url: str) -> dict[str, float]:
    """Sum of each sample name over its labels from the worker's /metrics; {} when down."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (local)
            text = response.read().decode()
    except OSError:
        return {}
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def _redis_url(settings: Settings) -> str:
    return re.sub(r"/\d+$", "", settings.redis_url) + f"/{REDIS_RUN_DB}"


@dataclass(frozen=True)
class StreamingRun:
    settings: Settings
    published: int
    worker_totals: dict[str, float]


@pytest.fixture(scope="module")
def streaming_run(
    stack: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StreamingRun]:
    import redis
    from kafka import KafkaAdminClient

    ensure_current_configs(stack)
    deadline = time.monotonic() + PORT_WAIT_S  # someone's demo may still be finishing
    while not _port_free(stack.metrics_port) and time.monotonic() < deadline:
        time.sleep(2.0)
    if not _port_free(stack.metrics_port):
        pytest.fail(
            f"127.0.0.1:{stack.metrics_port} (METERWATCH_METRICS_PORT) is taken: another worker "
            "runs; the stack's Prometheus scrapes only that port",
            pytrace=False,
        )
    run = secrets.token_hex(4)
    topics = {
        "METERWATCH_TOPIC_READINGS": f"mwtest.grafana.{run}.readings",
        "METERWATCH_TOPIC_DLQ": f"mwtest.grafana.{run}.dlq",
        "METERWATCH_TOPIC_EVENTS": f"mwtest.grafana.{run}.events",
    }
    redis_url = _redis_url(stack)
    env = dict(
        os.environ,
        METERWATCH_APP_ID=f"mwtest-grafana-{run}",
        METERWATCH_REDIS_URL=redis_url,
        METERWATCH_SNAPSHOT_INTERVAL_SECONDS="30",
        **topics,
    )
    folder = tmp_path_factory.mktemp("streaming-run")
    worker_log = folder / "worker.log"
    redis_client = redis.Redis.from_url(redis_url)
    stale = list(redis_client.scan_iter(match="mw:*", count=1000))  # an aborted earlier run
    if stale:
        redis_client.delete(*stale)
    keys_before = set(redis_client.scan_iter(count=1000))
    metrics_url = f"http://127.0.0.1:{stack.metrics_port}/metrics"
    with open(worker_log, "wb") as log:
        worker = subprocess.Popen(  # noqa: S603 (our own console script)
            [_exe(), "worker"], env=env, stdout=log, stderr=subprocess.STDOUT
        )

    def worker_failed(what: str) -> None:
        tail = worker_log.read_text(errors="replace")[-3000:]
        pytest.fail(f"{what}; worker log {worker_log}:\n{tail}", pytrace=False)

    try:
        deadline = time.monotonic() + WORKER_READY_TIMEOUT_S
        while "meterwatch_readings_total" not in _scrape(metrics_url):
            if worker.poll() is not None:
                worker_failed(f"the worker exited ({worker.returncode}) before serving metrics")
            if time.monotonic() > deadline:
                worker_failed(f"no worker metrics within {WORKER_READY_TIMEOUT_S}s")
            time.sleep(1.0)
        simulated = subprocess.run(  # noqa: S603
            [
                _exe(),
                "simulate",
                "--kafka",
                "--labels-out",
                str(folder / "labels.json"),
                *SIMULATION,
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert simulated.returncode == 0, simulated.stderr[-3000:]
        found = re.search(r"published ([\d,]+) readings", simulated.stdout + simulated.stderr)
        assert found, simulated.stdout[-2000:]
        published = int(found.group(1).replace(",", ""))

        # drained: the worker has counted (accepted + rejected + duplicates) nearly all
        # published readings and its counters stopped moving
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        last, steady_since = -1.0, time.monotonic()
        while True:
            if worker.poll() is not None:
                worker_failed(f"the worker exited ({worker.returncode}) while consuming")
            totals = _scrape(metrics_url)
            seen = sum(
                totals.get(name, 0.0)
                for name in ("meterwatch_readings_total", "meterwatch_duplicates_total")
            )
            if seen != last:
                last, steady_since = seen, time.monotonic()
            if seen >= 0.9 * published and time.monotonic() - steady_since > 10:
                break
            if time.monotonic() > deadline:
                worker_failed(f"worker counted {seen:.0f} of {published} readings")
            time.sleep(1.0)
        time.sleep(SCRAPES_AFTER_DRAIN_S)
        yield StreamingRun(stack, published, _scrape(metrics_url))
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        admin = KafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
        ours = [t for t in admin.list_topics() if run in t]
        if ours:
            admin.delete_topics(ours)
        admin.close()
        new_keys = set(redis_client.scan_iter(count=1000)) - keys_before
        if new_keys:
            redis_client.delete(*new_keys)
        redis_client.close()


def _max_during_run(settings: Settings, expr: str) -> float:
    samples = _result(settings, f"max_over_time(({expr})[5m:5s])")
    assert samples, f"no samples of {expr}"
    return max(float(s["value"][1]) for s in samples)


def test_fleet_panels_count_the_simulated_meters(streaming_run: StreamingRun) -> None:
    meters = int(SIMULATION[SIMULATION.index("--meters") + 1])
    assert _max_during_run(streaming_run.settings, "meterwatch:meters_tracked:sum") == meters


def test_fleet_panels_see_meters_and_gateways_reporting(streaming_run: StreamingRun) -> None:
    settings = streaming_run.settings
    assert _max_during_run(settings, "meterwatch:meters_reporting:sum") > 0
    assert _max_during_run(settings, "sum(meterwatch_gateways_seen)") > 0


def test_score_panels_see_nonzero_scores(streaming_run: StreamingRun) -> None:
    assert _max_during_run(streaming_run.settings, "sum(meterwatch_window_score_sum)") > 0


def _all_queries() -> list[Query]:
    boards = {name: build() for name, build in DASHBOARDS.items()}
    return dashboard_queries(boards) + rule_queries()


def _result(settings: Settings, expr: str) -> list[dict[str, Any]]:
    answer = prometheus_query(settings, expand_macros(expr))
    assert answer.get("status") == "success", f"{expr}: {answer.get('error')}"
    return list(answer["data"]["result"])


def test_the_run_is_what_prometheus_sees(streaming_run: StreamingRun) -> None:
    """The data the next test finds comes from this run's worker, not an earlier one."""
    settings = streaming_run.settings
    up = _result(settings, f'up{{job="{WORKER_JOB}"}}')
    assert up and all(float(sample["value"][1]) == 1.0 for sample in up)
    scraped = _result(settings, "max_over_time(meterwatch_readings_total[2m])")
    assert scraped and float(scraped[0]["value"][1]) >= 0.5 * streaming_run.published
    assert _result(settings, f'up{{job="{WORKER_JOB}"}} == 0') == []  # WorkerDown quiet
    # labelled counters exist only once incremented: this run's worker must have raised
    # alerts and rejected malformed records itself, so the series the dashboards read
    # are not left over from an earlier worker on the same port
    totals = streaming_run.worker_totals
    for name in (
        "meterwatch_alerts_total",
        "meterwatch_est_unbilled_kwh_total",
        "meterwatch_rejected_total",
        "meterwatch_windows_scored_total",
    ):
        assert totals.get(name, 0.0) > 0, f"{name} = {totals.get(name)} after the run"


def test_every_expression_is_valid_and_returns_data(streaming_run: StreamingRun) -> None:
    settings = streaming_run.settings
    empty, not_a_number = [], []
    queries = _all_queries()
    for query in queries:
        if query.origin == "alert rule":
            # an alert's expression is empty while it does not fire: it must parse and
            # run, and each series it reads must have data
            _result(settings, query.expr)
            for selector in series_selectors(query.expr):
                if not _result(settings, selector):
                    empty.append(f"{query.where}: {selector}")
            continue
        samples = _result(settings, query.expr)
        if not samples:
            empty.append(f"{query.origin} {query.where}: {query.expr}")
        elif all(math.isnan(float(s["value"][1])) for s in samples):
            not_a_number.append(f"{query.origin} {query.where}: {query.expr}")
    print(f"{len(queries)} expressions; worker totals: {streaming_run.worker_totals}")
    assert empty == [], "no data after the streaming run:\n" + "\n".join(empty)
    assert not_a_number == [], "only NaN after the streaming run:\n" + "\n".join(not_a_number)


# Field names Grafana itself makes (reduce's output), not read from Redis.
_GRAFANA_MADE_FIELDS = {"Field", "Last *", "meter_id", "risk"}


def _redis_reads(command: str, key: str, target: dict[str, Any], client: Any) -> list[set[str]]:
    """Run a dashboard's Redis query as the plugin would; the field names of each row."""
    if command == "hgetall":
        row = client.hgetall(key)
        return [{k.decode() for k in row}] if row else []
    if command == "zrange":
        members = client.zrange(key, int(target["min"]), int(target["max"]), withscores=True)
        return [{"member", "score"}] * len(members)
    if command == "xrevrange":
        entries = client.xrevrange(key, "+", "-", count=int(target["count"]))
        return [{k.decode() for k in fields} for _id, fields in entries]
    raise AssertionError(f"a dashboard uses Redis command {command!r}")


def _fields_panels_read(panel: dict[str, Any]) -> set[str]:
    names: set[str] = set()
    for transformation in panel.get("transformations", []):
        options = transformation["options"]
        if transformation["id"] == "filterFieldsByName":
            names |= set(options["include"]["names"])
        elif transformation["id"] == "convertFieldType":
            names |= {c["targetField"] for c in options["conversions"]}
    return names - _GRAFANA_MADE_FIELDS


# The window means the P/V/I/PF timelines plot: the worker writes them when the engine's
# output carries ``window_means`` (stream/worker.py); the engine does not emit them yet.
WINDOW_MEANS = {"p", "v", "i", "pf"}


def _redis_problems(streaming_run: StreamingRun, fields: set[str] | None) -> list[str]:
    """What the dashboards' Redis panels would miss; only the ``fields`` when given."""
    import redis

    client = redis.Redis.from_url(_redis_url(streaming_run.settings))
    try:
        top = client.zrange("mw:risk", -1, -1)
        assert top, "the run left no risk ranking in Redis"
        meter_id = top[0].decode()
        problems = []
        for build in DASHBOARDS.values():
            board = build()
            for panel in board["panels"]:
                for target in panel.get("targets", []):
                    if "command" not in target:
                        continue
                    key = target["keyName"].replace("$meter_id", meter_id)
                    rows = _redis_reads(target["command"], key, target, client)
                    where = f"{board['title']} / {panel['title']} ({key})"
                    if not rows:
                        problems.append(f"{where}: no data")
                        continue
                    wanted = _fields_panels_read(panel)
                    wanted = wanted & fields if fields is not None else wanted - WINDOW_MEANS
                    missing = wanted - set().union(*rows)
                    if missing:
                        problems.append(f"{where}: no field {sorted(missing)}")
        return problems
    finally:
        client.close()


def test_every_redis_panel_finds_its_keys_and_fields(streaming_run: StreamingRun) -> None:
    problems = _redis_problems(streaming_run, None)
    assert problems == [], "\n".join(problems)


def test_meter_timelines_find_the_window_means(streaming_run: StreamingRun) -> None:
    problems = _redis_problems(streaming_run, WINDOW_MEANS)
    assert problems == [], "\n".join(problems)
