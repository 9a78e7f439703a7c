"""The fleet plan: topology, per-meter appliance parameters, daily routines, and every
injected theft, behaviour and transport fault (the ground truth), drawn up front from
the seed. Generation (``simulator.generate``) then turns the plan into readings chunk
by chunk, so the plan is the single source of both readings and labels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from simulator.config import THEFT_EARLIEST_S, FleetConfig

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MIN_THEFT_MS = 6 * HOUR_MS

# Reactive-to-active ratio tan(acos(pf)) of each appliance class: resistive loads (heaters,
# kettles, hobs) are ~1, motors (compressors, pumps, washing drums) and electronics lower.
TAN_BASE = math.tan(math.acos(0.80))  # standby electronics, routers, SMPS
TAN_FRIDGE = math.tan(math.acos(0.80))  # compressor motor
TAN_ELEC = math.tan(math.acos(0.65))  # TV, PCs (no PFC)
TAN_LIGHT = math.tan(math.acos(0.90))  # LED drivers
TAN_MOTOR = math.tan(math.acos(0.62))  # washing-machine drum, pumps
TAN_EV = math.tan(math.acos(0.99))  # charger with PFC
TAN_HEAT_PUMP = math.tan(math.acos(0.95))
TAN_AC = math.tan(math.acos(0.90))
TAN_SHOP_FRIDGE = math.tan(math.acos(0.78))
TAN_PUMP = math.tan(math.acos(0.80))  # the stolen night pump


@dataclass
class Incident:
    """One theft or behaviour on one meter: its labelled intervals and parameters."""

    meter: int
    type: str
    intervals: list[tuple[int, int]]
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class IntervalSet:
    """Vectorised intervals (half-open, true event time, ms) with one value each."""

    rows: np.ndarray  # meter (or gateway) index, int64
    start_ms: np.ndarray  # int64
    end_ms: np.ndarray  # int64
    value: np.ndarray  # float64 (delay, offset, ... or 1.0)

    @classmethod
    def empty(cls) -> IntervalSet:
        z = np.zeros(0, dtype=np.int64)
        return cls(z, z.copy(), z.copy(), np.zeros(0))

    def __len__(self) -> int:
        return len(self.rows)


@dataclass
class FleetPlan:
    config: FleetConfig
    meter_ids: list[str]
    gateway_ids: list[str]
    transformer_ids: list[str]
    household: np.ndarray  # int8 index into HOUSEHOLDS
    meter_tx: np.ndarray  # transformer of each meter (meters sorted by transformer)
    tx_gw: np.ndarray  # gateway of each transformer
    meter_gw: np.ndarray
    tx_start: np.ndarray  # first meter index of each transformer
    p: dict[str, np.ndarray]  # per-meter parameters (M,)
    day: dict[str, np.ndarray]  # per-meter-per-day parameters (M, D)
    daily: dict[str, np.ndarray]  # per-day fleet-wide series (D,)
    tx: dict[str, np.ndarray]  # per-transformer parameters
    feeder_walk: np.ndarray  # (G, bins) slow upstream voltage deviation, per unit
    feeder_bin_ms: int
    day0_local_ms: int  # start of local day 0, as UTC epoch ms
    thefts: list[Incident]
    behaviours: list[Incident]
    gaps: IntervalSet
    gaps_scope_gateway: np.ndarray  # bool per gap
    duplicates: IntervalSet  # value = retry delay, s
    late: IntervalSet  # value = delay, s
    skew: IntervalSet  # rows = gateway; value = offset, s

    @property
    def n_meters(self) -> int:
        return len(self.meter_ids)


def gateway_members(plan: FleetPlan) -> list[np.ndarray]:
    """Meter indices of each gateway (meters are numbered gateway by gateway)."""
    bounds = np.searchsorted(plan.meter_gw, np.arange(1, len(plan.gateway_ids)))
    return np.split(np.arange(plan.n_meters), bounds)


def _ids(prefix: str, n: int, width: int) -> list[str]:
    width = max(width, len(str(n)))
    return [f"{prefix}-{k + 1:0{width}d}" for k in range(n)]


def _loguniform(rng: np.random.Generator, lo: float, hi: float, size: int) -> np.ndarray:
    return np.exp(rng.uniform(math.log(lo), math.log(hi), size))


def _sun_hours(doy: np.ndarray, latitude_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Sunrise and sunset (local solar hours) from the day of year (declination formula)."""
    decl = np.radians(23.44) * np.sin(2 * np.pi * (284 + doy) / 365.0)
    lat = math.radians(latitude_deg)
    cos_h = np.clip(-math.tan(lat) * np.tan(decl), -1.0, 1.0)
    half_day_h = np.degrees(np.arccos(cos_h)) / 15.0
    return 12.0 - half_day_h, 12.0 + half_day_h


def build_plan(config: FleetConfig) -> FleetPlan:
    """Draw the whole fleet plan from the seed (deterministic)."""
    cfg = config
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 1]))
    m = cfg.meters

    # --- topology: meters -> transformers -> gateways (meters numbered in that order) ---
    sizes: list[int] = []
    remaining = m
    while remaining > 0:
        size = int(
            rng.integers(
                max(1, cfg.meters_per_transformer // 2), cfg.meters_per_transformer * 3 // 2 + 1
            )
        )
        size = min(size, remaining)
        sizes.append(size)
        remaining -= size
    n_tx = len(sizes)
    meter_tx = np.repeat(np.arange(n_tx), sizes)
    tx_start = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    tx_gw = np.arange(n_tx) // cfg.transformers_per_gateway
    n_gw = int(tx_gw.max()) + 1
    meter_gw = tx_gw[meter_tx]

    mix = np.asarray(cfg.household_mix, dtype=float)
    household = rng.choice(4, size=m, p=mix / mix.sum()).astype(np.int8)
    is_flat, is_house, is_ev, is_shop = (household == k for k in range(4))
    is_home = ~is_shop

    u = rng.uniform
    p: dict[str, np.ndarray] = {}
    p["base_w"] = np.select([is_flat, is_shop], [u(35, 90, m), u(250, 700, m)], u(60, 160, m))
    p["fridge_w"] = np.where(is_shop, u(400, 1200, m), u(70, 160, m))
    p["fridge_period_s"] = u(2400, 4200, m)
    p["fridge_duty"] = u(0.30, 0.50, m)
    p["fridge_phase_s"] = u(0, 4200, m)
    p["elec_w"] = np.where(is_shop, u(150, 600, m), u(40, 250, m))
    p["light_w"] = np.select([is_flat, is_shop], [u(30, 120, m), u(300, 1500, m)], u(60, 280, m))
    # Day of a household: wake, sleep; shops: opening hours instead.
    p["wake_h"] = np.where(is_shop, u(7.0, 9.0, m), u(5.5, 8.0, m))
    p["sleep_h"] = np.where(is_shop, u(18.0, 20.0, m), u(21.5, 23.9, m))
    p["works_away"] = is_home & (rng.random(m) < 0.6)
    p["leave_h"] = u(7.0, 9.0, m)
    p["return_h"] = u(16.5, 19.0, m)
    p["shop_open_sat"] = is_shop & (rng.random(m) < 0.8)
    p["cook_w"] = np.where(is_home, u(1000, 2600, m), 0.0)
    electric_water = is_home & (rng.random(m) < 0.5)
    p["wh_w"] = np.where(electric_water, u(1800, 3000, m), 0.0)
    p["laundry_w"] = np.where(is_home, u(1800, 2200, m), 0.0)
    # Space heating: none (gas), resistive, or heat pump. Electrical power per kelvin.
    heat_kind = np.where(rng.random(m) < 0.5, 0, np.where(rng.random(m) < 0.5, 1, 2))
    p["heat_tan"] = np.where(heat_kind == 2, TAN_HEAT_PUMP, 0.0)
    p["heat_w_per_k"] = np.select(
        [heat_kind == 1, heat_kind == 2], [u(60, 150, m), u(25, 60, m)], 0.0
    )
    p["heat_cap_w"] = np.select(
        [heat_kind == 1, heat_kind == 2], [u(2000, 6000, m), u(1500, 3500, m)], 1.0
    )
    p["heat_cycle_s"] = u(900, 1800, m)
    p["heat_phase_s"] = u(0, 1800, m)
    p["heat_from_ms"] = np.full(m, np.iinfo(np.int64).min // 2, dtype=np.int64)
    p["setpoint_c"] = u(19.0, 22.0, m)
    p["ac_w_per_k"] = np.where(rng.random(m) < 0.3, u(80, 200, m), 0.0)
    p["ac_cap_w"] = u(1500, 3500, m)
    p["ev_kw"] = np.where(is_ev, u(3.7, 7.4, m), 0.0)
    p["ev_from_ms"] = np.full(m, np.iinfo(np.int64).min // 2, dtype=np.int64)
    # Service drop: a meter's own current drops its own voltage. Scaled so that the
    # per-unit drop is alike at 230 V and 120 V service (same power, double current).
    scale = (cfg.nominal_voltage_v / 230.0) ** 2
    p["z_drop_ohm"] = u(0.08, 0.20, m) * scale
    p["v_cal"] = rng.normal(0.0, 0.0015, m)  # meter calibration offset, per unit
    p["noise_p"] = u(0.01, 0.04, m)
    p["is_home"] = is_home
    p["is_shop"] = is_shop

    # --- per-day series ---------------------------------------------------------
    offset_ms = int(round(cfg.utc_offset_h * HOUR_MS))
    local_start = cfg.start_ms + offset_ms
    day0_local_ms = (local_start // DAY_MS) * DAY_MS - offset_ms
    n_days = int((cfg.end_ms - day0_local_ms) // DAY_MS) + 2
    first_date = datetime.fromtimestamp(local_start // 1000, UTC).date()
    dates = [first_date + timedelta(days=k) for k in range(n_days)]
    weekday = np.array([dd.weekday() for dd in dates])
    holiday = np.array([dd in set(cfg.holidays) for dd in dates])
    doy = np.array([dd.timetuple().tm_yday for dd in dates], dtype=float)
    daily: dict[str, np.ndarray] = {}
    daily["workday"] = (weekday < 5) & ~holiday
    daily["saturday"] = (weekday == 5) & ~holiday
    sunrise, sunset = _sun_hours(doy, cfg.latitude_deg)
    daily["sunrise_h"], daily["sunset_h"] = sunrise, sunset
    seasonal = 10.0 - 10.0 * np.cos(2 * np.pi * (doy - 20) / 365.0)
    if cfg.latitude_deg < 0:
        seasonal = 20.0 - seasonal
    anomaly = np.zeros(n_days)
    for k in range(1, n_days):  # AR(1) day-to-day weather (a loop over days, not readings)
        anomaly[k] = 0.7 * anomaly[k - 1] + rng.normal(0, 2.0)
    daily["temp_mean_c"] = seasonal + anomaly
    daily["temp_amp_c"] = u(2.0, 5.0, n_days)

    # --- per-meter-per-day routines ----------------------------------------------
    md = (m, n_days)
    off_day = ~daily["workday"][None, :]
    day: dict[str, np.ndarray] = {}
    day["wake_h"] = (
        p["wake_h"][:, None]
        + rng.normal(0, 0.25, md)
        + np.where(off_day & is_home[:, None], 1.2, 0.0)
    )
    day["sleep_h"] = np.minimum(p["sleep_h"][:, None] + rng.normal(0, 0.3, md), 23.99)
    day["dinner_h"] = u(17.3, 19.8, md)
    day["dinner_len_h"] = u(0.3, 1.0, md)
    day["breakfast_len_h"] = u(0.08, 0.3, md)
    day["lunch_h"] = u(11.8, 13.0, md)
    day["wh_am_h"] = day["wake_h"] + u(0.0, 0.6, md)
    day["wh_am_len_h"] = u(0.3, 0.9, md)
    day["wh_pm_h"] = u(19.0, 22.0, md)
    day["wh_pm_len_h"] = u(0.2, 0.6, md)
    day["laundry"] = rng.random(md) < 0.3
    day["laundry_h"] = np.where(off_day, u(9.0, 17.0, md), u(18.0, 20.5, md))
    day["ev_plug"] = rng.random(md) < 0.7
    day["ev_h"] = u(17.5, 21.5, md)
    ev_need_kwh = u(4.0, 20.0, md)
    day["ev_len_h"] = ev_need_kwh / np.maximum(p["ev_kw"][:, None], 3.7)
    # the new-EV behaviour gives an EV later: its session lengths must exist already
    day["open_day"] = np.where(
        is_shop[:, None],
        daily["workday"][None, :] | (daily["saturday"][None, :] & p["shop_open_sat"][:, None]),
        True,
    )

    # --- transformers and feeder voltage -------------------------------------------
    tx: dict[str, np.ndarray] = {}
    sizes_arr = np.asarray(sizes, dtype=float)
    kva = np.maximum(25.0, sizes_arr * 4.0)  # ~4 kVA per connection (winter, electric heat)
    i_rated = kva * 1000.0 / cfg.nominal_voltage_v
    tx["z_ohm"] = u(0.03, 0.05, n_tx) * cfg.nominal_voltage_v / i_rated
    tx["tap_pu"] = u(1.005, 1.035, n_tx)  # no-load secondary voltage, per unit
    feeder_bin_ms = 5 * 60_000
    n_bins = int((cfg.end_ms - cfg.start_ms) // feeder_bin_ms) + 2
    steps = rng.normal(0, 0.0008, (n_gw, n_bins))
    walk = np.cumsum(steps, axis=1)
    # mean-reverting: remove a slow trend so the walk stays within about +-1 %
    walk -= np.cumsum(walk, axis=1) / np.arange(1, n_bins + 1) * 0.5
    feeder_walk = np.clip(walk, -0.015, 0.015)

    plan = FleetPlan(
        config=cfg,
        meter_ids=_ids("MTR", m, 6),
        gateway_ids=_ids("GW", n_gw, 4),
        transformer_ids=_ids("TX", n_tx, 4),
        household=household,
        meter_tx=meter_tx,
        tx_gw=tx_gw,
        meter_gw=meter_gw,
        tx_start=tx_start,
        p=p,
        day=day,
        daily=daily,
        tx=tx,
        feeder_walk=feeder_walk,
        feeder_bin_ms=feeder_bin_ms,
        day0_local_ms=day0_local_ms,
        thefts=[],
        behaviours=[],
        gaps=IntervalSet.empty(),
        gaps_scope_gateway=np.zeros(0, dtype=bool),
        duplicates=IntervalSet.empty(),
        late=IntervalSet.empty(),
        skew=IntervalSet.empty(),
    )
    _plan_incidents(plan, np.random.default_rng(np.random.SeedSequence([cfg.seed, 2])))
    if cfg.transport_faults:
        _plan_faults(plan, np.random.default_rng(np.random.SeedSequence([cfg.seed, 3])))
    return plan


def _snap(cfg: FleetConfig, t_ms: float) -> int:
    """Round a time to the cadence grid (labels then line up with readings)."""
    step = cfg.cadence_s * 1000
    return int(cfg.start_ms + round((t_ms - cfg.start_ms) / step) * step)


def _daily_windows(
    plan: FleetPlan, t0: int, t1: int, start_h: float, length_h: float
) -> list[tuple[int, int]]:
    """The windows [start_h, start_h + length_h) of each local day, clipped to [t0, t1)."""
    cfg = plan.config
    out = []
    first = (t0 - plan.day0_local_ms) // DAY_MS - 1
    last = (t1 - plan.day0_local_ms) // DAY_MS + 1
    for d in range(int(first), int(last) + 1):
        a = plan.day0_local_ms + d * DAY_MS + int(start_h * HOUR_MS)
        b = a + int(length_h * HOUR_MS)
        a, b = max(a, t0), min(b, t1)
        a, b = _snap(cfg, a), _snap(cfg, b)
        if b > a:
            out.append((a, b))
    return out


def _plan_incidents(plan: FleetPlan, rng: np.random.Generator) -> None:
    cfg = plan.config
    m = plan.n_meters
    order = rng.permutation(m)
    n_theft = int(round(cfg.theft_share * m))
    earliest = cfg.start_ms + THEFT_EARLIEST_S * 1000
    if cfg.end_ms - earliest < MIN_THEFT_MS or not cfg.theft_types:
        n_theft = 0  # too short a run: no theft can start after the warm-up
    n_beh = int(round(cfg.behaviour_share * m)) if cfg.behaviour_types else 0
    thieves = order[:n_theft]
    behavers = order[n_theft : n_theft + n_beh]
    theft_types = list(cfg.theft_types)
    rng.shuffle(theft_types)
    end = cfg.end_ms
    u = rng.uniform

    for k, meter in enumerate(thieves):
        kind = theft_types[k % len(theft_types)]
        t0 = _snap(cfg, u(earliest, end - MIN_THEFT_MS))
        params: dict[str, Any] = {}
        if kind == "full_bypass":
            t1 = min(end, t0 + int(u(3, 10) * DAY_MS))
            start_h, length_h = u(16.5, 19.0), u(3.0, 5.5)
            intervals = _daily_windows(plan, t0, t1, start_h, length_h)
            params = {"metered_fraction": round(u(0.0, 0.02), 4)}
        elif kind == "night_pump_hook":
            t1 = min(end, t0 + int(u(4, 10) * DAY_MS))
            start_h, length_h = u(22.0, 23.5), u(4.0, 7.0)
            intervals = _daily_windows(plan, t0, t1, start_h, length_h)
            params = {"pump_w": round(u(1500, 3000), 1), "pump_pf": 0.8}
        else:
            if kind == "partial_bypass":
                t1 = min(end, t0 + int(u(2, 7) * DAY_MS))
                params = {"bypassed_fraction": round(u(0.3, 0.7), 3)}
            elif kind == "register_tamper":
                t1 = end
                params = {"under_report_fraction": round(u(0.3, 0.7), 3)}
            elif kind == "meter_freeze":
                t1 = min(end, t0 + int(u(3 * HOUR_MS, 2 * DAY_MS)))
            elif kind == "reverse_meter":
                t1 = min(end, t0 + int(u(1, 5) * DAY_MS))
            elif kind == "pf_tamper":
                t1 = min(end, t0 + int(u(1, 5) * DAY_MS))
                mode = "low" if rng.random() < 0.5 else "jitter"
                params = {"mode": mode, "pf_level": round(u(0.3, 0.5), 3)}
            else:  # gradual_bypass
                t1 = end
                params = {
                    "max_fraction": round(u(0.4, 0.8), 3),
                    "ramp_days": round(u(4.0, 10.0), 2),
                }
            t1 = _snap(cfg, t1)
            intervals = [(t0, t1)] if t1 > t0 else []
        if intervals:
            plan.thefts.append(Incident(int(meter), kind, intervals, params))

    beh_types = list(cfg.behaviour_types)
    rng.shuffle(beh_types)
    beh_earliest = (
        earliest if end - earliest >= MIN_THEFT_MS else cfg.start_ms + (end - cfg.start_ms) // 4
    )
    p = plan.p
    for k, meter in enumerate(behavers):
        kind = beh_types[k % len(beh_types)]
        # a new EV or heat pump only where there was none (shops get neither)
        if kind == "new_ev" and (not p["is_home"][meter] or p["ev_kw"][meter] > 0):
            kind = "vacancy"
        if kind == "new_heat_pump" and (not p["is_home"][meter] or p["heat_w_per_k"][meter] > 0):
            kind = "appliance_fault"
        t0 = _snap(cfg, u(beh_earliest, max(beh_earliest + 1, end - MIN_THEFT_MS)))
        params = {}
        if kind == "vacancy":
            t1 = min(end, t0 + int(u(2, 7) * DAY_MS))
        elif kind == "new_ev":
            t1 = end
            kw = round(u(3.7, 7.4), 2)
            p["ev_kw"][meter] = kw
            p["ev_from_ms"][meter] = t0
            plan.day["ev_len_h"][meter] = u(4.0, 20.0, plan.day["ev_len_h"].shape[1]) / kw
            params = {"charger_kw": kw}
        elif kind == "new_heat_pump":
            t1 = end
            p["heat_from_ms"][meter] = t0
            p["heat_tan"][meter] = TAN_HEAT_PUMP
            p["heat_w_per_k"][meter] = u(25, 60)
            p["heat_cap_w"][meter] = u(1500, 3500)
            params = {"capacity_w": round(float(p["heat_cap_w"][meter]), 1)}
        else:  # appliance_fault
            t1 = min(end, t0 + int(u(6 * HOUR_MS, 3 * DAY_MS)))
            fault = (
                "fridge_compressor"
                if (rng.random() < 0.5 or p["wh_w"][meter] == 0)
                else ("water_heater_stuck_on")
            )
            params = {"fault": fault}
        t1 = _snap(cfg, t1)
        if t1 > t0:
            plan.behaviours.append(Incident(int(meter), kind, [(t0, t1)], params))


def _plan_faults(plan: FleetPlan, rng: np.random.Generator) -> None:
    """Transport faults on every meter, theft or not."""
    cfg = plan.config
    m = plan.n_meters
    n_gw = len(plan.gateway_ids)
    span = cfg.end_ms - cfg.start_ms
    days = span / DAY_MS
    min_gap_ms = max(60_000, 2 * cfg.cadence_s * 1000)
    # the last step's time: an interval starting there still covers one reading
    last_step = float(cfg.end_ms - cfg.cadence_s * 1000)

    def per_meter(rate_per_day: float, at_least_one: bool) -> np.ndarray:
        counts = rng.poisson(rate_per_day * days, m) + (1 if at_least_one else 0)
        return np.repeat(np.arange(m), counts)

    def snap_arr(t: np.ndarray) -> np.ndarray:
        step = cfg.cadence_s * 1000
        return cfg.start_ms + np.round((t - cfg.start_ms) / step).astype(np.int64) * step

    # comms gaps: per meter (minutes to hours) and per gateway (whole gateway silent)
    rows = per_meter(0.25, True)
    length = _loguniform(rng, min_gap_ms, 6 * HOUR_MS, len(rows))
    start = rng.uniform(cfg.start_ms, cfg.end_ms - min_gap_ms, len(rows))
    gw_rows = np.repeat(np.arange(n_gw), rng.poisson(0.1 * days, n_gw))
    gw_len = _loguniform(rng, 5 * 60_000, 3 * HOUR_MS, len(gw_rows))
    gw_start = rng.uniform(cfg.start_ms, cfg.end_ms - min_gap_ms, len(gw_rows))
    # expand gateway outages to their meters
    members = gateway_members(plan)
    exp_rows = [members[g] for g in gw_rows]
    counts = np.array([len(x) for x in exp_rows], dtype=np.int64)
    exp_meters = np.concatenate(exp_rows) if exp_rows else np.zeros(0, dtype=np.int64)
    all_rows = np.concatenate([rows, exp_meters]).astype(np.int64)
    all_start = np.concatenate([start, np.repeat(gw_start, counts)])
    all_len = np.concatenate([length, np.repeat(gw_len, counts)])
    s = snap_arr(all_start)
    e = np.minimum(snap_arr(all_start + all_len), cfg.end_ms)
    keep = e > s
    plan.gaps = IntervalSet(all_rows[keep], s[keep], e[keep], np.ones(int(keep.sum())))
    plan.gaps_scope_gateway = np.concatenate(
        [np.zeros(len(rows), bool), np.ones(len(exp_meters), bool)]
    )[keep]

    # duplicates: a gateway retried a stretch of readings
    rows = per_meter(0.3, True)
    s = snap_arr(rng.uniform(cfg.start_ms, last_step, len(rows)))
    e = np.minimum(
        s + _loguniform(rng, 60_000, 30 * 60_000, len(rows)).astype(np.int64), cfg.end_ms
    )
    e = np.maximum(e, np.minimum(s + cfg.cadence_s * 1000, cfg.end_ms))
    keep = e > s
    retry = np.round(rng.uniform(5, 90, len(rows)))
    plan.duplicates = IntervalSet(rows[keep].astype(np.int64), s[keep], e[keep], retry[keep])

    # late: a stretch of readings arrives late (mostly within the allowed lateness)
    rows = per_meter(0.3, True)
    s = snap_arr(rng.uniform(cfg.start_ms, last_step, len(rows)))
    e = np.minimum(
        s + _loguniform(rng, 60_000, 20 * 60_000, len(rows)).astype(np.int64), cfg.end_ms
    )
    e = np.maximum(e, np.minimum(s + cfg.cadence_s * 1000, cfg.end_ms))
    keep = e > s
    beyond = rng.random(len(rows)) < cfg.beyond_lateness_share
    lo = min(5.0, float(max(cfg.max_lateness_s, 1)))
    delay = np.where(
        beyond,
        np.round(rng.uniform(cfg.max_lateness_s + 60, cfg.max_lateness_s + 780, len(rows))),
        np.round(rng.uniform(lo, max(cfg.max_lateness_s, 1), len(rows))),
    )
    plan.late = IntervalSet(rows[keep].astype(np.int64), s[keep], e[keep], delay[keep])

    # clock skew: a third of the gateways run off by seconds to a minute for a while
    skewed = np.flatnonzero(rng.random(n_gw) < 0.3)
    s = snap_arr(rng.uniform(cfg.start_ms, last_step, len(skewed)))
    e = np.minimum(
        s + _loguniform(rng, 2 * HOUR_MS, 3 * DAY_MS, len(skewed)).astype(np.int64), cfg.end_ms
    )
    offset = rng.integers(2, 61, len(skewed)) * np.where(rng.random(len(skewed)) < 0.5, -1, 1)
    keep = e > s
    plan.skew = IntervalSet(
        skewed[keep].astype(np.int64), s[keep], e[keep], offset[keep].astype(float)
    )
