"""The engine on small literal households over two weeks: a bypass whose share grows over
days (R13 slow_bypass) is caught once the two newest days drew less, with a lower standby,
while the voltage reacted to more current per metered ampere; a home left vacant, a
household that stops its evening load, and the end of a heating spell lower the meter too
but leave the service impedance alone, and are not theft."""

from __future__ import annotations

import numpy as np
from engine_runs import DAY, HOUR, T0, FixedClock, final_events

from rules.thresholds import load_thresholds
from stream.codecs import ReadingBatch
from stream.engine import Engine, EngineConfig

CADENCE = 300_000
DAYS = 13
SERVICE_OHM = 0.3
TS = T0 + np.arange(DAYS * DAY // CADENCE) * CADENCE


def household(
    metered_share: np.ndarray | None = None,
    living_share: np.ndarray | None = None,
    standby_w: np.ndarray | float = 120.0,
) -> ReadingBatch:
    """A home with a standby, a fridge cycling and a day-and-evening load. All of its current
    flows through the service cable (0.3 ohm): the voltage sags by that times the true
    current; ``metered_share`` is what the meter sees of it, ``living_share`` scales the
    occupants' load (0: nobody home), ``standby_w`` the load that never stops."""
    rng = np.random.default_rng(7)
    hour = (TS % DAY) / HOUR
    fridge = 100.0 * (((TS // 60_000) % 50) < 20)
    living = 300 + 600 * np.exp(-(((hour - 19.5) / 2.0) ** 2)) + rng.uniform(0, 400, len(TS))
    living = np.where((hour >= 7) & (hour < 23), living, 0.0)
    if living_share is not None:
        living = living * living_share
    p_true = (standby_w + fridge + living) * rng.uniform(0.98, 1.02, len(TS))
    pf = np.round(rng.uniform(0.9, 0.97, len(TS)), 3)
    i_true = p_true / (pf * 230)
    v = np.round(231 + rng.normal(0, 0.1, len(TS)) - SERVICE_OHM * i_true, 1)
    share = np.ones(len(TS)) if metered_share is None else metered_share
    i = np.round(share * i_true * 230 / v, 2)
    p = np.round(v * i * pf, 1)
    return ReadingBatch.from_columns(np.full(len(TS), "H1", dtype=object), TS, p, v, i, pf)


def theft_events(batch: ReadingBatch) -> list[tuple[int, list[str]]]:
    cfg = EngineConfig(window_s=600, hop_s=60, lateness_s=120, warmup_s=86_400)
    eng = Engine(cfg, load_thresholds(), scorer=None, clock=FixedClock())
    events = final_events(eng, batch, 288)
    return sorted((e.detected_at_ms, sorted(e.cues)) for e in events.values() if e.theft_likely)


def ramp(first_day: float, days: float, top: float) -> np.ndarray:
    """Share of the load bypassed: 0 before ``first_day``, growing to ``top`` over ``days``."""
    return top * np.clip((TS - (T0 + first_day * DAY)) / (days * DAY), 0.0, 1.0)


def test_a_bypass_growing_to_45_percent_over_five_days_is_caught_by_slow_bypass() -> None:
    found = theft_events(household(metered_share=1.0 - ramp(6.0, 5.0, 0.45)))
    slow = [at for at, cues in found if "slow_bypass" in cues]
    assert slow, f"not caught by slow_bypass: {found}"
    # nothing before the bypass began; the two newest completed days must carry it
    assert all(at >= T0 + 6 * DAY for at, _ in found)
    assert T0 + 8 * DAY <= slow[0] <= T0 + 13 * DAY


def test_the_same_household_without_a_bypass_is_not_theft() -> None:
    assert theft_events(household()) == []


def test_a_home_left_vacant_keeps_its_standby_and_is_not_theft() -> None:
    vacant = np.where(TS >= T0 + 7 * DAY + 10 * HOUR, 0.0, 1.0)
    assert theft_events(household(living_share=vacant)) == []


def test_a_household_halving_its_load_over_days_is_not_theft() -> None:
    """Less use and a smaller standby (the end of a heating spell) over days: level and
    floor fall as under a bypass, but every ampere still passes the meter."""
    less = 1.0 - ramp(6.0, 4.0, 0.5)
    found = theft_events(household(living_share=less, standby_w=120.0 + 120.0 * less))
    assert found == []
