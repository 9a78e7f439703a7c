"""R13 slow_bypass on literal facts, and the engine's median of the finite values per row."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from rules.cues import CUE_BY_NAME, slow_bypass
from rules.thresholds import load_thresholds
from stream.engine import median_of_finite

TH = load_thresholds().section("slow_bypass")
FIRING = {
    "warm": 1.0,
    "days_old_n": 6.0,
    "days_old_mean_w": 400.0,
    "days_old_floor_w": 80.0,
    "days_level_ratio": 0.62,
    "days_floor_ratio": 0.6,
    "today_floor_ratio": 0.55,
    "days_impedance_ratio": 1.6,
    "days_peer_referenced": 0.0,
    "days_peer_impedance_ratio": 1.0,
    "ramp_old_days_n": 0.0,
    "ramp_today_ratio": 1.0,
    "ramp_yesterday_ratio": 1.0,
    "ramp_today_di2_a2": 0.0,
    "export_physics": 0.0,
    "export_age_s": float("inf"),
}


def facts(**changes: float) -> dict[str, np.ndarray]:
    return {k: np.array([changes.get(k, v), v]) for k, v in FIRING.items()}


def test_fires_on_a_lower_level_and_floor_with_a_higher_impedance_with_evidence() -> None:
    res = slow_bypass(facts(), TH)
    assert res.fired.tolist() == [True, True]
    assert res.evidence["level_ratio"].tolist() == [0.62, 0.62]
    assert res.evidence["floor_ratio"].tolist() == [0.6, 0.6]
    assert res.evidence["impedance_ratio"].tolist() == [1.6, 1.6]
    assert res.evidence["earlier_floor_w"].tolist() == [80.0, 80.0]


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"warm": 0.0}, "warm-up"),
        ({"days_old_n": 2.0}, "two earlier days are not a history"),
        ({"days_old_mean_w": 90.0}, "a small circuit"),
        ({"days_old_floor_w": 15.0}, "no meaningful standby to fall"),
        ({"days_level_ratio": 0.95}, "the level held"),
        ({"days_level_ratio": -0.4}, "export: the reverse-flow cue's case"),
        ({"days_floor_ratio": 0.97}, "the standby held: a vacancy or a habit"),
        ({"today_floor_ratio": 1.0}, "the standby is back today: the bypass was removed"),
        ({"days_impedance_ratio": 1.02}, "every ampere still passes the meter"),
        ({"export_age_s": 7200.0}, "it exported two hours ago: a source of its own"),
    ],
)
def test_each_condition_is_needed(change: dict[str, float], why: str) -> None:
    assert slow_bypass(facts(**change), TH).fired.tolist() == [False, True], why


def test_with_the_peer_referenced_fit_its_gates_and_its_ratio_decide() -> None:
    # a young bypass: 12 % of the load, the level within a household's weekly wobble
    young = {
        "days_level_ratio": 0.9,
        "days_floor_ratio": 0.86,
        "today_floor_ratio": 0.86,
        "days_impedance_ratio": 1.3,  # the own fit: noisy, no help either way
        "days_peer_impedance_ratio": 1.14,
    }
    assert TH["peer_max_level_ratio"] > TH["max_level_ratio"]
    own = slow_bypass(facts(**young), TH)
    peer = slow_bypass(facts(**young, days_peer_referenced=1.0), TH)
    assert own.fired.tolist() == [False, True]
    assert peer.fired.tolist() == [True, True]
    assert peer.evidence["impedance_ratio"].tolist() == [1.14, 1.6]
    assert peer.evidence["impedance_peer_referenced"].tolist() == [1.0, 0.0]
    # where the referenced fit is there, the own fit's ratio no longer counts
    flat = {**young, "days_peer_referenced": 1.0, "days_peer_impedance_ratio": 1.01}
    assert slow_bypass(facts(**flat), TH).fired.tolist() == [False, True]


def test_is_a_physical_cue_with_a_stable_id() -> None:
    cue = CUE_BY_NAME["slow_bypass"]
    assert (cue.id, cue.physical) == ("R13", True)


def test_median_of_finite_skips_unknown_days_and_gives_zero_without_any() -> None:
    rows = np.array([[np.nan, 5.0, 1.0, np.nan], [np.nan] * 4, [4.0, 2.0, 8.0, 6.0]])
    assert median_of_finite(rows).tolist() == [3.0, 0.0, 5.0]


@given(
    arrays(
        np.float64,
        (3, 8),
        elements=st.one_of(st.just(np.nan), st.floats(-1e6, 1e6, allow_nan=False)),
    )
)
def test_median_of_finite_matches_numpy_on_each_row(rows: np.ndarray) -> None:
    got = median_of_finite(rows)
    for k, row in enumerate(rows):
        finite = row[np.isfinite(row)]
        want = float(np.median(finite)) if len(finite) else 0.0
        assert got[k] == pytest.approx(want, rel=1e-12, abs=1e-9)


# a young ramp: the two completed days' level held (the home drew more), today's fit is up
# a third on the days before yesterday, yesterday's a tenth, the standby down by about that
RAMP = {
    "days_level_ratio": 1.04,
    "days_floor_ratio": 0.84,
    "today_floor_ratio": 0.8,
    "days_impedance_ratio": 1.0,
    "ramp_old_days_n": 8.0,
    "ramp_today_ratio": 1.38,
    "ramp_yesterday_ratio": 1.12,
    "ramp_today_di2_a2": 240.0,
}


def test_the_ramp_tier_fires_without_the_level_test_with_todays_evidence() -> None:
    res = slow_bypass(facts(**RAMP), TH)
    assert res.fired.tolist() == [True, True]
    assert res.evidence["today_impedance_ratio"].tolist() == [1.38, 1.0]
    assert res.evidence["yesterday_impedance_ratio"].tolist() == [1.12, 1.0]
    assert res.evidence["level_ratio"].tolist() == [1.04, 0.62]


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"ramp_today_ratio": 1.2}, "today's fit is not up enough"),
        ({"ramp_yesterday_ratio": 1.0}, "yesterday held: one odd day is no ramp"),
        ({"ramp_today_di2_a2": 60.0}, "today's fit rests on too few current steps"),
        ({"ramp_old_days_n": 3.0}, "too few days before yesterday to compare with"),
        ({"days_floor_ratio": 0.95}, "the standby held over the completed days"),
        ({"today_floor_ratio": 0.95}, "the standby is back today"),
        ({"today_floor_ratio": 0.4}, "the standby fell far more than the fit implies"),
        ({"days_old_floor_w": 15.0}, "no meaningful standby to fall"),
        ({"export_age_s": 7200.0}, "a source of its own"),
    ],
)
def test_each_condition_of_the_ramp_tier_is_needed(change: dict[str, float], why: str) -> None:
    assert TH["ramp_min_floor_fit_ratio"] > 0.4 * RAMP["ramp_today_ratio"]
    assert slow_bypass(facts(**{**RAMP, **change}), TH).fired.tolist() == [False, True], why
