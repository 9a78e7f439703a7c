"""The engine charges its time to stages (admit, pane rounds, models, events), timed by
the timer passed in: a counting fake timer here, so every figure is exact."""

from __future__ import annotations

import numpy as np

from rules.thresholds import load_thresholds
from stream.codecs import ReadingBatch
from stream.engine import ENGINE_STAGES, Engine, EngineConfig

T0_MS = 1_767_571_200_000  # 2026-01-05T00:00:00Z
MINUTE_MS = 60_000


class CountingTimer:
    """Each reading is one second later than the last: a stage's seconds count the
    timer readings inside it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def _minute(minute: int, meters: int = 3) -> ReadingBatch:
    return ReadingBatch.from_columns(
        meter_id=[f"M-{k}" for k in range(meters)],
        ts_ms=np.full(meters, T0_MS + minute * MINUTE_MS, dtype=np.int64),
        p=np.full(meters, 460.0),
        v=np.full(meters, 230.0),
        i=np.full(meters, 2.0),
        pf=np.full(meters, 1.0),
    )


def _engine(timer: CountingTimer) -> Engine:
    return Engine(
        EngineConfig(lateness_s=60),
        load_thresholds(),
        scorer=None,
        clock=lambda: T0_MS / 1000 + 86_400.0,
        timer=timer,
    )


def test_a_batch_that_releases_nothing_costs_only_admit_and_events() -> None:
    timer = CountingTimer()
    engine = _engine(timer)
    out = engine.process(_minute(0))  # pending: the lateness has not passed
    assert out.windows_scored == 0
    assert out.stage_seconds["admit"] > 0
    assert out.stage_seconds["pane_rounds"] == 0.0
    assert out.stage_seconds["models"] == 0.0


def test_stage_seconds_cover_every_stage_and_add_up_across_calls() -> None:
    timer = CountingTimer()
    engine = _engine(timer)
    totals = dict.fromkeys(ENGINE_STAGES, 0.0)
    windows = 0
    for minute in range(6):
        out = engine.process(_minute(minute))
        windows += out.windows_scored
        for stage, seconds in out.stage_seconds.items():
            totals[stage] += seconds
    out = engine.flush()
    windows += out.windows_scored
    for stage, seconds in out.stage_seconds.items():
        totals[stage] += seconds
    assert windows == 18
    assert set(totals) == set(ENGINE_STAGES)
    assert all(totals[s] > 0 for s in ENGINE_STAGES), totals
    assert totals == engine.stage_seconds
    # stages never overlap: together they are at most the timer's whole span
    assert sum(totals.values()) <= timer.now
