"""Theft injected into the real AMPds2 sub-meter is caught by the engine's physical rules.

A small, CI-sized check of the path inject -> engine -> evaluate on real readings (the
figures over every theft type come from tests/benchmarks/test_bench_real_injected.py).
The first 5 days of the real circuit; two thefts that physics makes unmistakable once the
circuit draws real load: a meter frozen during an evening load (every channel, voltage
included, repeats one reading while readings keep arriving) and a reversed meter during
the evening load of day 4, which peaks at ~370 W for 6 minutes (negative power on a meter
that never exported). The onset times
are found from the readings (the first sustained load after the warm-up), not hard-coded.
"""

from __future__ import annotations

import numpy as np
import pytest
from ampds2_copies import DATA, DAY_MS, copies_batch, first_days
from engine_runs import final_events

from simulator.inject import (
    AMPDS2_RESOLUTION,
    HOUR_MS,
    MeterSeries,
    meter_freeze,
    nominal_voltage,
    reverse_meter,
)
from stream.engine import Engine
from stream.evaluation import evaluate
from stream.settings import Settings


def first_sustained_load(s: MeterSeries, min_w: float, minutes: int, peak_w: float = 0.0) -> int:
    """ts of the first reading, 2 days or more after the start, that opens ``minutes``
    consecutive readings drawing at least ``min_w`` (and at least ``peak_w`` once)."""
    window = np.ones(minutes, dtype=np.int64)
    loaded = np.convolve((s.p >= min_w).astype(np.int64), window, mode="valid") == minutes
    peaked = np.convolve((s.p >= peak_w).astype(np.int64), window, mode="valid") > 0
    after_warm_up = s.ts_ms[: len(loaded)] >= s.ts_ms[0] + 2 * DAY_MS
    candidates = np.flatnonzero(loaded & peaked & after_warm_up)
    assert len(candidates), f"no {minutes}-minute load of {min_w} W after the warm-up"
    return int(s.ts_ms[candidates[0]])


@pytest.mark.slow
@pytest.mark.skipif(not DATA.is_file(), reason=f"AMPds2 sample not found at {DATA}")
def test_freeze_and_reverse_injected_into_real_readings_are_caught() -> None:
    s = first_days(5)
    freeze_at = first_sustained_load(s, 15.0, 20)
    reverse_at = first_sustained_load(s, 15.0, 20, peak_w=300.0)
    thefts = {
        "REAL-meter_freeze-1": meter_freeze(s, freeze_at, freeze_at + 6 * HOUR_MS),
        "REAL-reverse_meter-1": reverse_meter(
            s, reverse_at, reverse_at + 12 * HOUR_MS, resolution=AMPDS2_RESOLUTION
        ),
    }
    copies = {**{k: v.series for k, v in thefts.items()}, "REAL-clean-1": s}
    ids = list(copies)
    batch = copies_batch(copies)
    engine = Engine.from_settings(Settings(), clock=lambda: 1_393_700_000.0)
    events = final_events(engine, batch, 20_000)
    assert engine.counters["readings_accepted"] == len(batch)

    labels = {
        "schema": "meterwatch.labels.v1",
        "start_ms": int(s.ts_ms[0]),
        "end_ms": s.end_ms,
        "cadence_s": 60,
        "nominal_voltage_v": nominal_voltage(s),
        "meters": [
            {"meter_id": k, "theft": thefts[k].label_entries() if k in thefts else []} for k in ids
        ],
    }
    result = evaluate(labels, [ev.to_json() for ev in events.values()])
    alerts = [
        (ev.meter_id, ev.start_ms, sorted(ev.cues)) for ev in events.values() if ev.theft_likely
    ]
    assert result.per_type["meter_freeze"]["caught"] == 1, alerts
    assert result.per_type["reverse_meter"]["caught"] == 1, alerts
    assert result.false_alarms_clean == 0, alerts
    assert result.precision == 1.0, alerts
    # caught while the theft is on, not hours later (freeze needs 15 min of repeats)
    assert result.per_type["meter_freeze"]["median_delay_min"] <= 60
    assert result.per_type["reverse_meter"]["median_delay_min"] <= 60
