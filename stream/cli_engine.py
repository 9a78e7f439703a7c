"""``meterwatch replay`` and ``meterwatch evaluate``.

Heavy imports (numpy, pyarrow, the engine) stay inside the command functions so that the
CLI starts fast for the other commands.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

REPLAY_CHUNK_ROWS = 131_072


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=2)


def run_replay(
    input_path: Path,
    out_dir: Path,
    settings: Any,
    chunk_rows: int = REPLAY_CHUNK_ROWS,
    progress: bool = True,
    clock: Any = time.time,
    flush: bool = True,
) -> dict[str, Any]:
    """Replay a file through the engine; write events.jsonl, rejected.jsonl, summary.json.

    ``flush`` (default) ends the input: the readings held back for the allowed lateness
    are scored and every event closes. Without it the replay stops where a stream stands
    after the same readings (a stream has no end of input): the held-back tail pending,
    open events open, so its events can be compared field by field with a worker's.

    Rows are put in event-time order first (a stable sort of the whole file): offline
    there is no reason to drop a reading as late, and time-ordered chunks carry every
    meter forward together, which is what makes the vectorised engine fast.
    Raises ``stream.codecs.UnusableInputError`` for unusable input.
    """
    import numpy as np
    import orjson

    from stream.codecs import read_table
    from stream.engine import Engine

    t0 = time.perf_counter()
    batch, rejected = read_table(input_path)
    t_read = time.perf_counter() - t0
    rows_in = len(batch) + len(rejected)
    order = np.argsort(batch.ts_ms, kind="stable")
    batch = batch.take(order)
    engine = Engine.from_settings(settings, clock=clock)
    latest: dict[str, Any] = {}
    alerts = 0
    windows = 0
    engine_rejected: list[Any] = []
    t1 = time.perf_counter()

    def consume(out: Any) -> None:
        nonlocal alerts, windows
        for ev in out.event_updates:
            latest[ev.event_id] = ev
        alerts += len(out.alerts)
        windows += out.windows_scored
        engine_rejected.extend(out.rejected)

    if progress:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(
            TextColumn("replay"),
            BarColumn(),
            TextColumn("{task.completed:,}/{task.total:,} readings"),
            TimeRemainingColumn(),
            transient=True,
        ) as bar:
            task = bar.add_task("replay", total=len(batch))
            for start in range(0, len(batch), chunk_rows):
                consume(engine.process(batch.slice(start, start + chunk_rows)))
                bar.update(task, advance=min(chunk_rows, len(batch) - start))
    else:
        for start in range(0, len(batch), chunk_rows):
            consume(engine.process(batch.slice(start, start + chunk_rows)))
    if flush:
        consume(engine.flush())
    t_engine = time.perf_counter() - t1
    total = time.perf_counter() - t0

    out_dir.mkdir(parents=True, exist_ok=True)
    events = sorted(latest.values(), key=lambda e: (e.meter_id, e.start_ms))
    with (out_dir / "events.jsonl").open("wb") as fh:
        for ev in events:
            fh.write(orjson.dumps(ev.to_json()) + b"\n")
    all_rejected = rejected + engine_rejected
    reasons: dict[str, int] = {}
    with (out_dir / "rejected.jsonl").open("wb") as fh:
        for rej in all_rejected:
            reasons[rej.reason] = reasons.get(rej.reason, 0) + 1
            fh.write(orjson.dumps(rej.to_json(), default=str) + b"\n")
    counters = engine.counters
    summary = {
        "input": str(input_path),
        "rows_in": rows_in,
        "readings_accepted": counters["readings_accepted"],
        "rejected": len(all_rejected),
        "rejected_by_reason": dict(sorted(reasons.items())),
        "duplicates": counters["duplicates"],
        "late_dropped": counters["late_dropped"],
        "windows_scored": counters["windows_scored"],
        "comms_gap_windows": counters["comms_gap_windows"],
        "meters": engine.meters_tracked,
        "events": len(events),
        "theft_alert_events": sum(1 for e in events if e.theft_likely),
        "alerts_raised": alerts,
        "seconds_read": round(t_read, 3),
        "seconds_engine": round(t_engine, 3),
        # where the engine's time went (see stream.engine.ENGINE_STAGES)
        "seconds_by_stage": {k: round(v, 3) for k, v in engine.stage_seconds.items()},
        "seconds_total": round(total, 3),
        "readings_per_second": round(rows_in / total, 1) if total > 0 else None,
        "bytes_per_meter": engine.bytes_per_meter(),
        "state_bytes": engine.state_bytes(),
        "peer_state_bytes": engine.peer_state_bytes(),
        "model_version": engine.model_version,
        "model_artifact_loaded": bool(getattr(engine.scorer, "artifact_loaded", False)),
        "window_seconds": engine.config.window_s,
        "hop_seconds": engine.config.hop_s,
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def replay_command(
    input: Annotated[Path, typer.Argument(help="CSV or Parquet file of readings")],
    out: Annotated[Path, typer.Option("--out", help="Output directory")],
    chunk_rows: Annotated[
        int, typer.Option(min=1, help="Readings per engine batch")
    ] = REPLAY_CHUNK_ROWS,
    progress: Annotated[bool, typer.Option(help="Show a progress bar")] = True,
    flush: Annotated[
        bool,
        typer.Option(
            help="End of input closes every event (--no-flush: stop where a stream would "
            "stand, events open and the lateness tail pending; to compare with a worker)"
        ),
    ] = True,
) -> None:
    """Replay a CSV or Parquet file through the engine."""
    from stream.codecs import UnusableInputError
    from stream.settings import Settings

    settings = Settings()
    try:
        summary = run_replay(
            input, out, settings, chunk_rows=chunk_rows, progress=progress, flush=flush
        )
    except UnusableInputError as exc:
        _fail(str(exc))
        return
    typer.echo(
        f"{summary['rows_in']:,} rows: {summary['readings_accepted']:,} accepted, "
        f"{summary['rejected']:,} rejected, {summary['duplicates']:,} duplicates; "
        f"{summary['events']:,} events ({summary['theft_alert_events']:,} theft alerts); "
        f"{summary['readings_per_second']:,.0f} readings/s; "
        f"{summary['bytes_per_meter']:,} bytes/meter -> {out}"
    )


def evaluate_command(
    labels: Annotated[Path, typer.Option("--labels", help="Simulator labels JSON")],
    events: Annotated[Path, typer.Option("--events", help="events.jsonl from replay")],
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the figures as JSON here")
    ] = None,
) -> None:
    """Score events against simulator labels."""
    from rich.console import Console
    from rich.table import Table

    from stream.evaluation import evaluate, load_events

    for path in (labels, events):
        if not path.is_file():
            _fail(f"no such file: {path}")
    try:
        label_doc = json.loads(labels.read_text(encoding="utf-8"))
        event_list = load_events(events)
    except (json.JSONDecodeError, KeyError, OSError) as exc:
        _fail(f"cannot read input: {exc}")
        return
    if not isinstance(label_doc, dict) or "meters" not in label_doc:
        _fail(f"{labels}: not a meterwatch.labels.v1 document")
    try:
        result = evaluate(label_doc, event_list)
    except (KeyError, ValueError, TypeError) as exc:
        _fail(f"malformed labels or events: {exc}")
        return
    console = Console()
    table = Table(title="Thieves caught per theft type")
    for col in ("theft type", "thieves", "caught", "median delay (min)"):
        table.add_column(col)
    for kind, row in result.per_type.items():
        table.add_row(
            kind, str(row["thieves"]), str(row["caught"]), f"{row['median_delay_min']:.0f}"
        )
    console.print(table)
    data = result.to_json()
    console.print(
        f"alerts {result.alerts} (true {result.true_alerts}), precision {result.precision:.3f}; "
        f"caught {result.caught}/{result.thieves}; "
        f"false alarms/100 clean meter-days {result.false_alarms_per_100_meter_days:.3f}; "
        f"median delay abrupt {result.median_delay_abrupt_min:.0f} min; "
        f"ROC-AUC {result.roc_auc:.3f}; precision@k "
        + ", ".join(f"{k}: {v:.2f}" for k, v in result.precision_at_k.items())
    )
    # (one line, unwrapped: scripts grep it)
    console.print(
        "caught, by days of theft the data holds (thieves whose theft began at least d days "
        "before it ends): "
        + ", ".join(f"{d}d+ {c}/{n}" for d, (c, n) in result.caught_by_days_observed.items()),
        soft_wrap=True,
    )
    if result.missed:
        console.print(
            "missed (meter, theft type, hours of theft the data holds): "
            + ", ".join(
                f"{m['meter_id']} {m['type']} {m['theft_hours_held']:g} h" for m in result.missed
            ),
            soft_wrap=True,
        )
    if json_out is not None:
        json_out.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
