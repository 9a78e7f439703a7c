"""R12 below_standby on literal facts."""

from __future__ import annotations

import numpy as np
import pytest

from rules.cues import CUE_BY_NAME, below_standby
from rules.thresholds import load_thresholds

TH = load_thresholds().section("below_standby")
FIRING = {
    "warm": 1.0,
    "slow_p_w": 40.0,
    "standby_floor_w": 120.0,
    "sub_floor_run_s": 9000.0,
    "export_physics": 0.0,
    "export_age_s": float("inf"),
}


def facts(**changes: float) -> dict[str, np.ndarray]:
    return {k: np.array([changes.get(k, v), v]) for k, v in FIRING.items()}


def test_fires_hours_below_a_third_of_the_standby_floor_with_evidence() -> None:
    res = below_standby(facts(), TH)
    assert res.fired.tolist() == [True, True]
    assert res.evidence["standby_floor_w"].tolist() == [120.0, 120.0]
    assert res.evidence["below_for_s"].tolist() == [9000.0, 9000.0]


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"warm": 0.0}, "warm-up"),
        ({"slow_p_w": 110.0}, "at about the standby: a home that is out"),
        ({"sub_floor_run_s": 1800.0}, "half an hour is not hours"),
        ({"standby_floor_w": 10.0, "slow_p_w": 2.0}, "an idle circuit has no meaningful floor"),
        ({"standby_floor_w": 0.0, "slow_p_w": 0.0}, "no floor learnt yet"),
        ({"export_age_s": 7200.0}, "it exported two hours ago: a source of its own"),
        ({"export_physics": -1.0}, "its export raised its voltage: a source of its own"),
    ],
)
def test_each_condition_is_needed(change: dict[str, float], why: str) -> None:
    assert below_standby(facts(**change), TH).fired.tolist() == [False, True], why


def test_is_a_physical_cue_with_a_stable_id() -> None:
    cue = CUE_BY_NAME["below_standby"]
    assert (cue.id, cue.physical) == ("R12", True)
