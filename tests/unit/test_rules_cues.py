"""Theft cues, thresholds, severity and events on literal values."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules import cues as C
from rules.events import EventTracker, FlaggedWindow, event_id_for, iso_utc
from rules.severity import combine_confidence, severity_for, unbilled_kwh
from rules.thresholds import ThresholdError, load_thresholds, thresholds_from_mapping

TH = load_thresholds()
EVENT_SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "stream" / "schemas" / "event.v1.json").read_text()
)


def facts(**values: float) -> dict[str, np.ndarray]:
    """Facts of two windows: the given values, and a neutral window."""
    base = {
        "warm": 1.0,
        "n": 2.0,
        "mean_p_w": 500.0,
        "max_p_w": 800.0,
        "mean_v_v": 230.0,
        "mean_i_a": 2.2,
        "expected_p_w": 500.0,
        "expected_daily_p_w": 450.0,
        "flat_run_n": 0.0,
        "flat_run_s": 0.0,
        "flat_max_s": 0.0,
        "last_abs_p_w": 500.0,
        "last_i_a": 2.2,
        "zero_run_s": 0.0,
        "zero_expected_w": 500.0,
        "resid_run_n": 0.0,
        "resid_run_s": 0.0,
        "resid_rel": 0.0,
        "vipf_mean_w": 500.0,
        "neg_run_s": 0.0,
        "export_share": 0.0,
        "export_physics": 0.0,
        "export_impedance_ohm": 0.0,
        "export_age_s": float("inf"),
        "pf_low_run_s": 0.0,
        "pf_low_share": 0.0,
        "pf_low_usual": 0.0,
        "pf_mean": 0.95,
        "pf_baseline": 0.95,
        "slow_ratio": 1.0,
        "drop_run_s": 0.0,
        "slow_expected_w": 500.0,
        "trend_slope_per_day": 0.0,
        "trend_ratio": 1.0,
        "trend_days_n": 10.0,
        "sag_v": 0.0,
        "sag_run_s": 0.0,
        "sag_step_v": 0.0,
        "sag_amps": 0.0,
        "impedance_ohm": 0.15,
        "impedance_ratio": 1.0,
        "impedance_z": 0.0,
        "impedance_run_s": 0.0,
        "slow_p_w": 300.0,
        "standby_floor_w": 120.0,
        "sub_floor_run_s": 0.0,
        "vstep_v": 0.0,
        "vstep_z": 0.0,
        "vstep_amps": 0.0,
        "vstep_onset": 0.0,
        "vstep_prior_n": 0.0,
        "history_s": 864_000.0,
        "days_old_n": 8.0,
        "days_old_mean_w": 450.0,
        "days_old_floor_w": 120.0,
        "days_level_ratio": 1.0,
        "days_floor_ratio": 1.0,
        "today_floor_ratio": 1.0,
        "days_impedance_ratio": 1.0,
        "days_peer_referenced": 0.0,
        "days_peer_impedance_ratio": 1.0,
        "ramp_old_days_n": 0.0,
        "ramp_today_ratio": 1.0,
        "ramp_yesterday_ratio": 1.0,
        "ramp_today_di2_a2": 0.0,
        "stuck_run_n": 0.0,
        "stuck_run_s": 0.0,
        "stuck_max_s": 0.0,
        "peer_judged": 0.0,
        "peer_dip_v": 0.0,
        "peer_nights_n": 0.0,
        "peer_shallow_nights_n": 0.0,
        "peer_unmetered_a": 0.0,
        "peer_n": 30.0,
        "peer_pair_v": 0.0,
        "hook_repeated": 0.0,
        "hook_repeats_n": 0.0,
        "hook_step_v": 0.0,
        "hook_duration_s": 0.0,
        "hook_unmetered_a": float("nan"),
    }
    out = {k: np.array([v, v]) for k, v in base.items()}
    for k, v in values.items():
        out[k] = np.array([v, base[k]])
    return out


FIRING = {
    "meter_freeze": dict(flat_run_n=6.0, flat_run_s=1800.0),
    "bypass_zero": dict(zero_run_s=1800.0, zero_expected_w=600.0, mean_p_w=0.0),
    "partial_bypass": dict(
        slow_ratio=0.4, drop_run_s=20_000.0, impedance_ratio=2.0, impedance_z=4.0
    ),
    "register_tamper": dict(resid_run_n=5.0, resid_run_s=1500.0, resid_rel=0.5),
    "reverse_flow": dict(neg_run_s=1800.0, mean_p_w=-450.0, export_physics=1.0),
    "pf_abnormal": dict(pf_low_run_s=3600.0, pf_low_share=0.7, pf_mean=0.4),
    "sharp_spike": dict(max_p_w=9000.0, expected_p_w=500.0),
    "gradual_decline": dict(trend_slope_per_day=-0.08, trend_ratio=0.5, impedance_ratio=1.4),
    "unmetered_load": dict(sag_v=2.5, sag_run_s=7200.0, sag_step_v=2.6, sag_amps=12.0),
    "impedance_rise": dict(impedance_ratio=2.2, impedance_z=4.0, impedance_run_s=100_000.0),
    "below_standby": dict(slow_p_w=40.0, sub_floor_run_s=9000.0),
    "recurring_sag": dict(
        vstep_onset=1.0, vstep_v=-2.0, vstep_z=-6.0, vstep_amps=12.0, vstep_prior_n=1.0
    ),
    "slow_bypass": dict(
        days_level_ratio=0.6, days_floor_ratio=0.6, today_floor_ratio=0.55, days_impedance_ratio=1.6
    ),
    "stuck_registers": dict(stuck_run_n=120.0, stuck_run_s=7200.0, flat_run_s=300.0),
    "peer_voltage_dip": dict(
        peer_judged=1.0, peer_dip_v=-2.0, peer_nights_n=2.0, peer_unmetered_a=13.0
    ),
    "timer_sag": dict(hook_repeated=1.0, hook_repeats_n=1.0, hook_step_v=0.9, hook_unmetered_a=9.0),
}


def test_every_cue_has_a_stable_id_a_threshold_section_and_a_firing_example() -> None:
    ids = [c.id for c in C.CUES]
    assert len(set(ids)) == len(ids)
    assert set(FIRING) == {c.name for c in C.CUES}
    for cue in C.CUES:
        assert "confidence" in TH.section(cue.name)
        assert cue.fn.__doc__ and ">>>" in cue.fn.__doc__


@pytest.mark.parametrize("name", sorted(FIRING))
def test_cue_fires_on_its_example_and_not_on_a_normal_window(name: str) -> None:
    cue = C.CUE_BY_NAME[name]
    res = cue.fn(facts(**FIRING[name]), TH.section(name))
    assert res.fired.tolist() == [True, False]
    assert res.evidence and all(v.shape == (2,) for v in res.evidence.values())


@pytest.mark.parametrize("name", sorted(FIRING))
def test_no_cue_fires_during_warm_up(name: str) -> None:
    f = facts(**FIRING[name])
    f["warm"] = np.array([0.0, 0.0])
    assert not C.CUE_BY_NAME[name].fn(f, TH.section(name)).fired.any()


def test_freeze_needs_duration_not_just_repeats() -> None:
    # 3 identical readings 1 s apart (fast cadence, quiet load): not a freeze yet
    f = facts(flat_run_n=3.0, flat_run_s=2.0)
    assert not C.meter_freeze(f, TH.section("meter_freeze")).fired.any()


def test_an_hour_of_repeats_at_zero_load_is_not_a_freeze() -> None:
    f = facts(flat_run_n=10.0, flat_run_s=3600.0, last_abs_p_w=0.0, last_i_a=0.0)
    assert not C.meter_freeze(f, TH.section("meter_freeze")).fired.any()


def test_bypass_zero_needs_load_expected_by_the_meters_own_baseline() -> None:
    # an idle circuit (baseline 10 W) at zero for hours is normal
    f = facts(zero_run_s=20_000.0, zero_expected_w=10.0)
    assert not C.bypass_zero(f, TH.section("bypass_zero")).fired.any()


def test_partial_bypass_needs_impedance_evidence_not_just_a_drop() -> None:
    # a vacant home: power down for a day, impedance unchanged
    f = facts(slow_ratio=0.3, drop_run_s=86_400.0, impedance_ratio=1.0, impedance_z=0.0)
    assert not C.partial_bypass(f, TH.section("partial_bypass")).fired.any()


def test_partial_bypass_waits_until_the_meter_history_spans_the_long_impedance_memory() -> None:
    th = TH.section("partial_bypass")
    young = facts(**FIRING["partial_bypass"], history_s=th["min_history_s"] - 60.0)
    assert C.partial_bypass(young, th).fired.tolist() == [False, False]
    of_age = facts(**FIRING["partial_bypass"], history_s=th["min_history_s"])
    assert C.partial_bypass(of_age, th).fired.tolist() == [True, False]
    # the wait is the long memory of the impedance fit the short one is compared with
    assert th["min_history_s"] == TH.value("baseline", "impedance_long_memory_s")


def test_reverse_flow_is_allowed_for_a_meter_that_exports() -> None:
    f = facts(neg_run_s=7200.0, mean_p_w=-900.0, export_share=0.3)
    assert not C.reverse_flow(f, TH.section("reverse_flow")).fired.any()


def test_reverse_flow_waits_for_the_voltage_to_tell_a_load_from_a_source() -> None:
    # the wait of a fleet with rooftop PV (the default, 600 s, is the short run itself)
    th = {**TH.section("reverse_flow"), "undecided_duration_s": 64800.0}
    quick, long = th["min_duration_s"] + 60.0, th["undecided_duration_s"] + 60.0
    # a load's physics (V falls as the export current rises): the short run is enough
    assert C.reverse_flow(facts(neg_run_s=quick, mean_p_w=-450.0, export_physics=1.0), th).fired[0]
    # not known yet: only a run longer than a day's solar export
    assert not C.reverse_flow(facts(neg_run_s=quick, mean_p_w=-450.0), th).fired[0]
    assert C.reverse_flow(facts(neg_run_s=long, mean_p_w=-450.0), th).fired[0]
    # a source's physics (V rises as it exports more): never, however long
    source = facts(neg_run_s=10 * long, mean_p_w=-450.0, export_physics=-1.0)
    assert not C.reverse_flow(source, th).fired.any()


@pytest.mark.parametrize("name", ["bypass_zero", "partial_bypass", "below_standby", "slow_bypass"])
def test_a_premises_that_generates_is_not_accused_of_low_or_zero_power(name: str) -> None:
    th = TH.section(name)
    firing = FIRING[name]
    assert C.CUE_BY_NAME[name].fn(facts(**firing), th).fired[0]
    # it exported an hour ago (a new PV install, before its voltage has told)
    recent = facts(**firing, export_age_s=3600.0)
    assert not C.CUE_BY_NAME[name].fn(recent, th).fired.any()
    # its export raised its voltage: a source of its own
    source = facts(**firing, export_physics=-1.0)
    assert not C.CUE_BY_NAME[name].fn(source, th).fired.any()
    # a day after the last export, with no source seen, the cue is back
    later = facts(**firing, export_age_s=th["min_export_age_s"] + 1.0)
    assert C.CUE_BY_NAME[name].fn(later, th).fired[0]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=3, max_size=3))
def test_cues_never_raise_on_odd_values(values: list[float]) -> None:
    base = facts()
    odd = {k: np.array(values) for k in base}
    with np.errstate(all="ignore"):
        out = C.evaluate_cues(odd, TH.sections)
    for res in out.values():
        assert res.fired.dtype == np.bool_ and res.fired.shape == (3,)


def test_thresholds_reject_non_numbers_and_missing_keys(tmp_path: Path) -> None:
    bad = tmp_path / "t.toml"
    bad.write_text('[meter_freeze]\nmin_readings_n = "three"\n')
    with pytest.raises(ThresholdError):
        load_thresholds(bad)
    with pytest.raises(ThresholdError):
        load_thresholds(tmp_path / "missing.toml")
    th = thresholds_from_mapping({"a": {"b_s": 1.0}})
    with pytest.raises(ThresholdError):
        th.value("a", "c")


def test_threshold_keys_carry_units() -> None:
    units = (
        "_w",
        "_v",
        "_a",
        "_a2",
        "_s",
        "_kwh",
        "_n",
        "_ratio",
        "_share",
        "_pf",
        "_per_day",
        "_va",
        "_h",
        "_z",
        "_sigmas",
        "_of_daily",
        "_of_hour",
        "confidence",
        "_ohm",
        "_days",
        "_score",
        "_nats",
    )
    for section, values in TH.sections.items():
        for key in values:
            assert key.endswith(units) or key in ("max_pf",), f"[{section}] {key} has no unit"


def test_severity_confidence_and_value_at_risk() -> None:
    bands = TH.section("severity")
    assert combine_confidence([0.5, 0.5]) == pytest.approx(0.75)
    assert unbilled_kwh(1000.0, 200.0, 1800.0) == pytest.approx(0.4)
    assert severity_for(True, 0.9, 40.0, 90.0, bands) == "critical"
    assert severity_for(True, 0.9, 2.0, 90.0, bands) == "medium"
    assert severity_for(False, 0.0, 40.0, 50.0, bands) == "info"


def _window(end_ms: int, theft: bool = True, kwh: float = 0.1) -> FlaggedWindow:
    cues = {"bypass_zero": ("R02", 0.9, {"zero_for_s": 1800.0})} if theft else {}
    return FlaggedWindow(
        "MTR-1", "GW-1", end_ms - 600_000, end_ms, 90.0, theft, cues, kwh, (("zero_v_share", 0.8),)
    )


def test_event_lifecycle_ids_versions_and_alerts() -> None:
    t0 = 1_767_571_200_000
    tracker = EventTracker(TH.sections, "test-1")
    tracker.flag(_window(t0))
    updates, alerts = tracker.drain()
    assert len(updates) == 1 and len(alerts) == 1
    ev = updates[0]
    assert ev.event_id == event_id_for("MTR-1", t0 - 600_000)
    assert ev.version == 1 and ev.status == "open" and ev.detected_at_ms == t0
    jsonschema.validate(ev.to_json(), EVENT_SCHEMA)
    # more windows, little risk growth: an update, no second alert
    tracker.flag(_window(t0 + 60_000, kwh=0.01))
    updates, alerts = tracker.drain()
    assert [u.version for u in updates] == [2] and alerts == []
    # risk grows a lot: re-alert
    tracker.flag(_window(t0 + 120_000, kwh=5.0))
    updates, alerts = tracker.drain()
    assert len(alerts) == 1 and alerts[0].severity in ("medium", "high")
    # quiet for longer than the quiet period: closes, and the alert resolves
    tracker.advance("MTR-1", t0 + 120_000 + int(TH.value("events", "quiet_period_s") * 1000) + 1)
    updates, alerts = tracker.drain()
    assert updates[0].status == "closed" and len(alerts) == 1
    assert updates[0].event_id == ev.event_id
    doc = updates[0].to_json()
    assert doc["start"] == iso_utc(t0 - 600_000) and doc["end"] == iso_utc(t0 + 120_000)
    jsonschema.validate(doc, EVENT_SCHEMA)


def test_theft_cue_on_a_plain_anomaly_opens_a_separate_theft_event() -> None:
    t0 = 1_767_571_200_000
    tracker = EventTracker(TH.sections, "test-1")
    tracker.flag(_window(t0, theft=False))
    tracker.flag(_window(t0 + 60_000, theft=True))
    updates, alerts = tracker.drain()
    assert [(u.theft_likely, u.status) for u in updates] == [(False, "closed"), (True, "open")]
    assert alerts[0].detected_at_ms == t0 + 60_000


@pytest.mark.parametrize(
    "module",
    [
        "rules.cues",
        "rules.severity",
        "rules.events",
        "detectors.features",
        "detectors.peer_voltage",
        "detectors.peer_impedance",
        "detectors.timer_hook",
        "stream.windows",
        "stream.evaluation",
        "stream.engine",
    ],
)
def test_docstring_examples_hold(module: str) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_stuck_registers_needs_load_length_history_and_a_moving_voltage() -> None:
    th = TH.section("stuck_registers")
    firing = dict(stuck_run_n=120.0, stuck_run_s=7200.0, flat_run_s=300.0, stuck_max_s=600.0)
    assert C.stuck_registers(facts(**firing), th).fired.tolist() == [True, False]
    for change in (
        dict(flat_run_s=7200.0),  # every channel repeats: the voltage did not move (R01's)
        dict(flat_run_s=7140.0),  # ... but for the reading before a freeze's onset
        dict(flat_run_s=3700.0),  # the voltage stood still for over half of the run
        dict(stuck_max_s=3000.0),  # this meter held 50 min before: 2 h is not 3x that
        dict(stuck_run_s=7000.0),  # under two hours
        dict(stuck_run_n=5.0),  # too few readings (a coarse cadence)
        dict(last_abs_p_w=0.0, last_i_a=0.0),  # no load: an idle circuit repeats zeros
    ):
        fired = C.stuck_registers(facts(**{**firing, **change}), th).fired
        assert not fired.any(), change


def test_timer_sag_needs_a_repeated_pair_of_real_size_and_current() -> None:
    th = TH.section("timer_sag")
    firing = dict(hook_repeated=1.0, hook_repeats_n=1.0, hook_step_v=0.9, hook_unmetered_a=9.0)
    assert C.timer_sag(facts(**firing), th).fired.tolist() == [True, False]
    for change in (
        dict(hook_repeated=0.0),  # judged only when a pair closes
        dict(hook_repeats_n=0.0),  # one pair is chance, not a timer
        dict(hook_step_v=0.45),  # below the half volt a clean meter shows weekly
        dict(hook_unmetered_a=2.0),  # 2 A through the drop is no hooked load worth a visit
        dict(warm=0.0),
    ):
        fired = C.timer_sag(facts(**{**firing, **change}), th).fired
        assert not fired.any(), change
    # an unknown service impedance leaves the current unknown: the step decides
    assert C.timer_sag(facts(**{**firing, "hook_unmetered_a": float("nan")}), th).fired[0]


def test_peer_voltage_dip_needs_a_judged_deep_recurring_dip_with_peers() -> None:
    th = TH.section("peer_voltage_dip")
    firing = dict(peer_judged=1.0, peer_dip_v=-2.0, peer_nights_n=2.0, peer_unmetered_a=13.0)
    assert C.peer_voltage_dip(facts(**firing), th).fired.tolist() == [True, False]
    for change in (
        dict(peer_judged=0.0),  # judged once a day, at the meter's first window of the next
        dict(peer_dip_v=-1.0),  # 1 V below the peers: within a household's hourly spread
        dict(peer_dip_v=-1.4, peer_nights_n=1.0),  # one night of 1.4 V: a guest's heater
        dict(peer_unmetered_a=2.0),  # a dip that implies 2 A is no hooked load
        dict(peer_n=5.0),  # a reference of five meters is not a reference
        dict(warm=0.0),
    ):
        fired = C.peer_voltage_dip(facts(**{**firing, **change}), th).fired
        assert not fired.any(), change
    # one night is enough only for a dip deeper than clean meters show (1.5 V)
    one = dict(peer_judged=1.0, peer_nights_n=1.0, peer_unmetered_a=10.0)
    assert C.peer_voltage_dip(facts(**one, peer_dip_v=-1.6), th).fired[0]
    assert not C.peer_voltage_dip(facts(**one, peer_dip_v=-1.45), th).fired[0]
    # one shallower night is enough where R16 saw the load switch on and off within it
    paired = dict(peer_judged=1.0, peer_nights_n=1.0, peer_unmetered_a=7.0, peer_dip_v=-0.8)
    assert C.peer_voltage_dip(facts(**paired, peer_pair_v=0.6), th).fired[0]
    assert not C.peer_voltage_dip(facts(**paired, peer_pair_v=0.45), th).fired[0]
    assert not C.peer_voltage_dip(facts(**paired), th).fired[0]  # no pair in the stretch
    assert not C.peer_voltage_dip(
        facts(**{**paired, "peer_dip_v": -0.6}, peer_pair_v=0.9), th
    ).fired[0]
    # a shallow dip needs more nights
    shallow = dict(peer_judged=1.0, peer_dip_v=-0.8, peer_nights_n=0.0, peer_unmetered_a=6.0)
    assert C.peer_voltage_dip(facts(**shallow, peer_shallow_nights_n=4.0), th).fired[0]
    assert not C.peer_voltage_dip(facts(**shallow, peer_shallow_nights_n=3.0), th).fired[0]
    assert not C.peer_voltage_dip(
        facts(**{**shallow, "peer_dip_v": -0.6}, peer_shallow_nights_n=6.0), th
    ).fired[0]
