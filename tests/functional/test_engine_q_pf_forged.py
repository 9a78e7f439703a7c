"""The engine on a small literal household: a PF forged just under 0.5 (billing cut by half
or more) is caught by R06 pf_abnormal; an honest household whose PF sags to 0.6-0.7 when
motors and electronics dominate is not."""

from __future__ import annotations

import numpy as np
import pytest
from engine_runs import DAY, HOUR, T0, FixedClock, final_events

from rules.thresholds import load_thresholds
from stream.codecs import ReadingBatch
from stream.engine import Engine, EngineConfig

CADENCE = 300_000
DAYS = 4
THEFT_AT = T0 + 2 * DAY + 9 * HOUR


def household(pf_of: np.ndarray | None = None, seed: int = 5) -> ReadingBatch:
    rng = np.random.default_rng(seed)
    ts = T0 + np.arange(DAYS * DAY // CADENCE) * CADENCE
    hour = (ts % DAY) / HOUR
    p_true = 300 + 400 * np.exp(-(((hour - 19) / 2.5) ** 2)) + rng.uniform(0, 600, len(ts))
    # honest PF: 0.6-0.7 in motor/electronics hours (afternoon), 0.85-0.98 otherwise
    motor = (hour >= 13) & (hour < 17)
    pf_true = np.where(motor, rng.uniform(0.6, 0.7, len(ts)), rng.uniform(0.85, 0.98, len(ts)))
    v = np.round(232 + rng.normal(0, 0.5, len(ts)) - 0.15 * p_true / (pf_true * 230), 1)
    i = np.round(p_true / (pf_true * v), 2)
    pf = np.round(pf_true if pf_of is None else pf_of(ts, pf_true), 3)
    p = np.round(v * i * pf, 1)  # billed power follows the PF the meter reports
    n = len(ts)
    return ReadingBatch.from_columns(np.full(n, "H1", dtype=object), ts, p, v, i, pf)


def theft_cues(batch: ReadingBatch) -> list[tuple[int, list[str]]]:
    cfg = EngineConfig(window_s=600, hop_s=60, lateness_s=120, warmup_s=86_400)
    eng = Engine(cfg, load_thresholds(), scorer=None, clock=FixedClock())
    events = final_events(eng, batch, 2000)
    return sorted((e.detected_at_ms, sorted(e.cues)) for e in events.values() if e.theft_likely)


@pytest.mark.parametrize("level", [0.3, 0.47])
def test_pf_forged_below_half_is_caught_within_an_hour(level: float) -> None:
    def forge(ts: np.ndarray, pf: np.ndarray) -> np.ndarray:
        return np.where(ts >= THEFT_AT, level, pf)

    found = theft_cues(household(forge))
    assert found, "forged PF not caught"
    first_at, cues = found[0]
    assert "pf_abnormal" in cues
    assert THEFT_AT <= first_at <= THEFT_AT + HOUR


def test_honest_low_pf_hours_are_not_theft() -> None:
    assert theft_cues(household()) == []
