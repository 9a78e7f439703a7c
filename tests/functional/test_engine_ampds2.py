"""Real, clean AMPds2 readings (37 days, 1-minute) raise at most one theft alert, and so
do the same readings exported as 5- or 15-minute interval readings (what many utilities'
head-ends deliver).

The file lives in ../shared/data (not in the repository); without it the test skips with
the reason. ~51k single-meter readings: each minute is its own pass of the engine, which
makes this the slowest functional test (about a minute on one free core).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from engine_runs import final_events

from rules.events import Event
from simulator.inject import MeterSeries, interval_readings
from stream.codecs import ReadingBatch
from stream.datasets import read_ampds2
from stream.engine import Engine
from stream.settings import Settings

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "ampds2_B1E_part11_1min.csv.xz"


@pytest.mark.slow
@pytest.mark.skipif(not DATA.is_file(), reason=f"AMPds2 sample not found at {DATA}")
def test_clean_real_meter_raises_at_most_one_theft_alert() -> None:
    batch = read_ampds2(DATA)
    assert len(batch) == 51_210
    # APF is the power factor that makes P = V*I*PF hold (see stream/datasets.py)
    busy = batch.i >= 1.0
    rel = np.abs(batch.p[busy] - batch.v[busy] * batch.i[busy] * batch.pf[busy]) / batch.p[busy]
    assert np.median(rel) < 0.05
    thefts = theft_alerts(batch)
    assert len(thefts) <= 1, [(ev.start_ms, sorted(ev.cues)) for ev in thefts]


def theft_alerts(batch: ReadingBatch) -> list[Event]:
    engine = Engine.from_settings(Settings(), clock=lambda: 1_396_400_000.0)
    events = final_events(engine, batch, 10_000)
    assert engine.counters["readings_accepted"] == len(batch)
    return [ev for ev in events.values() if ev.theft_likely]


@pytest.mark.slow
@pytest.mark.skipif(not DATA.is_file(), reason=f"AMPds2 sample not found at {DATA}")
@pytest.mark.parametrize("minutes", [5, 15])
def test_clean_real_meter_as_interval_readings_raises_at_most_one_theft_alert(
    minutes: int,
) -> None:
    real = read_ampds2(DATA)
    series = interval_readings(MeterSeries.of(real.ts_ms, real.p, real.v, real.i, real.pf), minutes)
    assert series.step_ms == minutes * 60_000 and len(series) == pytest.approx(51_210 / minutes, 1)
    batch = ReadingBatch.from_columns(
        meter_id=np.full(len(series), "AMPDS2-B1E", dtype=object),
        ts_ms=series.ts_ms,
        p=series.p,
        v=series.v,
        i=series.i,
        pf=series.pf,
    )
    thefts = theft_alerts(batch)
    assert len(thefts) <= 1, [(ev.start_ms, sorted(ev.cues)) for ev in thefts]
