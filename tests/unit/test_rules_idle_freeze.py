"""R01 for a meter frozen while idling: hours of identical readings with voltage present,
judged against the longest repeat the meter itself has shown before."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rules.cues import meter_freeze
from rules.thresholds import load_thresholds

T = load_thresholds().section("meter_freeze")
SIX_H = T["idle_min_duration_s"]


def idle(run_s: float, run_n: float, max_s: float, v: float = 119.0) -> dict[str, np.ndarray]:
    return {
        "warm": np.array([1.0]),
        "flat_run_n": np.array([run_n]),
        "flat_run_s": np.array([run_s]),
        "last_abs_p_w": np.array([0.0]),
        "last_i_a": np.array([0.0]),
        "mean_v_v": np.array([v]),
        "flat_max_s": np.array([max_s]),
    }


def test_hours_of_identical_idle_readings_fire_when_the_meter_never_repeated_that_long() -> None:
    res = meter_freeze(idle(SIX_H, SIX_H / 60, 540.0), T)
    assert res.fired.tolist() == [True]
    assert res.evidence["longest_earlier_repeat_s"].tolist() == [540.0]


def test_short_of_the_minimum_duration_it_does_not_fire() -> None:
    assert not meter_freeze(idle(SIX_H - 60, SIX_H / 60, 540.0), T).fired.any()


def test_a_meter_that_has_repeated_for_hours_before_needs_several_times_longer() -> None:
    # a coarse voltage register on a stiff supply: 3 h repeats are its normal
    assert not meter_freeze(idle(8 * 3600, 200, 3 * 3600), T).fired.any()
    assert meter_freeze(idle(12 * 3600, 300, 3 * 3600), T).fired.all()


def test_no_voltage_or_too_few_readings_or_not_warm_do_not_fire() -> None:
    assert not meter_freeze(idle(SIX_H, 400, 60, v=0.0), T).fired.any()
    assert not meter_freeze(idle(SIX_H, 8, 60), T).fired.any()  # 15-min cadence, 2 h only
    cold = idle(SIX_H, 400, 60)
    cold["warm"] = np.array([0.0])
    assert not meter_freeze(cold, T).fired.any()


@given(
    run_s=st.floats(0, 1e6, allow_nan=False),
    max_s=st.floats(0, 1e6, allow_nan=False),
    longer=st.floats(0, 1e5, allow_nan=False),
)
def test_a_longer_repeat_never_unfires_and_a_longer_history_never_fires(
    run_s: float, max_s: float, longer: float
) -> None:
    base = meter_freeze(idle(run_s, 1000, max_s), T).fired[0]
    assert meter_freeze(idle(run_s + longer, 1000, max_s), T).fired[0] >= base
    assert meter_freeze(idle(run_s, 1000, max_s + longer), T).fired[0] <= base


@pytest.mark.parametrize("p_w", [0.0, 3.0])
def test_an_idle_freeze_is_judged_the_same_at_standby_noise(p_w: float) -> None:
    f = idle(SIX_H, 400, 60)
    f["last_abs_p_w"] = np.array([p_w])
    assert meter_freeze(f, T).fired.all()
