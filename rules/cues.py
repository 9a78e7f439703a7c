"""Theft cues: small pure functions, one per cue, each with a stable id.

Every cue takes the facts of K windows (a mapping of name -> (K,) float64 array, built by
the engine from the window, the meter's own baseline and its run counters) and one
section of the thresholds, and returns a :class:`CueResult`: which windows it fires on
and the evidence numbers behind it. Cues are vectorised over windows and never look at
other meters, at labels or at the online Half-Space Trees (partition invariance: an alert
must be explainable by the meter's own readings and the rules).

``physical`` cues are evidence of theft and may make an event ``theft_likely``; the
others only describe an anomaly: a sharp spike, and a multi-day decline (on simulator
training fleets it fired on vacancies and habit changes as often as on slow bypasses, so
it ranks and explains, it does not accuse).

A physical cue with a ``partner`` accuses only together with that partner (see
:func:`theft_windows`). The two voltage-only cues are such a pair: a sustained sag without
current (R09) and a sag recurring at the same time of day (R11). Either alone also fires
when the whole transformer or feeder sags (a neighbour's heater or EV on a timer, a tap
change): on simulator training seeds 1-6, 31 of 44 false alarms were R09 or R11 alone, all
at the same minute on several meters of one gateway, with evidence numbers no different
from the pumps'. A meter sees only its own voltage, so it cannot tell a neighbour's load
from its own hook by one sign; it can by both: the sag holds for an hour *and* repeats the
earlier nights' cycle.

Facts used (units in the name where there is one):

- ``warm``: 1 when the meter is past its warm-up and its baseline is trusted
- ``n``: readings in the window; ``mean_p_w``, ``max_p_w``, ``mean_v_v``, ``mean_i_a``
- ``expected_p_w``: baseline power for that hour; ``expected_daily_p_w``: daily mean
- ``flat_run_n``/``flat_run_s``/``last_abs_p_w``/``last_i_a``: the run of readings with
  every channel identical to the previous one
- ``zero_run_s``/``zero_expected_w``: the run of zero power with voltage present and the
  baseline expected over it
- ``resid_run_n``/``resid_run_s``/``resid_rel``/``vipf_mean_w``: the run of readings
  (with real current) failing P = V*I*PF
- ``neg_run_s``/``export_share``: the run of negative power; the meter's export history
- ``pf_low_run_s``/``pf_mean``/``pf_baseline``: the run of abnormally low PF
- ``slow_ratio``/``drop_run_s``/``slow_expected_w``: slow level over slow baseline
- ``trend_slope_per_day``/``trend_ratio``/``trend_days_n``
- ``sag_v``/``sag_run_s``/``sag_steps_n``: unexplained voltage sag and its run
- ``slow_p_w``/``standby_floor_w``/``sub_floor_run_s``: the newest pane's power, the
  second lowest of the recent daily minimum powers, and the (decayed) time spent below a
  share of it
- ``days_level_ratio``/``days_floor_ratio``/``days_impedance_ratio``: the two newest
  completed days' mean power, lowest pane power and pooled dV/dI fit over those of the
  older completed days (median level and floor, pooled fit); ``days_old_n`` older days
  known, ``days_old_mean_w``/``days_old_floor_w`` their median level and floor;
  ``today_floor_ratio``: today's lowest pane power so far over that floor
- ``vstep_v``/``vstep_z``/``vstep_amps``: half-hour step of the corrected voltage V + Z*I
  against the meter's usual step at that hour (V, z-score, implied unmetered amperes);
  ``vstep_onset``: 1 at a sag onset; ``vstep_prior_n``: decayed count of earlier onsets
  within an hour of the same time of day
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Facts = Mapping[str, FloatArray]
Section = Mapping[str, float]


@dataclass(frozen=True)
class CueResult:
    fired: BoolArray
    evidence: dict[str, FloatArray]


@dataclass(frozen=True)
class Cue:
    id: str
    name: str
    physical: bool
    fn: Callable[[Facts, Section], CueResult]
    # id of the cue that must also fire (within ``corroboration.partner_window_s``) before
    # this one may make a window theft; None: it accuses alone
    partner: str | None = None


def _warm(f: Facts) -> BoolArray:
    return np.asarray(f["warm"], dtype=np.float64) > 0.5


def _no_own_source(f: Facts, t: Section) -> BoolArray:
    """The premises shows no source of its own: it has not exported for ``min_export_age_s``
    and its export pairs' voltage never read as a source's (``export_physics`` -1, see R05).
    Rooftop PV nets the load down, to zero or below the standby floor, on any day with
    sun, so the cues that read a low level (R02, R03, R12, R13) stand down on such a
    premises; the voltage cues (R09 with R11, R10, R15) still judge it."""
    return np.asarray(
        (f["export_physics"] > -0.5) & (f["export_age_s"] >= t["min_export_age_s"]),
        dtype=np.bool_,
    )


def meter_freeze(f: Facts, t: Section) -> CueResult:
    """R01: every channel repeats the previous reading while readings keep arriving.

    A comms gap sends nothing, so it can never look like this (a reading after a gap
    resets the run). A meter with load freezes in minutes. A meter frozen while idling
    (0 W, 0 A) looks like an idle circuit whose voltage register happens not to move, so
    it fires only when the repeat, with voltage present, lasts hours and far longer than
    any repeat this meter has shown before (a real supply voltage wanders; a coarse
    register on a stiff supply repeats longer, and the meter's own history says so).
    Value at risk is nil until load comes on, which the frozen register hides.

    >>> r = meter_freeze({"warm": np.array([1.0, 1.0, 1.0]),
    ...     "flat_run_n": np.array([4.0, 400.0, 400.0]),
    ...     "flat_run_s": np.array([1200.0, 24000.0, 24000.0]),
    ...     "last_abs_p_w": np.array([350.0, 0.0, 0.0]), "last_i_a": np.array([1.6, 0.0, 0.0]),
    ...     "mean_v_v": np.array([230.0, 119.0, 119.0]),
    ...     "flat_max_s": np.array([60.0, 540.0, 7200.0])},
    ...     {"min_readings_n": 3, "min_duration_s": 900, "min_abs_p_w": 5,
    ...      "idle_min_duration_s": 21600, "idle_history_ratio": 4.0,
    ...      "idle_min_readings_n": 12, "idle_min_v_v": 50})
    >>> r.fired.tolist(), float(r.evidence["frozen_p_w"][0])
    ([True, True, False], 350.0)
    """
    repeats = (
        _warm(f)
        & (f["flat_run_n"] >= t["min_readings_n"])
        & (f["flat_run_s"] >= t["min_duration_s"])
    )
    loaded = (f["last_abs_p_w"] > t["min_abs_p_w"]) | (f["last_i_a"] > 0.0)
    idle_frozen = (
        (f["flat_run_n"] >= t["idle_min_readings_n"])
        & (f["mean_v_v"] >= t["idle_min_v_v"])
        & (
            f["flat_run_s"]
            >= np.maximum(t["idle_min_duration_s"], t["idle_history_ratio"] * f["flat_max_s"])
        )
    )
    fired = repeats & (loaded | idle_frozen)
    return CueResult(
        fired,
        {
            "repeated_readings": f["flat_run_n"],
            "frozen_for_s": f["flat_run_s"],
            "frozen_p_w": f["last_abs_p_w"],
            "longest_earlier_repeat_s": f["flat_max_s"],
        },
    )


def bypass_zero(f: Facts, t: Section) -> CueResult:
    """R02: power at zero with voltage present, where the meter's own baseline expects load.
    Not on a premises with a source of its own (rooftop PV nets the load to zero).

    >>> r = bypass_zero({"warm": np.ones(4), "zero_run_s": np.full(4, 1800.0),
    ...     "zero_expected_w": np.array([450.0, 20.0, 450.0, 450.0]),
    ...     "export_physics": np.array([0.0, 0.0, -1.0, 0.0]),
    ...     "export_age_s": np.array([np.inf, np.inf, np.inf, 3600.0])},
    ...     {"min_duration_s": 1200, "min_expected_w": 120, "min_export_age_s": 86400})
    >>> r.fired.tolist()
    [True, False, False, False]
    """
    fired = (
        _warm(f)
        & (f["zero_run_s"] >= t["min_duration_s"])
        & (f["zero_expected_w"] >= t["min_expected_w"])
        & _no_own_source(f, t)
    )
    return CueResult(fired, {"zero_for_s": f["zero_run_s"], "expected_w": f["zero_expected_w"]})


def partial_bypass(f: Facts, t: Section) -> CueResult:
    """R03: a sustained drop of the slow power level against the meter's own baseline,
    while the voltage keeps reacting to more current than the meter sees: the apparent
    service impedance (dV/dI of the meter's own readings) rose, because the bypassed
    current still flows through the service cable. A vacant home or a changed habit
    lowers the power but not the impedance.

    Not on a premises with a source of its own: its PV nets the level down, and the
    neighbours' PV, ramping with the same sun as its own, raises V as its net current
    falls, which reads as a higher impedance. Not before the meter's history
    (``history_s``) spans ``min_history_s``: both ratios divide by references (the
    long-memory impedance fit, the hour-of-day baseline) that still rest on its first days.

    >>> r = partial_bypass({"warm": np.array([1.0]), "slow_ratio": np.array([0.4]),
    ...     "drop_run_s": np.array([20000.0]), "slow_expected_w": np.array([600.0]),
    ...     "impedance_ratio": np.array([2.1]), "impedance_z": np.array([4.0]),
    ...     "history_s": np.array([500000.0]),
    ...     "export_physics": np.array([0.0]), "export_age_s": np.array([np.inf])},
    ...     {"max_ratio": 0.55, "min_duration_s": 14400, "min_expected_w": 150,
    ...      "min_remaining_ratio": 0.15, "min_impedance_ratio": 1.3, "min_impedance_z": 2.0,
    ...      "min_history_s": 345600, "min_export_age_s": 86400})
    >>> bool(r.fired[0])
    True
    """
    fired = (
        _warm(f)
        & (f["history_s"] >= t["min_history_s"])
        & (f["slow_ratio"] <= t["max_ratio"])
        & (f["slow_ratio"] >= t["min_remaining_ratio"])
        & (f["drop_run_s"] >= t["min_duration_s"])
        & (f["slow_expected_w"] >= t["min_expected_w"])
        & (f["impedance_ratio"] >= t["min_impedance_ratio"])
        & (f["impedance_z"] >= t["min_impedance_z"])
        & _no_own_source(f, t)
    )
    return CueResult(
        fired,
        {
            "level_ratio": f["slow_ratio"],
            "low_for_s": f["drop_run_s"],
            "expected_w": f["slow_expected_w"],
            "impedance_ratio": f["impedance_ratio"],
        },
    )


def register_tamper(f: Facts, t: Section) -> CueResult:
    """R04: reported P disagrees with V*I*PF beyond measurement resolution, sustained.

    >>> r = register_tamper({"warm": np.array([1.0]), "resid_run_n": np.array([5.0]),
    ...     "resid_run_s": np.array([1500.0]), "resid_rel": np.array([0.5]),
    ...     "vipf_mean_w": np.array([800.0]), "mean_p_w": np.array([400.0])},
    ...     {"min_readings_n": 3, "min_duration_s": 600})
    >>> bool(r.fired[0]), float(r.evidence["vipf_w"][0])
    (True, 800.0)
    """
    fired = (
        _warm(f)
        & (f["resid_run_n"] >= t["min_readings_n"])
        & (f["resid_run_s"] >= t["min_duration_s"])
    )
    return CueResult(
        fired,
        {
            "mismatch_readings": f["resid_run_n"],
            "mismatch_for_s": f["resid_run_s"],
            "residual_ratio": f["resid_rel"],
            "vipf_w": f["vipf_mean_w"],
            "reported_w": f["mean_p_w"],
        },
    )


def reverse_flow(f: Facts, t: Section) -> CueResult:
    """R05: sustained export on a meter that has never exported (a reversed meter), read
    against the voltage. The current register is a magnitude: a reversed meter's export is
    consumption read negative, and more of it lowers V like any load; a source (rooftop
    PV) raises V as it exports more. ``export_physics`` is what the export pairs' dV
    against dI says (``Engine._export_physics``): +1 a load (fires after
    ``min_duration_s``), -1 a source (never: a new PV install is not a reversed meter), 0
    not known yet (a voltage register too coarse, or too few steps: fires after
    ``undecided_duration_s``, 10 minutes for a fleet without generation, 18 hours, longer
    than a day's solar export, for a fleet with rooftop PV).

    >>> f = {"warm": np.ones(4), "neg_run_s": np.array([1800.0, 1800.0, 1800.0, 90000.0]),
    ...     "export_share": np.zeros(4), "mean_p_w": np.full(4, -420.0),
    ...     "export_physics": np.array([1.0, -1.0, 0.0, 0.0]),
    ...     "export_impedance_ohm": np.array([0.2, -0.2, 0.0, 0.0])}
    >>> r = reverse_flow(f, {"min_duration_s": 900, "undecided_duration_s": 64800,
    ...     "max_export_history_share": 0.02, "min_abs_p_w": 30})
    >>> r.fired.tolist()
    [True, False, False, True]
    """
    physics = f["export_physics"]
    long_enough = np.where(
        physics > 0.5,
        f["neg_run_s"] >= t["min_duration_s"],
        f["neg_run_s"] >= t["undecided_duration_s"],
    )
    fired = (
        _warm(f)
        & long_enough
        & (physics > -0.5)
        & (f["export_share"] <= t["max_export_history_share"])
        & (f["mean_p_w"] <= -t["min_abs_p_w"])
    )
    return CueResult(
        fired,
        {
            "negative_for_s": f["neg_run_s"],
            "mean_p_w": f["mean_p_w"],
            "export_history_share": f["export_share"],
            "export_impedance_ohm": f["export_impedance_ohm"],
        },
    )


def pf_abnormal(f: Facts, t: Section) -> CueResult:
    """R06: a large share of readings with real current show a PF far below normal
    (forged or forced), where this meter's usual share of such readings is small.

    >>> r = pf_abnormal({"warm": np.array([1.0]), "pf_low_run_s": np.array([3600.0]),
    ...     "pf_low_share": np.array([0.6]), "pf_low_usual": np.array([0.0]),
    ...     "pf_mean": np.array([0.45])},
    ...     {"min_low_share": 0.3, "min_rise_share": 0.25, "min_duration_s": 1800})
    >>> bool(r.fired[0])
    True
    """
    fired = (
        _warm(f)
        & (f["pf_low_run_s"] >= t["min_duration_s"])
        & (f["pf_low_share"] >= t["min_low_share"])
        & (f["pf_low_share"] - f["pf_low_usual"] >= t["min_rise_share"])
    )
    return CueResult(
        fired,
        {
            "low_pf_share": f["pf_low_share"],
            "usual_low_pf_share": f["pf_low_usual"],
            "pf": f["pf_mean"],
            "low_for_s": f["pf_low_run_s"],
        },
    )


def sharp_spike(f: Facts, t: Section) -> CueResult:
    """R07: a power peak far above that hour's usual. An anomaly, not theft on its own.

    >>> r = sharp_spike({"warm": np.array([1.0]), "max_p_w": np.array([9000.0]),
    ...     "expected_p_w": np.array([500.0])}, {"min_ratio": 6, "min_p_w": 3000})
    >>> bool(r.fired[0])
    True
    """
    expected = np.maximum(f["expected_p_w"], 60.0)
    ratio = f["max_p_w"] / expected
    fired = _warm(f) & (ratio >= t["min_ratio"]) & (f["max_p_w"] >= t["min_p_w"])
    return CueResult(fired, {"peak_w": f["max_p_w"], "peak_ratio": ratio})


def gradual_decline(f: Facts, t: Section) -> CueResult:
    """R08: the daily energy ratio (reported / baseline) has declined over several days,
    and the meter's voltage reacts to more current than it measures (a slow bypass).

    >>> r = gradual_decline({"warm": np.array([1.0]), "trend_slope_per_day": np.array([-0.08]),
    ...     "trend_ratio": np.array([0.5]), "trend_days_n": np.array([7.0]),
    ...     "expected_daily_p_w": np.array([500.0]), "impedance_ratio": np.array([1.4])},
    ...     {"max_slope_per_day": -0.04, "max_ratio": 0.7, "min_days_n": 5,
    ...      "min_expected_w": 150, "min_impedance_ratio": 1.15})
    >>> bool(r.fired[0])
    True
    """
    fired = (
        _warm(f)
        & (f["trend_slope_per_day"] <= t["max_slope_per_day"])
        & (f["trend_ratio"] <= t["max_ratio"])
        & (f["trend_days_n"] >= t["min_days_n"])
        & (f["expected_daily_p_w"] >= t["min_expected_w"])
        & (f["impedance_ratio"] >= t["min_impedance_ratio"])
    )
    return CueResult(
        fired,
        {
            "slope_per_day": f["trend_slope_per_day"],
            "impedance_ratio": f["impedance_ratio"],
            "ratio_now": f["trend_ratio"],
            "days": f["trend_days_n"],
        },
    )


def unmetered_load(f: Facts, t: Section) -> CueResult:
    """R09: the voltage stepped down without the meter's current changing, and stays down:
    a load drawing current through the service cable that the meter does not see (a hook
    before the meter). The step size over the meter's own service impedance gives the
    unmetered current.

    >>> r = unmetered_load({"warm": np.array([1.0]), "sag_v": np.array([2.4]),
    ...     "sag_run_s": np.array([5400.0]), "sag_step_v": np.array([2.6]),
    ...     "sag_amps": np.array([12.0])},
    ...     {"min_sag_v": 1.0, "min_duration_s": 3600, "min_amps_a": 5.0})
    >>> bool(r.fired[0])
    True
    """
    fired = (
        _warm(f)
        & (f["sag_v"] >= t["min_sag_v"])
        & (f["sag_run_s"] >= t["min_duration_s"])
        & (f["sag_amps"] >= t["min_amps_a"])
    )
    return CueResult(
        fired,
        {
            "sag_v": f["sag_v"],
            "step_v": f["sag_step_v"],
            "unmetered_a": f["sag_amps"],
            "sag_for_s": f["sag_run_s"],
        },
    )


def impedance_rise(f: Facts, t: Section) -> CueResult:
    """R10: for a long time the voltage has reacted to much more current than the meter
    sees (short-memory dV/dI fit well above the meter's own long-memory fit): current
    flows through the service cable around the meter. Catches slow bypasses that the
    drop-against-baseline cue misses because the baseline has followed them down.

    >>> r = impedance_rise({"warm": np.array([1.0]), "impedance_ratio": np.array([2.0]),
    ...     "impedance_z": np.array([3.5]), "impedance_run_s": np.array([90000.0]),
    ...     "impedance_ohm": np.array([0.15])},
    ...     {"min_ratio": 1.35, "min_z": 2.0, "min_duration_s": 43200})
    >>> bool(r.fired[0])
    True
    """
    fired = (
        _warm(f)
        & (f["impedance_ratio"] >= t["min_ratio"])
        & (f["impedance_z"] >= t["min_z"])
        & (f["impedance_run_s"] >= t["min_duration_s"])
    )
    return CueResult(
        fired,
        {
            "impedance_ratio": f["impedance_ratio"],
            "impedance_z": f["impedance_z"],
            "usual_impedance_ohm": f["impedance_ohm"],
            "for_s": f["impedance_run_s"],
        },
    )


def recurring_sag(f: Facts, t: Section) -> CueResult:
    """R11: the corrected voltage (V + Z*I, what the supply gives before the meter's own
    service drop) stepped down far beyond this meter's usual half-hour change at that hour,
    implying amperes the meter does not measure, and it did so at about the same time of
    day before: an unmetered load on a timer or a routine (a pump hooked before the meter,
    a bypassed appliance). One step is not enough (a neighbour's load shares the
    transformer); recurrence at the same hour on earlier days is.

    >>> r = recurring_sag({"warm": np.array([1.0, 1.0]), "vstep_onset": np.array([1.0, 1.0]),
    ...     "vstep_v": np.array([-2.2, -2.2]), "vstep_z": np.array([-5.5, -5.5]),
    ...     "vstep_amps": np.array([14.0, 14.0]), "vstep_prior_n": np.array([0.8, 0.0])},
    ...     {"min_z": 4.0, "min_step_v": 0.8, "min_amps_a": 4.0, "min_prior_onsets_n": 0.5})
    >>> r.fired.tolist()
    [True, False]
    """
    fired = (
        _warm(f)
        & (f["vstep_onset"] > 0.5)
        & (f["vstep_z"] <= -t["min_z"])
        & (f["vstep_v"] <= -t["min_step_v"])
        & (f["vstep_amps"] >= t["min_amps_a"])
        & (f["vstep_prior_n"] >= t["min_prior_onsets_n"])
    )
    return CueResult(
        fired,
        {
            "step_v": f["vstep_v"],
            "step_z": f["vstep_z"],
            "unmetered_a": f["vstep_amps"],
            "earlier_onsets": f["vstep_prior_n"],
        },
    )


def below_standby(f: Facts, t: Section) -> CueResult:
    """R12: for hours in all (counted with a memory of about a day) the meter reads well below
    the premises' own standby floor (the second lowest of its recent daily minimum powers:
    router, standby supplies, the idle fridge, which never all stop): part of the load, the
    standby included, no longer passes the meter. A vacant home still draws its standby.
    Not on a premises with a source of its own: rooftop PV nets the standby below the
    floor on any day with sun (a new install included, before its voltage has told).

    >>> r = below_standby({"warm": np.ones(4), "slow_p_w": np.full(4, 60.0),
    ...     "standby_floor_w": np.array([140.0, 70.0, 140.0, 140.0]),
    ...     "sub_floor_run_s": np.array([30000.0, 0.0, 30000.0, 30000.0]),
    ...     "export_physics": np.array([1.0, 0.0, -1.0, 0.0]),
    ...     "export_age_s": np.array([np.inf, np.inf, np.inf, 3600.0])},
    ...     {"min_floor_w": 40.0, "max_floor_ratio": 0.7, "min_duration_s": 21600.0,
    ...      "min_export_age_s": 86400})
    >>> r.fired.tolist()
    [True, False, False, False]
    """
    fired = (
        _warm(f)
        & (f["standby_floor_w"] >= t["min_floor_w"])
        & (f["slow_p_w"] <= t["max_floor_ratio"] * f["standby_floor_w"])
        & (f["sub_floor_run_s"] >= t["min_duration_s"])
        & _no_own_source(f, t)
    )
    return CueResult(
        fired,
        {
            "level_w": f["slow_p_w"],
            "standby_floor_w": f["standby_floor_w"],
            "below_for_s": f["sub_floor_run_s"],
        },
    )


def slow_bypass(f: Facts, t: Section) -> CueResult:
    """R13: over the last two completed days the premises drew less than on its earlier days,
    its lowest load (the standby that never stops) fell with it, and the voltage reacted to
    more current per metered ampere: a growing share of every load, the standby included,
    passes around the meter while its current still flows through the service cable. Today's
    lowest load so far must be down too (a bypass removed yesterday is not accused today). A
    vacant home keeps its standby; a habit change or a new appliance does not change the
    service impedance; only a bypass does all three.
    Where the impedance fit is referenced to the meter's transformer peers
    (``days_peer_referenced``, see :mod:`detectors.peer_impedance`) it is four times as
    steady, and the ``peer_*`` gates then ask for a smaller share.
    **Ramp tier:** a share that grows day by day has barely reached the two completed days
    when today's referenced fit (``ramp_today_ratio``, once today's current steps add up to
    ``ramp_min_today_di2_a2``) already stands ``ramp_min_today_ratio`` above the days before
    yesterday and yesterday's ``ramp_min_yesterday_ratio`` above them: with the standby
    down (the ``peer_max_floor_ratio`` gates) by about the share the fit implies (today's
    floor ratio times today's fit ratio at least ``ramp_min_floor_fit_ratio``), that fires
    without the level test, which a household's heavier days can hide a young bypass from.
    Not on a premises with a source of its own (see R03).

    >>> r = slow_bypass({"warm": np.array([1.0, 1.0, 1.0, 1.0]),
    ...     "days_old_n": np.array([6.0, 6.0, 6.0, 6.0]),
    ...     "days_old_mean_w": np.array([400.0, 400.0, 400.0, 400.0]),
    ...     "days_old_floor_w": np.array([80.0, 80.0, 80.0, 80.0]),
    ...     "days_level_ratio": np.array([0.6, 0.6, 0.6, 1.04]),
    ...     "days_floor_ratio": np.array([0.6, 1.0, 0.6, 0.84]),
    ...     "today_floor_ratio": np.array([0.55, 1.0, 0.6, 0.8]),
    ...     "days_impedance_ratio": np.array([1.5, 1.5, 1.0, 1.0]),
    ...     "days_peer_referenced": np.zeros(4), "days_peer_impedance_ratio": np.ones(4),
    ...     "ramp_old_days_n": np.array([0.0, 0.0, 0.0, 8.0]),
    ...     "ramp_today_ratio": np.array([1.0, 1.0, 1.0, 1.4]),
    ...     "ramp_yesterday_ratio": np.array([1.0, 1.0, 1.0, 1.25]),
    ...     "ramp_today_di2_a2": np.array([0.0, 0.0, 0.0, 220.0]),
    ...     "export_physics": np.zeros(4), "export_age_s": np.full(4, np.inf)},
    ...     {"min_old_days_n": 3, "min_old_mean_w": 150, "min_old_floor_w": 40,
    ...      "max_level_ratio": 0.85, "min_level_ratio": 0.05, "max_floor_ratio": 0.8,
    ...      "min_impedance_ratio": 1.15, "peer_max_level_ratio": 0.9,
    ...      "peer_max_floor_ratio": 0.85, "peer_min_impedance_ratio": 1.1,
    ...      "ramp_min_old_days_n": 4, "ramp_min_today_di2_a2": 100,
    ...      "ramp_min_today_ratio": 1.3, "ramp_min_yesterday_ratio": 1.08,
    ...      "ramp_min_floor_fit_ratio": 0.75, "min_export_age_s": 86400})
    >>> r.fired.tolist()
    [True, False, False, True]
    """
    peer = f["days_peer_referenced"] > 0.5
    impedance = np.where(peer, f["days_peer_impedance_ratio"], f["days_impedance_ratio"])
    max_floor = np.where(peer, t["peer_max_floor_ratio"], t["max_floor_ratio"])
    max_level = np.where(peer, t["peer_max_level_ratio"], t["max_level_ratio"])
    min_impedance = np.where(peer, t["peer_min_impedance_ratio"], t["min_impedance_ratio"])
    history = (
        _warm(f)
        & (f["days_old_n"] >= t["min_old_days_n"])
        & (f["days_old_mean_w"] >= t["min_old_mean_w"])
        & (f["days_old_floor_w"] >= t["min_old_floor_w"])
        & (f["days_level_ratio"] >= t["min_level_ratio"])
        & _no_own_source(f, t)
    )
    days = (
        (f["days_level_ratio"] <= max_level)
        & (f["days_floor_ratio"] <= max_floor)
        & (f["today_floor_ratio"] <= max_floor)
        & (impedance >= min_impedance)
    )
    ramp = (
        (f["ramp_old_days_n"] >= t["ramp_min_old_days_n"])
        & (f["ramp_today_di2_a2"] >= t["ramp_min_today_di2_a2"])
        & (f["ramp_today_ratio"] >= t["ramp_min_today_ratio"])
        & (f["ramp_yesterday_ratio"] >= t["ramp_min_yesterday_ratio"])
        & (f["days_floor_ratio"] <= t["peer_max_floor_ratio"])
        & (f["today_floor_ratio"] <= t["peer_max_floor_ratio"])
        # a share f lowers the standby to about 1 - f and raises the fit to 1 / (1 - f): a
        # standby fallen far below what the fit implies is a load switched off, not a bypass
        & (f["today_floor_ratio"] * f["ramp_today_ratio"] >= t["ramp_min_floor_fit_ratio"])
    )
    return CueResult(
        history & (days | ramp),
        {
            "level_ratio": f["days_level_ratio"],
            "floor_ratio": f["days_floor_ratio"],
            "today_floor_ratio": f["today_floor_ratio"],
            "impedance_ratio": impedance,
            "impedance_peer_referenced": f["days_peer_referenced"],
            "today_impedance_ratio": f["ramp_today_ratio"],
            "yesterday_impedance_ratio": f["ramp_yesterday_ratio"],
            "earlier_mean_w": f["days_old_mean_w"],
            "earlier_floor_w": f["days_old_floor_w"],
        },
    )


def stuck_registers(f: Facts, t: Section) -> CueResult:
    """R14: power, current and power factor repeat exactly, with load on, for hours, while
    the voltage register keeps moving: the load registers are stuck (or replayed) while the
    meter is alive. A real load is never that still: on a real 1-minute circuit (AMPds2)
    P, I and the true PF (P / V*I) all repeat for at most 9 minutes, as P = V*I*PF moves
    with every voltage step, and a simulated home for at most 3 readings. A meter whose
    every channel repeats is R01's case, not this one: the voltage must have moved within
    the run, so that the all-channel repeat is at most ``max_flat_share`` of it (a frozen
    meter's all-channel run is as long as this one, give or take the reading before the
    onset). A coarse register on a steady load can repeat longer, so the run must also be
    far longer than any this meter showed before.

    >>> r = stuck_registers({"warm": np.array([1.0, 1.0, 1.0, 1.0]),
    ...     "stuck_run_n": np.array([150.0, 150.0, 150.0, 150.0]),
    ...     "stuck_run_s": np.array([9000.0, 9000.0, 9000.0, 9000.0]),
    ...     "flat_run_s": np.array([600.0, 8940.0, 600.0, 600.0]),
    ...     "stuck_max_s": np.array([540.0, 540.0, 5400.0, 540.0]),
    ...     "last_abs_p_w": np.array([21.0, 21.0, 21.0, 0.0]),
    ...     "last_i_a": np.array([0.2, 0.2, 0.2, 0.0])},
    ...     {"min_readings_n": 6, "min_duration_s": 7200, "history_ratio": 3.0,
    ...      "min_abs_p_w": 5.0, "max_flat_share": 0.5})
    >>> r.fired.tolist()
    [True, False, False, False]
    """
    loaded = (f["last_abs_p_w"] > t["min_abs_p_w"]) | (f["last_i_a"] > 0.0)
    fired = (
        _warm(f)
        & loaded
        & (f["stuck_run_n"] >= t["min_readings_n"])
        & (
            f["stuck_run_s"]
            >= np.maximum(t["min_duration_s"], t["history_ratio"] * f["stuck_max_s"])
        )
        & (f["flat_run_s"] <= t["max_flat_share"] * f["stuck_run_s"])
    )
    return CueResult(
        fired,
        {
            "stuck_for_s": f["stuck_run_s"],
            "repeated_readings": f["stuck_run_n"],
            "stuck_p_w": f["last_abs_p_w"],
            "longest_earlier_stuck_s": f["stuck_max_s"],
        },
    )


def peer_voltage_dip(f: Facts, t: Section) -> CueResult:
    """R15: on several recent nights the meter's corrected voltage (V + Z*I) sat for hours
    well below its gateway's peers at the same hours, while no other meter of the gateway
    did: current the meter does not measure flows through its own service drop (a pump
    hooked before the meter, a bypassed circuit). A neighbour's load lowers the peers
    too, so it does not count. Judged once per meter and day, when the day's peers are
    final (see ``detectors.peer_voltage.night_dips``). A deep dip needs fewer nights than
    a shallow one: a small pump on a stiff service dips under a volt, but night after
    night; a dip deeper than any clean meter showed needs only the night itself; and so
    does a shallower one in which R16 saw a load switch on and back off by as much
    against the transformer, with no current step (``peer_pair_v``, the pair's size).

    >>> r = peer_voltage_dip({"warm": np.array([1.0, 1.0, 1.0, 1.0, 1.0, 1.0]),
    ...     "peer_judged": np.array([1.0, 1.0, 1.0, 1.0, 1.0, 1.0]),
    ...     "peer_dip_v": np.array([-2.1, -1.8, -0.8, -0.4, -2.6, -0.9]),
    ...     "peer_nights_n": np.array([3.0, 1.0, 0.0, 3.0, 1.0, 0.0]),
    ...     "peer_shallow_nights_n": np.array([3.0, 1.0, 4.0, 3.0, 1.0, 1.0]),
    ...     "peer_unmetered_a": np.array([12.0, 12.0, 5.0, 2.0, 14.0, 7.0]),
    ...     "peer_n": np.array([30.0, 30.0, 30.0, 30.0, 30.0, 30.0]),
    ...     "peer_pair_v": np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.85])},
    ...     {"min_dip_v": 1.5, "min_nights_n": 3, "shallow_dip_v": 0.7,
    ...      "min_shallow_nights_n": 4, "one_night_dip_v": 2.5, "min_amps_a": 4.0,
    ...      "min_peers_n": 8, "pair_dip_v": 0.7, "min_pair_step_v": 0.5})
    >>> r.fired.tolist()
    [True, False, True, False, True, True]
    """
    one_night = f["peer_dip_v"] <= -t["one_night_dip_v"]
    # one night, shallower, where R16 saw the load switch on and off within the stretch
    one_pair = (f["peer_dip_v"] <= -t["pair_dip_v"]) & (f["peer_pair_v"] >= t["min_pair_step_v"])
    deep = (f["peer_dip_v"] <= -t["min_dip_v"]) & (f["peer_nights_n"] >= t["min_nights_n"])
    shallow = (f["peer_dip_v"] <= -t["shallow_dip_v"]) & (
        f["peer_shallow_nights_n"] >= t["min_shallow_nights_n"]
    )
    fired = (
        _warm(f)
        & (f["peer_judged"] > 0.5)
        & (one_night | deep | shallow | one_pair)
        & (f["peer_unmetered_a"] >= t["min_amps_a"])
        & (f["peer_n"] >= t["min_peers_n"])
    )
    return CueResult(
        fired,
        {
            "dip_v": f["peer_dip_v"],
            "nights": f["peer_nights_n"],
            "shallow_nights": f["peer_shallow_nights_n"],
            "unmetered_a": f["peer_unmetered_a"],
            "peers": f["peer_n"],
            "pair_step_v": f["peer_pair_v"],
        },
    )


def timer_sag(f: Facts, t: Section) -> CueResult:
    """R16: the meter's voltage stepped down and, hours later, back up by as much, against
    its transformer's peers and with no step in the current it measures, and did so at the
    same time of day on an earlier day: a load on a timer hooked before the meter (its
    current flows through the meter's service drop, not through the meter). Judged when a
    pair closes, an hour after the switch-off (see ``detectors.timer_hook``). A pair at
    least ``min_step_v`` that repeats ``min_repeats_n`` times, implying at least
    ``min_amps_a`` through the meter's own service impedance where that is known.

    >>> r = timer_sag({"warm": np.array([1.0, 1.0, 1.0, 1.0, 0.0]),
    ...     "hook_repeated": np.array([1.0, 1.0, 0.0, 1.0, 1.0]),
    ...     "hook_repeats_n": np.array([1.0, 2.0, 0.0, 1.0, 1.0]),
    ...     "hook_step_v": np.array([0.9, 2.1, 0.0, 0.8, 0.9]),
    ...     "hook_duration_s": np.array([21600.0, 18000.0, 0.0, 21600.0, 21600.0]),
    ...     "hook_unmetered_a": np.array([9.0, np.nan, np.nan, 1.5, 9.0])},
    ...     {"min_step_v": 0.5, "min_repeats_n": 1, "min_amps_a": 3.0})
    >>> r.fired.tolist()
    [True, True, False, False, False]
    """
    fired = (
        _warm(f)
        & (f["hook_repeated"] > 0.5)
        & (f["hook_repeats_n"] >= t["min_repeats_n"])
        & (f["hook_step_v"] >= t["min_step_v"])
        # an unknown service impedance leaves the current unknown: the step decides
        & ~(f["hook_unmetered_a"] < t["min_amps_a"])
    )
    return CueResult(
        fired,
        {
            "step_v": f["hook_step_v"],
            "repeats": f["hook_repeats_n"],
            "duration_s": f["hook_duration_s"],
            "unmetered_a": f["hook_unmetered_a"],
        },
    )


CUES: tuple[Cue, ...] = (
    Cue("R01", "meter_freeze", True, meter_freeze),
    Cue("R02", "bypass_zero", True, bypass_zero),
    Cue("R03", "partial_bypass", True, partial_bypass),
    Cue("R04", "register_tamper", True, register_tamper),
    Cue("R05", "reverse_flow", True, reverse_flow),
    Cue("R06", "pf_abnormal", True, pf_abnormal),
    Cue("R07", "sharp_spike", False, sharp_spike),
    Cue("R08", "gradual_decline", False, gradual_decline),
    Cue("R09", "unmetered_load", True, unmetered_load, partner="R11"),
    Cue("R10", "impedance_rise", True, impedance_rise),
    Cue("R11", "recurring_sag", True, recurring_sag, partner="R09"),
    Cue("R12", "below_standby", True, below_standby),
    Cue("R13", "slow_bypass", True, slow_bypass),
    Cue("R14", "stuck_registers", True, stuck_registers),
    Cue("R15", "peer_voltage_dip", True, peer_voltage_dip),
    Cue("R16", "timer_sag", True, timer_sag),
)

CUE_BY_NAME: Mapping[str, Cue] = {c.name: c for c in CUES}
CUE_IDS: tuple[str, ...] = tuple(c.id for c in CUES)
# cues that are some cue's partner: the engine keeps, per meter, when each last fired
PARTNER_IDS: tuple[str, ...] = tuple(c.id for c in CUES if any(o.partner == c.id for o in CUES))
IntArray = npt.NDArray[np.int64]
# for theft_windows: the CUES column of each partner cue; the physical cues that accuse
# alone; and (CUES column, PARTNER_IDS column of its partner) for those that need one
_PARTNER_COLS = [CUE_IDS.index(pid) for pid in PARTNER_IDS]
_SOLO = np.array([c.physical and c.partner is None for c in CUES])
_PAIRED = [
    (k, PARTNER_IDS.index(c.partner))
    for k, c in enumerate(CUES)
    if c.physical and c.partner is not None
]


def theft_windows(
    fired: BoolArray, end_ms: IntArray, partner_last_ms: IntArray, t: Section
) -> tuple[BoolArray, IntArray]:
    """Which windows are theft, and the updated last-fired times of the partner cues.

    ``fired`` is (K, len(CUES)) in ``CUES`` order, ``end_ms`` the windows' ends and
    ``partner_last_ms`` (K, len(PARTNER_IDS)) when each partner cue last fired on that
    meter (-1: never). A window is theft when a physical cue without a partner fires, or a
    physical cue fires while its partner fired at most ``partner_window_s`` earlier
    (or in this window).

    A sustained sag (R09) an hour after a recurring-sag onset (R11) on the same meter:

    >>> ids = [c.id for c in CUES]
    >>> fired = np.zeros((2, len(CUES)), dtype=bool)
    >>> fired[:, ids.index("R09")] = True
    >>> last = np.array([[-1, 0], [-1, -1]], dtype=np.int64)  # R11 fired at t=0 on meter 0
    >>> theft, last = theft_windows(fired, np.array([3_600_000, 3_600_000]), last,
    ...                             {"partner_window_s": 7200.0})
    >>> theft.tolist(), last[:, 0].tolist()
    ([True, False], [3600000, 3600000])
    """
    last: IntArray = np.where(fired[:, _PARTNER_COLS], end_ms[:, None], partner_last_ms)
    window_ms = int(t["partner_window_s"] * 1000)
    theft: BoolArray = np.asarray(fired[:, _SOLO].any(axis=1), dtype=np.bool_)
    for k, col in _PAIRED:
        seen = last[:, col]
        theft |= fired[:, k] & (seen >= 0) & (seen >= end_ms - window_ms)
    return theft, last


def evaluate_cues(facts: Facts, thresholds: Mapping[str, Section]) -> dict[str, CueResult]:
    """Run every cue over the windows: cue name -> result."""
    return {c.name: c.fn(facts, thresholds[c.name]) for c in CUES}
