"""R13's ramp tier facts (``Engine._ramp_peer_impedance``) on literal day rows: today's
and yesterday's referenced fits over the pooled fit of the counted days before
yesterday."""

from __future__ import annotations

import numpy as np
import pytest

from rules.thresholds import load_thresholds
from stream.engine import Engine

T = load_thresholds().section("peer_impedance")
TODAY = 20_470


def rows(days: dict[int, tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """One meter's day rows: day -> (sum of dI*dV', sum of dI^2); unused rows -1."""
    ids = np.full((1, 11), -1, dtype=np.int64)
    sums = np.zeros((1, 11, 2))
    for k, (day, (xy, xx)) in enumerate(days.items()):
        ids[0, k] = day
        sums[0, k] = (xy, xx)
    return ids, sums


def ramp(days: dict[int, tuple[float, float]]) -> dict[str, float]:
    ids, sums = rows(days)
    counted = sums[:, :, 1] >= T["min_day_di2_a2"]  # as Engine._days_peer_impedance
    facts = Engine._ramp_peer_impedance(ids, sums, counted, np.array([TODAY]))
    return {k: float(v[0]) for k, v in facts.items()}


def test_today_and_yesterday_against_the_pooled_days_before_yesterday() -> None:
    # before yesterday: 0.2 ohm on six days of 100 A^2 (the fit is -xy/xx); yesterday 0.23,
    # today so far 0.28 on 120 A^2
    old = {TODAY - d: (-20.0, 100.0) for d in range(2, 8)}
    got = ramp({**old, TODAY - 1: (-23.0, 100.0), TODAY: (-33.6, 120.0)})
    assert got["ramp_old_days_n"] == 6.0
    assert got["ramp_today_ratio"] == pytest.approx(1.4)
    assert got["ramp_yesterday_ratio"] == pytest.approx(1.15)
    assert got["ramp_today_di2_a2"] == pytest.approx(120.0)


def test_days_with_too_few_current_steps_do_not_count_but_today_always_reports() -> None:
    old = {TODAY - d: (-20.0, 100.0) for d in range(2, 8)}
    thin = {TODAY - 9: (-90.0, T["min_day_di2_a2"] - 1.0)}  # a wild fit on a thin day
    got = ramp({**old, **thin, TODAY - 1: (-5.0, 20.0), TODAY: (-3.0, 10.0)})
    assert got["ramp_old_days_n"] == 6.0
    assert got["ramp_today_ratio"] == pytest.approx(1.5)  # the rule asks for enough A^2
    assert got["ramp_today_di2_a2"] == pytest.approx(10.0)
    assert got["ramp_yesterday_ratio"] == 1.0  # yesterday not counted: no ratio


def test_without_older_days_or_with_a_meaningless_fit_the_ratios_are_one() -> None:
    assert ramp({TODAY - 1: (-23.0, 100.0), TODAY: (-30.0, 120.0)})["ramp_today_ratio"] == 1.0
    # an old fit of the wrong sign (voltage rising with current: export) is not a fit
    old = {TODAY - d: (5.0, 100.0) for d in range(2, 8)}
    got = ramp({**old, TODAY: (-30.0, 120.0)})
    assert (got["ramp_today_ratio"], got["ramp_yesterday_ratio"]) == (1.0, 1.0)
    # rows of later days (a clock ahead) and unused rows are ignored
    old = {TODAY - d: (-20.0, 100.0) for d in range(2, 6)}
    assert ramp({**old, TODAY + 1: (-90.0, 100.0)})["ramp_old_days_n"] == 4.0
