"""R15's peer reference (detectors/peer_voltage.py) on literal hourly voltages."""

from __future__ import annotations

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from detectors.features import finite_median
from detectors.peer_voltage import night_dips
from rules.thresholds import load_thresholds

T = {"min_peers_n": 4.0, "stretch_h": 3.0, "shared_dip_v": 1.2, "max_dipping_n": 1.0}


def gateway(meters: int = 8, hours: int = 22, seed: int = 0) -> np.ndarray:
    """Hourly mean corrected voltage of a quiet gateway: a shared daily swing, each meter's
    own calibration offset and 0.1 V of hourly noise."""
    rng = np.random.default_rng(seed)
    swing = 3.0 * np.sin(np.arange(hours) / 4.0)
    offsets = rng.uniform(-4.0, 4.0, meters)[:, None]
    return 231.0 + swing[None, :] + offsets + rng.normal(0.0, 0.1, (meters, hours))


def test_a_meter_below_its_peers_for_hours_is_found_with_depth_and_start() -> None:
    u = gateway()
    u[3, 10:16] -= 2.0  # a 6-hour load behind meter 3's service drop
    dip, peers, at = night_dips(u, T)
    assert dip[3] < -1.6 and 10 <= at[3] <= 13
    others = np.delete(dip, 3)
    assert np.all(others > -0.6), dip
    assert peers[3] == 8


def test_a_sag_shared_by_several_meters_is_the_transformers() -> None:
    u = gateway()
    u[:3, 10:16] -= 2.0  # three meters: a transformer's night load, not one hook
    dip, _, _ = night_dips(u, T)
    assert np.all(dip > -T["shared_dip_v"]), dip  # only the ramps at its edges are left
    dip_lenient, _, _ = night_dips(u, {**T, "max_dipping_n": 3.0})
    assert np.all(dip_lenient[:3] < -1.2), dip_lenient
    # a neighbour 1 V down over the same hours already makes it shared at a 0.7 V line
    u = gateway()
    u[3, 10:16] -= 2.0
    u[4, 10:16] -= 1.0
    u[5, 10:16] -= 1.0
    alone, _, _ = night_dips(u, T)
    shared, _, _ = night_dips(u, {**T, "shared_dip_v": 0.7})
    assert alone[3] < -1.6 and shared[3] > -1.2, (alone, shared)


def test_a_missing_hour_breaks_a_stretch_and_too_few_peers_judge_nothing() -> None:
    u = gateway()
    u[3, 10:14] -= 2.0
    u[3, 11] = np.nan  # comms gap: no 3 consecutive hours of evidence remain
    dip, _, at = night_dips(u, T)
    assert dip[3] > -0.6 and at[3] != 10
    few = gateway(meters=3)
    few[0, 10:16] -= 2.0
    dip, peers, at = night_dips(few, T)
    assert np.isnan(dip).all() and np.isnan(peers).all() and (at == -1).all()


def test_a_meter_without_any_judgeable_stretch_gets_nan() -> None:
    u = gateway()
    u[5, ::2] = np.nan  # every other hour missing
    dip, peers, at = night_dips(u, T)
    assert np.isnan(dip[5]) and np.isnan(peers[5]) and at[5] == -1
    assert np.isfinite(np.delete(dip, 5)).all()


def test_input_is_not_mutated_and_thresholds_file_has_the_keys() -> None:
    u = gateway()
    before = u.copy()
    night_dips(u, T)
    np.testing.assert_array_equal(u, before)
    section = load_thresholds().section("peer_voltage_dip")
    night_dips(u, section)  # the shipped section has every key the function reads


@settings(max_examples=40, deadline=None)
@given(shift=st.floats(-20.0, 20.0), seed=st.integers(0, 1000))
@example(shift=0.0, seed=684)
def test_a_shift_of_the_whole_gateway_changes_no_dip(shift: float, seed: int) -> None:
    u = gateway(seed=seed)
    u[2, 9:14] -= 2.5
    dip, peers, at = night_dips(u, T)
    # a tap change, the feeder's evening sag: every meter of the gateway alike
    dip2, peers2, at2 = night_dips(u + shift, T)
    np.testing.assert_allclose(dip2, dip, atol=1e-9)
    np.testing.assert_array_equal(at2, at)
    np.testing.assert_array_equal(peers2, peers)
    # the 2.5 V stretch is found; its dip is the shallowest hour less the offset's error,
    # with 0.1 V of hourly noise (seed 684: -1.95 V; the deepest of seeds 0-1000, -2.64 V)
    assert dip[2] < -1.75


def test_finite_median_matches_numpy_on_finite_columns() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(7, 5))
    med, n = finite_median(x, axis=0)
    np.testing.assert_allclose(med, np.median(x, axis=0))
    assert n.tolist() == [7] * 5
    x[:, 2] = np.nan
    x[0, 1] = np.nan
    med, n = finite_median(x, axis=0)
    assert np.isnan(med[2]) and n[2] == 0
    np.testing.assert_allclose(med[1], np.median(x[1:, 1]))
    med_rows, _ = finite_median(x, axis=1)
    np.testing.assert_allclose(med_rows[1], np.nanmedian(x[1]))
