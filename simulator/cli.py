"""``meterwatch simulate``: a labelled meter fleet to a file or to Kafka.

Heavy imports (numpy, pyarrow, kafka) happen inside the command, so the CLI starts fast.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from simulator.config import FleetConfig

_CADENCE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h)?\s*$", re.IGNORECASE)


def parse_cadence(text: str) -> int:
    """``5s``, ``300``, ``5m``, ``15min``, ``1h`` -> whole seconds."""
    match = _CADENCE.match(text)
    if not match:
        raise typer.BadParameter(f"cadence {text!r}: use e.g. 5s, 1m, 15min")
    value = float(match.group(1))
    unit = (match.group(2) or "s").lower()
    seconds = value * {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}[unit]
    if seconds != int(seconds) or not (1 <= seconds <= 900):
        raise typer.BadParameter(f"cadence {text!r}: whole seconds from 1 s to 15 min")
    return int(seconds)


def parse_start(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        start = datetime.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(f"start {text!r} is not ISO-8601") from exc
    if start.tzinfo is None:
        raise typer.BadParameter("start needs an offset, e.g. 2026-01-05T00:00:00+00:00")
    return start


def simulate_command(
    meters: Annotated[int, typer.Option(min=1, help="Number of meters")] = 100,
    days: Annotated[float, typer.Option(min=0.0001, help="Days of readings")] = 14.0,
    cadence: Annotated[str, typer.Option(help="Reading interval, 1s to 15min, e.g. 5s, 5m")] = "5s",
    theft_share: Annotated[
        float, typer.Option(min=0, max=1, help="Share of meters stealing")
    ] = 0.05,
    behaviour_share: Annotated[
        float, typer.Option(min=0, max=1, help="Share of meters with non-theft changes")
    ] = 0.05,
    malformed_share: Annotated[
        float, typer.Option(min=0, max=1, help="Share of malformed readings")
    ] = 0.001,
    seed: Annotated[int, typer.Option(help="Random seed (same seed + options = same bytes)")] = 0,
    start: Annotated[
        str | None,
        typer.Option(
            help="First reading, ISO-8601 with offset [2026-01-05T00:00Z]; the offset is "
            "also the local time of the households' routines"
        ),
    ] = None,
    nominal_voltage: Annotated[float, typer.Option(help="Nominal voltage, V (230 or 120)")] = 230.0,
    transport_faults: Annotated[
        bool, typer.Option(help="Inject gaps, duplicates, late rows, clock skew")
    ] = True,
    out: Annotated[Path | None, typer.Option(help="Write readings here (.parquet or .csv)")] = None,
    labels_out: Annotated[
        Path | None, typer.Option(help="Labels file [next to --out: NAME.labels.json]")
    ] = None,
    kafka: Annotated[bool, typer.Option("--kafka", help="Publish to Kafka instead")] = False,
    form: Annotated[str, typer.Option(help="Kafka message form: batch or single")] = "batch",
    rate: Annotated[
        str, typer.Option(help="Kafka rate: max, realtime, or xN (N times real time)")
    ] = "max",
    labels_topic: Annotated[
        str, typer.Option(help="Kafka topic for the labels (with --kafka)")
    ] = "meter.labels",
    progress: Annotated[bool, typer.Option(help="Show a progress bar")] = True,
) -> None:
    """Simulate a meter fleet with labelled theft, behaviours and transport faults."""
    from rich.console import Console

    from simulator.config import DEFAULT_START, FleetConfig  # noqa: F811

    console = Console(stderr=True)
    if (out is None) == (not kafka):
        raise typer.BadParameter("give exactly one of --out FILE or --kafka")
    if kafka and labels_out is None:
        raise typer.BadParameter("--kafka needs --labels-out PATH for the ground truth")
    if out is not None and out.suffix.lower() not in (".parquet", ".csv"):
        raise typer.BadParameter("--out must end in .parquet or .csv")
    if form not in ("batch", "single"):
        raise typer.BadParameter("--form must be batch or single")
    start_at = parse_start(start) or DEFAULT_START
    offset = start_at.utcoffset()
    try:
        config = FleetConfig(
            meters=meters,
            days=days,
            cadence_s=parse_cadence(cadence),
            seed=seed,
            start=start_at,
            # household routines run on the local time of the start's offset
            utc_offset_h=offset.total_seconds() / 3600.0 if offset is not None else 0.0,
            theft_share=theft_share,
            behaviour_share=behaviour_share,
            malformed_share=malformed_share,
            nominal_voltage_v=nominal_voltage,
            transport_faults=transport_faults,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if config.days < 2.25 and theft_share > 0:
        console.print(
            "[yellow]note:[/] runs shorter than 2 days + 6 h carry no theft "
            "(theft never starts before start + 2 days)"
        )
    expected = config.steps * config.meters
    if out is not None:
        _write(config, out, labels_out, expected, progress, console)
    elif labels_out is not None:
        _publish(config, labels_out, labels_topic, form, rate, progress, console)


def _write(
    config: FleetConfig,
    out: Path,
    labels_out: Path | None,
    expected: int,
    progress: bool,
    console: Console,
) -> None:
    import time

    from rich.progress import Progress

    from simulator.fleet import write_files

    started = time.perf_counter()
    with Progress(console=console, disable=not progress, transient=True) as bar:
        task = bar.add_task("simulating", total=expected)
        rows, labels_path = write_files(
            config, out, labels_out, progress=lambda n: bar.advance(task, n)
        )
    elapsed = time.perf_counter() - started
    console.print(
        f"wrote {rows:,} readings to {out} and labels to {labels_path} "
        f"in {elapsed:.1f} s ({rows / max(elapsed, 1e-9):,.0f} readings/s)"
    )


def _publish(
    config: FleetConfig,
    labels_out: Path,
    labels_topic: str,
    form: str,
    rate: str,
    progress: bool,
    console: Console,
) -> None:
    from simulator.publish import SystemClock, parse_rate, publish_config
    from stream.settings import Settings

    try:
        speed = parse_rate(rate)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    settings = Settings()
    stats = publish_config(
        settings,
        config,
        labels_out,
        form=form,
        speed=speed,
        clock=SystemClock(),
        progress=progress,
        console=console,
        labels_topic=labels_topic,
    )
    console.print(
        f"published {stats.readings:,} readings in {stats.messages:,} messages to "
        f"{settings.topic_readings}; labels in {labels_out}"
    )


def inject_command(
    input: Annotated[Path, typer.Argument(help="Real AMPds2 minutely CSV (optionally .xz)")],
    out: Annotated[Path, typer.Option(help="Write readings here (.parquet or .csv)")],
    labels_out: Annotated[
        Path | None, typer.Option(help="Labels file [next to --out: NAME.labels.json]")
    ] = None,
    per_type: Annotated[int, typer.Option(min=0, help="Copies per theft type")] = 2,
    clean: Annotated[int, typer.Option(min=0, help="Clean (untouched) copies")] = 2,
    types: Annotated[str, typer.Option(help="Comma-separated theft types [all of them]")] = "",
    seed: Annotated[int, typer.Option(help="Random seed (starts and parameters)")] = 0,
    days: Annotated[
        float | None, typer.Option(min=2.25, help="Use only the first D days of the file")
    ] = None,
    utc_offset_h: Annotated[
        float, typer.Option(help="Local time of the meter, h from UTC (AMPds2: -8)")
    ] = -8.0,
    meter_prefix: Annotated[str, typer.Option(help="Meter id prefix")] = "AMPDS2-B1E",
    interval_min: Annotated[
        int,
        typer.Option(
            min=1,
            help="Export K-minute interval readings (means; PF from the meter's own "
            "registers) after injection [1: as recorded]",
        ),
    ] = 1,
) -> None:
    """Inject labelled theft into copies of a real meter: an evaluation fleet."""
    import numpy as np

    from simulator.config import THEFT_TYPES
    from simulator.fleet import labels_path_for, write_labels
    from simulator.inject import AMPDS2_RESOLUTION, MeterSeries, build_fleet
    from stream.codecs import UnusableInputError
    from stream.datasets import read_ampds2

    def fail(message: str) -> None:
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(code=2)

    if out.suffix.lower() not in (".parquet", ".csv"):
        raise typer.BadParameter("--out must end in .parquet or .csv")
    theft_types = tuple(t.strip() for t in types.split(",") if t.strip()) or THEFT_TYPES
    unknown = sorted(set(theft_types) - set(THEFT_TYPES))
    if unknown:
        raise typer.BadParameter(f"unknown theft type(s) {unknown}; known: {THEFT_TYPES}")
    try:
        batch = read_ampds2(input, meter_id=meter_prefix)
    except UnusableInputError as exc:
        fail(str(exc))
        return
    keep = np.ones(len(batch), dtype=bool)
    if days is not None:
        keep = batch.ts_ms < batch.ts_ms[0] + int(days * 86_400_000) if len(batch) else keep
    try:
        series = MeterSeries.of(
            batch.ts_ms[keep], batch.p[keep], batch.v[keep], batch.i[keep], batch.pf[keep]
        )
        fleet = build_fleet(
            series,
            theft_types=theft_types,
            per_type=per_type,
            clean=clean,
            seed=seed,
            utc_offset_h=utc_offset_h,
            resolution=AMPDS2_RESOLUTION,
            prefix=meter_prefix,
            source=input.name,
        )
    except ValueError as exc:
        fail(f"{input}: {exc}")
        return
    if interval_min > 1:
        fleet = fleet.at_interval(interval_min)
    _write_table(fleet.columns(), out)
    labels_path = labels_out if labels_out is not None else labels_path_for(out)
    write_labels(fleet.labels, labels_path)
    typer.echo(
        f"wrote {fleet.labels['readings']:,} readings of {len(fleet.meter_ids)} meters "
        f"({len(theft_types)} theft types x {per_type}, {clean} clean) to {out}; "
        f"labels in {labels_path}"
    )


def _write_table(columns: dict[str, object], out: Path) -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    table = pa.table(columns)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".parquet":
        pq.write_table(table, out, compression="zstd")
    else:
        pacsv.write_csv(table, out)
