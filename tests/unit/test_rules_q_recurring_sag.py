"""R11 recurring_sag on literal facts: every condition is needed, none is enough alone."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rules.cues import CUE_BY_NAME, recurring_sag
from rules.thresholds import load_thresholds

TH = load_thresholds().section("recurring_sag")

FIRING = {
    "warm": 1.0,
    "vstep_onset": 1.0,
    "vstep_v": -2.0,
    "vstep_z": -6.0,
    "vstep_amps": 12.0,
    "vstep_prior_n": 0.9,
}


def facts(**changes: float) -> dict[str, np.ndarray]:
    """Two windows: the first with ``changes`` applied, the second the firing example."""
    return {k: np.array([changes.get(k, v), v]) for k, v in FIRING.items()}


def test_fires_on_a_recurring_unexplained_sag_and_reports_its_evidence() -> None:
    res = recurring_sag(facts(), TH)
    assert res.fired.tolist() == [True, True]
    assert res.evidence["unmetered_a"].tolist() == [12.0, 12.0]
    assert res.evidence["step_v"].tolist() == [-2.0, -2.0]
    assert res.evidence["earlier_onsets"].tolist() == [0.9, 0.9]


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"warm": 0.0}, "warm-up"),
        ({"vstep_onset": 0.0}, "not an onset (the sag is old news)"),
        ({"vstep_prior_n": 0.0}, "first time at this hour: a neighbour, not a routine"),
        ({"vstep_prior_n": 0.3}, "earlier cycle too long ago"),
        ({"vstep_v": -0.5}, "a step smaller than the meter's voltage resolution allows"),
        ({"vstep_z": -2.5}, "within this meter's usual change at that hour"),
        ({"vstep_amps": 2.0}, "too little current through the service impedance"),
        ({"vstep_v": 2.0, "vstep_z": 6.0}, "a step up is a load switching off"),
    ],
)
def test_each_condition_is_needed(change: dict[str, float], why: str) -> None:
    assert recurring_sag(facts(**change), TH).fired.tolist() == [False, True], why


def test_is_a_physical_cue_with_a_stable_id() -> None:
    cue = CUE_BY_NAME["recurring_sag"]
    assert cue.id == "R11"
    assert cue.physical
    assert TH["confidence"] > 0


@given(
    onset=st.sampled_from([0.0, 1.0]),
    step=st.floats(-10, 10),
    z=st.floats(-20, 20),
    amps=st.floats(0, 60),
    prior=st.floats(0, 5),
)
def test_fired_implies_every_threshold_holds(
    onset: float, step: float, z: float, amps: float, prior: float
) -> None:
    f = {
        "warm": np.array([1.0]),
        "vstep_onset": np.array([onset]),
        "vstep_v": np.array([step]),
        "vstep_z": np.array([z]),
        "vstep_amps": np.array([amps]),
        "vstep_prior_n": np.array([prior]),
    }
    fired = bool(recurring_sag(f, TH).fired[0])
    expected = (
        onset > 0.5
        and step <= -TH["min_step_v"]
        and z <= -TH["min_z"]
        and amps >= TH["min_amps_a"]
        and prior >= TH["min_prior_onsets_n"]
    )
    assert fired == expected
