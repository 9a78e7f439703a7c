"""Appliance-level household and shop load, vectorised over (meters, time steps).

Each appliance class contributes active power P and reactive power Q = P * tan(phi) of
its own power factor, so the aggregate power factor follows the appliance mix:
resistive loads (hob, kettle, water heater, resistive heating) pull PF to 1, motors and
electronics pull it down.
"""

from __future__ import annotations

import numpy as np

from simulator.plan import (
    DAY_MS,
    HOUR_MS,
    TAN_AC,
    TAN_BASE,
    TAN_ELEC,
    TAN_EV,
    TAN_FRIDGE,
    TAN_LIGHT,
    TAN_MOTOR,
    FleetPlan,
)


def local_time(plan: FleetPlan, t_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(day index into the plan's day arrays, local hour of day) for each time."""
    rel = t_ms - plan.day0_local_ms
    return (rel // DAY_MS).astype(np.intp), (rel % DAY_MS) / HOUR_MS


def outdoor_temperature(plan: FleetPlan, t_ms: np.ndarray) -> np.ndarray:
    """Outdoor temperature (deg C): daily mean interpolated between days, plus a daily wave
    peaking mid-afternoon."""
    d, h = local_time(plan, t_ms)
    mean = plan.daily["temp_mean_c"]
    x = d + h / 24.0 - 0.5
    i0 = np.clip(np.floor(x).astype(np.intp), 0, len(mean) - 2)
    w = np.clip(x - i0, 0.0, 1.0)
    base = mean[i0] * (1 - w) + mean[i0 + 1] * w
    amp = plan.daily["temp_amp_c"][d]
    return np.asarray(base + amp * np.cos(2 * np.pi * (h - 15.0) / 24.0))


def _cycle_phase(t: np.ndarray, period: np.ndarray) -> np.ndarray:
    """Position in [0, 1) within a repeating cycle (floor is ~4x faster than remainder)."""
    x: np.ndarray = t / period
    x -= np.floor(x)
    return x


def household_power(
    plan: FleetPlan,
    t_ms: np.ndarray,
    masks: dict[str, np.ndarray],
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Active (W) and reactive (var) power of every meter's premises, shape (M, T).

    ``masks`` holds (M, T) boolean masks of non-theft behaviours: ``vacancy``,
    ``fault_fridge``, ``fault_water_heater`` (absent = nobody).
    """
    p, dd, daily = plan.p, plan.day, plan.daily
    cfg = plan.config
    n_m, n_t = plan.n_meters, len(t_ms)
    d, h = local_time(plan, t_ms)
    hh = h[None, :]
    secs = ((t_ms - cfg.start_ms) / 1000.0)[None, :]

    def g(name: str) -> np.ndarray:
        return dd[name][:, d]

    def col(name: str) -> np.ndarray:
        return p[name][:, None]

    vacant = masks.get("vacancy")
    wake = g("wake_h")
    awake = (hh >= wake) & (hh < g("sleep_h")) & g("open_day")
    workday = daily["workday"][d][None, :]
    away = col("works_away") & workday & (hh >= col("leave_h")) & (hh < col("return_h"))
    present = awake & ~away
    if vacant is not None:
        present &= ~vacant

    P = np.empty((n_m, n_t))
    P[:] = col("base_w")
    Q = P * TAN_BASE

    # fridge / refrigeration cabinets: thermostat cycles
    fridge_on = _cycle_phase(secs + col("fridge_phase_s"), col("fridge_period_s")) < col(
        "fridge_duty"
    )
    fridge = col("fridge_w") * fridge_on
    fault = masks.get("fault_fridge")
    if fault is not None:  # a failing compressor runs all the time, harder, at a worse PF
        fridge = np.where(fault, col("fridge_w") * 1.4, fridge)
        Q += np.where(fault, fridge * 0.6, 0.0)
    P += fridge
    Q += fridge * TAN_FRIDGE

    elec = col("elec_w") * present
    P += elec
    Q += elec * TAN_ELEC

    dark = ((h < daily["sunrise_h"][d] + 0.3) | (h > daily["sunset_h"][d] - 0.3))[None, :]
    light = col("light_w") * (present & (dark | col("is_shop")))
    if vacant is not None:  # a timer lamp keeps the house looking occupied
        light += 60.0 * (vacant & dark & (hh < 23.0))
    P += light
    Q += light * TAN_LIGHT

    # cooking: breakfast, dinner, and lunch on days off; resistive
    dinner = (hh >= g("dinner_h")) & (hh < g("dinner_h") + g("dinner_len_h"))
    lunch = ~workday & (hh >= g("lunch_h")) & (hh < g("lunch_h") + 0.5)
    breakfast = (hh >= wake) & (hh < wake + g("breakfast_len_h"))
    cook = col("cook_w") * (((dinner | lunch) & present) + 0.5 * (breakfast & present))
    P += cook

    # water heater: morning and evening draws; resistive
    wh_on = ((hh >= g("wh_am_h")) & (hh < g("wh_am_h") + g("wh_am_len_h"))) | (
        (hh >= g("wh_pm_h")) & (hh < g("wh_pm_h") + g("wh_pm_len_h"))
    )
    if vacant is not None:
        wh_on &= ~vacant
    stuck = masks.get("fault_water_heater")
    if stuck is not None:  # thermostat failed: the element stays on
        wh_on |= stuck
    P += col("wh_w") * wh_on

    # laundry: heating phase (resistive), then the drum motor
    lh = g("laundry_h")
    laundry_day = g("laundry") & present
    heat_phase = laundry_day & (hh >= lh) & (hh < lh + 0.33)
    drum = laundry_day & (hh >= lh + 0.33) & (hh < lh + 1.5)
    P += col("laundry_w") * heat_phase
    motor = (col("laundry_w") > 0) * 300.0 * drum
    P += motor
    Q += motor * TAN_MOTOR

    # EV: evening sessions, which may run past midnight
    ev_kw = p["ev_kw"]
    if np.any(ev_kw > 0):
        d_prev = np.maximum(d - 1, 0)
        today = dd["ev_plug"][:, d] & (hh >= g("ev_h")) & (hh < g("ev_h") + g("ev_len_h"))
        spill = (
            dd["ev_plug"][:, d_prev]
            & (d > 0)[None, :]
            & (hh + 24.0 < dd["ev_h"][:, d_prev] + dd["ev_len_h"][:, d_prev])
        )
        charging = (today | spill) & (t_ms[None, :] >= col("ev_from_ms"))
        if vacant is not None:
            charging &= ~vacant
        ev = (ev_kw * 1000.0)[:, None] * charging
        P += ev
        Q += ev * TAN_EV

    # space heating (resistive or heat pump) against the outdoor temperature; thermostat
    # cycles with the duty the heat demand needs
    t_out = outdoor_temperature(plan, t_ms)[None, :]
    setpoint = np.where(present, col("setpoint_c"), np.where(col("is_shop"), 15.0, 17.0))
    if vacant is not None:
        setpoint = np.where(vacant, 12.0, setpoint)
    cap = col("heat_cap_w")
    duty = np.clip(col("heat_w_per_k") * np.maximum(setpoint - t_out, 0.0) / cap, 0.0, 1.0)
    heat_on = _cycle_phase(secs + col("heat_phase_s"), col("heat_cycle_s")) < duty
    heat = cap * (heat_on & (t_ms[None, :] >= col("heat_from_ms")))
    P += heat
    Q += heat * col("heat_tan")

    # air conditioning on hot days
    if float(np.max(t_out)) > 24.0:
        ac = np.minimum(col("ac_w_per_k") * np.maximum(t_out - 24.0, 0.0), col("ac_cap_w"))
        ac = ac * (present | col("is_shop") & awake)
        P += ac
        Q += ac * TAN_AC

    # measurement-scale noise: the whole premises' draw fluctuates a little
    noise = rng.standard_normal((n_m, n_t), dtype=np.float32)
    factor = 1.0 + col("noise_p") * noise
    np.maximum(factor, 0.5, out=factor)
    P *= factor
    Q *= factor
    return P, Q
