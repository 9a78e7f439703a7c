"""``meterwatch worker`` and ``meterwatch demo``.

Heavy imports (faust, redis, numpy) stay inside the functions so the CLI starts fast.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Annotated, Any

import typer

from stream.settings import Settings

log = logging.getLogger(__name__)

DEMO_REDIS_PATTERNS = ("mw:alerts", "mw:risk", "mw:event:*", "mw:meter:*")


def _meterwatch_exe() -> str:
    """The ``meterwatch`` console script of this interpreter's environment."""
    candidate = Path(sys.executable).with_name("meterwatch")
    return str(candidate) if candidate.exists() else "meterwatch"


def run_worker(settings: Settings, metrics_port: int, *, write_windows: bool = True) -> None:
    """Create the topics, serve /metrics on 127.0.0.1 and run the Faust worker until stopped."""
    import asyncio

    from faust.worker import Worker
    from prometheus_client import CollectorRegistry, start_http_server

    from stream.app import create_app
    from stream.snapshots import ensure_topics

    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(ensure_topics(settings))
    registry = CollectorRegistry()
    start_http_server(metrics_port, addr="127.0.0.1", registry=registry)
    app = create_app(settings, registry=registry, write_windows=write_windows)
    worker = Worker(app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()


def worker_command(
    metrics_port: Annotated[
        int | None, typer.Option(help="Port of /metrics on 127.0.0.1 [settings.metrics_port]")
    ] = None,
    snapshot_interval: Annotated[
        float | None,
        typer.Option(help="Seconds between engine checkpoints [settings]", min=0.1),
    ] = None,
    windows: Annotated[
        bool,
        typer.Option(
            "--windows/--no-windows",
            help="Write every scored window to mw:meter:{id}:windows (drill-down)",
        ),
    ] = True,
) -> None:
    """Consume meter readings from Kafka, score them, write alerts to Redis and Alertmanager."""
    settings = Settings()
    if snapshot_interval is not None:
        settings = settings.model_copy(update={"snapshot_interval_seconds": snapshot_interval})
    port = metrics_port if metrics_port is not None else settings.metrics_port
    # compile (or load) the engine's kernels before subscribing: see warm_up_kernels
    from stream.engine import warm_up_kernels

    warm_up_kernels(settings)
    run_worker(settings, port, write_windows=windows)


# --------------------------------------------------------------------------- demo


def scrape(
    url: str, timeout_s: float = 2.0
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Samples of a Prometheus text endpoint: {(name, sorted labels): value}; {} if down."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - local
            text = response.read().decode()
    except OSError:
        return {}
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def metric_sum(samples: dict[Any, float], name: str, **labels: str) -> float:
    return sum(
        value
        for (sample_name, sample_labels), value in samples.items()
        if sample_name == name and all(dict(sample_labels).get(k) == v for k, v in labels.items())
    )


def alerts_by_severity(samples: dict[Any, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for (name, labels), value in samples.items():
        if name == "meterwatch_alerts_total":
            severity = dict(labels).get("severity", "?")
            out[severity] = out.get(severity, 0.0) + value
    return out


def top_alerts(client: Any, limit: int = 10) -> list[dict[str, Any]]:
    """The highest-risk meters' latest theft events, from Redis (``mw:risk`` + event hashes)."""
    import orjson

    found = []
    for meter, _risk in client.zrevrange("mw:risk", 0, limit * 5, withscores=True):
        meter_id = meter.decode() if isinstance(meter, bytes) else str(meter)
        event_id = client.hget(f"mw:meter:{meter_id}", "last_event_id")
        if event_id is None:
            continue
        raw = client.hget(f"mw:event:{event_id.decode()}", "event")
        if raw is None:
            continue
        event = orjson.loads(raw)
        if event.get("theft_likely"):
            found.append(event)
        if len(found) >= limit:
            break
    return found


def _summary_table(samples: dict[Any, float], rate: float, elapsed: float, alerts: int) -> Any:
    from rich.table import Table

    table = Table(title=f"meterwatch demo - {elapsed:5.0f} s", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("readings/s (worker)", f"{rate:,.0f}")
    table.add_row("readings scored", f"{metric_sum(samples, 'meterwatch_readings_total'):,.0f}")
    table.add_row(
        "windows scored", f"{metric_sum(samples, 'meterwatch_windows_scored_total'):,.0f}"
    )
    table.add_row("rejected to DLQ", f"{metric_sum(samples, 'meterwatch_rejected_total'):,.0f}")
    table.add_row("open events", f"{metric_sum(samples, 'meterwatch_open_events'):,.0f}")
    table.add_row("consumer lag", f"{metric_sum(samples, 'meterwatch_consumer_lag_messages'):,.0f}")
    for severity, count in sorted(alerts_by_severity(samples).items()):
        table.add_row(f"alerts: {severity}", f"{count:,.0f}")
    table.add_row("alerts in Redis (mw:alerts)", f"{alerts:,}")
    return table


def _format_evidence(evidence: dict[str, Any]) -> str:
    return ", ".join(
        f"{name}={value:.3g}" if isinstance(value, float) else f"{name}={value}"
        for name, value in evidence.items()
    )


def _print_alerts(console: Any, events: list[dict[str, Any]]) -> None:
    """Each alert on one line, then one line of evidence per cue."""
    console.rule("Top theft alerts (Redis: mw:risk -> mw:meter:{id} -> mw:event:{id})")
    if not events:
        console.print("no theft alert in Redis")
    for event in events:
        console.print(
            f"[bold]{event['meter_id']}[/] gateway {event.get('gateway_id') or '-'}  "
            f"severity [bold]{event.get('severity')}[/]  {event.get('status')}  "
            f"since {event.get('start')}  peak {float(event.get('peak_score') or 0):.0f}/100  "
            f"~{float(event.get('est_unbilled_kwh') or 0):.1f} kWh unbilled  "
            f"(event {event['event_id']} v{event.get('version')})"
        )
        for cue in event.get("cues") or []:
            console.print(
                f"    {cue.get('id')} {cue.get('name', '')}: "
                f"{_format_evidence(cue.get('evidence') or {})}"
            )


def _ground_truth_line(labels_path: Path, events: list[dict[str, Any]]) -> str:
    import orjson

    try:
        labels = orjson.loads(labels_path.read_bytes())
    except (OSError, ValueError):
        return "ground truth not available"
    thieves = {m["meter_id"] for m in labels.get("meters", []) if m.get("theft")}
    alerted = {e["meter_id"] for e in events}
    return (
        f"ground truth (simulator labels, never seen by the detector): {len(thieves)} meters "
        f"with injected theft; of the {len(alerted)} meters listed above, "
        f"{len(alerted & thieves)} are among them"
    )


def demo_command(
    meters: Annotated[int, typer.Option(min=10, help="Meters in the simulated fleet")] = 250,
    days: Annotated[
        float, typer.Option(min=2.5, help="Simulated days (theft starts on day 3)")
    ] = 3.0,
    cadence: Annotated[str, typer.Option(help="Reading interval of the simulated meters")] = "1m",
    speed: Annotated[str, typer.Option(help="Publishing rate: max or xN real time")] = "max",
    seed: Annotated[int, typer.Option(help="Simulator seed")] = 7,
) -> None:
    """The whole job: stack up, worker, simulated fleet with theft through Kafka, alerts."""
    import redis
    from rich.console import Console
    from rich.live import Live

    from deploy.local.stack import stack_up

    console = Console()
    settings = Settings()
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime())
    console.rule("meterwatch demo")
    console.print(
        f"This takes a few minutes: start the local stack, start a worker, stream {meters} "
        f"simulated meters x {days} days (with injected theft) through Kafka as fast as the "
        "worker keeps up, then print the top alerts from Redis."
    )
    if stack_up(settings, echo=console.print) != 0:
        console.print("[red]the local stack did not come up; see `meterwatch stack status`")
        raise typer.Exit(code=1)
    demo_env = {
        "METERWATCH_APP_ID": f"meterwatch-demo-{stamp}",
        "METERWATCH_TOPIC_READINGS": f"meter.readings.demo-{stamp}",
        "METERWATCH_SNAPSHOT_INTERVAL_SECONDS": "30",
    }
    env = dict(os.environ, **demo_env)
    client = redis.Redis.from_url(settings.redis_url)
    # Event ids are deterministic (same seed -> same ids), and Redis writes are idempotent
    # by (event_id, version): a previous demo's keys would hide this run's alerts.
    removed = 0
    for pattern in DEMO_REDIS_PATTERNS:
        for key in client.scan_iter(match=pattern, count=1000):
            removed += int(client.delete(key))
    console.print(f"cleared {removed} meterwatch keys from Redis ({settings.redis_url})")

    log_dir = settings.stack_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    worker_log = log_dir / f"demo-worker-{stamp}.log"
    labels = settings.stack_dir / f"demo-{stamp}.labels.json"
    exe = _meterwatch_exe()
    with open(worker_log, "wb") as worker_out:
        worker = subprocess.Popen(  # noqa: S603 - our own console script
            [exe, "worker"], env=env, stdout=worker_out, stderr=subprocess.STDOUT
        )
    console.print(f"worker started (pid {worker.pid}, log {worker_log})")
    metrics_url = f"http://127.0.0.1:{settings.metrics_port}/metrics"
    sim_cmd = [
        exe, "simulate", "--kafka", "--labels-out", str(labels), "--meters", str(meters),
        "--days", str(days), "--cadence", cadence, "--rate", speed, "--seed", str(seed),
        "--no-progress",
    ]  # fmt: skip
    simulator = subprocess.Popen(  # noqa: S603
        sim_cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    console.print(f"simulator publishing to topic {demo_env['METERWATCH_TOPIC_READINGS']}")
    started = time.monotonic()
    last_total, last_t = 0.0, started
    quiet_since: float | None = None
    try:
        with Live(console=console, refresh_per_second=2) as live:
            while True:
                time.sleep(1.0)
                now = time.monotonic()
                samples = scrape(metrics_url)
                total = metric_sum(samples, "meterwatch_readings_total")
                rate = (total - last_total) / max(now - last_t, 1e-6)
                last_total, last_t = total, now
                live.update(_summary_table(samples, rate, now - started, client.xlen("mw:alerts")))
                if worker.poll() is not None:
                    console.print(f"[red]the worker exited ({worker.returncode}); see {worker_log}")
                    raise typer.Exit(code=1)
                sim_done = simulator.poll() is not None
                idle = sim_done and rate == 0 and total > 0
                quiet_since = (quiet_since or now) if idle else None
                if quiet_since is not None and now - quiet_since >= 8:
                    break
                if sim_done and simulator.returncode != 0:
                    err = simulator.stderr.read().decode() if simulator.stderr else ""
                    console.print(f"[red]simulator failed ({simulator.returncode}): {err[-2000:]}")
                    raise typer.Exit(code=1)
        total = metric_sum(scrape(metrics_url), "meterwatch_readings_total")
        elapsed = time.monotonic() - started
        console.print(f"{total:,.0f} readings scored in {elapsed:.0f} s ({total / elapsed:,.0f}/s)")
        alerts = top_alerts(client)
        _print_alerts(console, alerts)
        console.print(_ground_truth_line(labels, alerts))
        console.print(
            f"done in {time.monotonic() - started:.0f} s. Ground truth: {labels}. The stack keeps "
            f"running: Prometheus {settings.prometheus_url}, Alertmanager "
            f"{settings.alertmanager_url}; `meterwatch stack down` stops it."
        )
    finally:
        for process in (simulator, worker):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in (simulator, worker):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
