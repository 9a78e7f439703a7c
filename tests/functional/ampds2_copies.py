"""Shared by the functional tests that inject theft into the real AMPds2 sub-meter: the
first days of the real series, copies of it as one time-ordered reading batch, and their
final events from a fresh engine."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from engine_runs import final_events

from simulator.inject import MeterSeries
from stream.codecs import ReadingBatch
from stream.datasets import read_ampds2
from stream.engine import Engine
from stream.settings import Settings

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "ampds2_B1E_part11_1min.csv.xz"
DAY_MS = 86_400_000


def first_days(days: float) -> MeterSeries:
    """The first ``days`` of the real AMPds2 B1E readings."""
    real = read_ampds2(DATA)
    keep = real.ts_ms < real.ts_ms[0] + int(days * DAY_MS)
    return MeterSeries.of(real.ts_ms[keep], real.p[keep], real.v[keep], real.i[keep], real.pf[keep])


def copies_batch(copies: Mapping[str, MeterSeries]) -> ReadingBatch:
    """Every copy under its own meter id, all readings in time order (a gateway export)."""
    ids = list(copies)
    series = [copies[k] for k in ids]
    batch = ReadingBatch.from_columns(
        meter_id=np.repeat(np.array(ids, dtype=object), [len(s.ts_ms) for s in series]),
        ts_ms=np.concatenate([s.ts_ms for s in series]),
        p=np.concatenate([s.p for s in series]),
        v=np.concatenate([s.v for s in series]),
        i=np.concatenate([s.i for s in series]),
        pf=np.concatenate([s.pf for s in series]),
    )
    return batch.take(np.argsort(batch.ts_ms, kind="stable"))


def run_copies(batch: ReadingBatch, step: int, settings: Settings | None = None) -> dict[str, Any]:
    """event_id -> the final event JSON of a fresh engine fed ``batch`` in chunks of ``step``
    (wall clock fixed a little after the first weeks of the data)."""
    engine = Engine.from_settings(settings or Settings(), clock=lambda: 1_393_700_000.0)
    return {k: ev.to_json() for k, ev in final_events(engine, batch, step).items()}


def without_versions(events: dict[str, Any]) -> dict[str, Any]:
    """The events with their version counters dropped (it counts the updates emitted, one
    per batch, so only it may differ between batchings)."""
    return {k: {f: v for f, v in e.items() if f != "version"} for k, e in events.items()}
