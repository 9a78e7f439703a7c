"""Theft injected into a REAL meter series, with the same physics as the simulator.

The simulator (``simulator.generate``) models the premises and lets theft change what the
meter reports, never the physics. Here the premises are real: a recorded series of one
meter (ts, p, v, i, pf). Each function returns a copy in which one theft changes what the
meter would have reported from a start time on; the input arrays are never mutated.

What each theft does to the four channels (as in ``FleetGenerator._apply_theft``):

- **full / partial / gradual bypass**: part of the load is wired around the meter, so the
  metered p and i drop by the bypassed share. pf is the load's and v stays what it was:
  the unmetered current still flows through the service drop.
- **register tamper**: the register under-reads p; v, i and pf are measured honestly.
- **reverse meter**: p and pf change sign (current coil reversed); v and i unchanged.
- **meter freeze**: every channel repeats the reading at onset while readings keep arriving.
- **PF tamper**: the reported pf is forged (a low level, or jitter) and the billed p
  follows it: p = v x i x pf_forged.
- **night pump hook**: an unmetered load on a nightly timer. Its current I_pump flows
  through the service impedance Z, so the measured voltage sags by Z x I_pump; the
  metered current does not change, and the (honest) meter's p follows its own measured
  v: p' = p x v'/v.

Scheduled thefts (an evening bypass, a night pump) act on a daily window of local time
(``utc_offset_h``), and list one labelled interval per day, as the simulator's labels do.
``draw_theft`` draws a theft's timing and parameters from a seed, in the simulator's
ranges (``simulator.plan._plan_incidents``), so ``inject`` is seeded end to end.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simulator.config import THEFT_EARLIEST_S, THEFT_TYPES

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
# A theft never starts later than this before the end of the series (simulator.plan).
MIN_THEFT_MS = 6 * HOUR_MS
PUMP_PF = 0.8


@dataclass(frozen=True)
class Resolution:
    """Step of each channel as the meter reports it (rounding of injected values)."""

    p_w: float
    v_v: float
    i_a: float
    pf: float


# AMPds2 minutely files: whole watts, 0.1 V, 0.1 A, two-decimal power factor.
AMPDS2_RESOLUTION = Resolution(p_w=1.0, v_v=0.1, i_a=0.1, pf=0.01)


@dataclass(frozen=True)
class MeterSeries:
    """One meter's readings in time order: ts (UTC epoch ms), p (W), v (V), i (A), pf."""

    ts_ms: np.ndarray
    p: np.ndarray
    v: np.ndarray
    i: np.ndarray
    pf: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.ts_ms)
        for name in ("p", "v", "i", "pf"):
            if np.ndim(getattr(self, name)) != 1 or len(getattr(self, name)) != n:
                raise ValueError(f"{name} must be 1-D with the same length as ts_ms ({n})")
        if n < 2:
            raise ValueError("a series needs at least two readings")
        if np.any(np.diff(self.ts_ms) <= 0):
            raise ValueError("ts_ms must be strictly increasing")

    @classmethod
    def of(cls, ts_ms: Any, p: Any, v: Any, i: Any, pf: Any) -> MeterSeries:
        """Build from any array-likes (ts as int64 ms, channels as float64 copies)."""
        return cls(
            np.array(ts_ms, dtype=np.int64),
            np.array(p, dtype=np.float64),
            np.array(v, dtype=np.float64),
            np.array(i, dtype=np.float64),
            np.array(pf, dtype=np.float64),
        )

    @property
    def step_ms(self) -> int:
        """The cadence: median spacing of the readings."""
        return int(np.median(np.diff(self.ts_ms)))

    @property
    def end_ms(self) -> int:
        """Exclusive end of the series: the last reading plus one cadence step."""
        return int(self.ts_ms[-1]) + self.step_ms

    def __len__(self) -> int:
        return len(self.ts_ms)


@dataclass(frozen=True)
class Injected:
    """A series with one theft in it, and its ground truth (labels.v1 theft entries)."""

    series: MeterSeries
    theft_type: str
    intervals: tuple[tuple[int, int], ...]
    params: dict[str, Any] = field(default_factory=dict)
    unbilled_kwh: tuple[float, ...] = ()

    def label_entries(self) -> list[dict[str, Any]]:
        """The theft list of a ``meterwatch.labels.v1`` meter entry."""
        return [
            {
                "type": self.theft_type,
                "start_ms": a,
                "end_ms": b,
                "params": {**self.params, "unbilled_kwh": round(kwh, 3)},
            }
            for (a, b), kwh in zip(self.intervals, self.unbilled_kwh, strict=True)
        ]


# --- time: spans, daily windows, masks -------------------------------------------------


def _snap(series: MeterSeries, t_ms: int) -> int:
    """Round a time to the series' cadence grid (labels line up with readings)."""
    step = series.step_ms
    t0 = int(series.ts_ms[0])
    return t0 + int(round((t_ms - t0) / step)) * step


def _snap_up(series: MeterSeries, t_ms: int) -> int:
    """The first cadence-grid time at or after ``t_ms``."""
    step = series.step_ms
    t0 = int(series.ts_ms[0])
    return t0 + -(-(t_ms - t0) // step) * step


def theft_span(series: MeterSeries, start_ms: int, end_ms: int | None = None) -> tuple[int, int]:
    """The half-open span [start, end) of a theft, on the cadence grid.

    ``start_ms`` must fall inside the series; ``end_ms`` None means to the series' end.

    >>> s = MeterSeries.of([0, 60_000, 120_000], [1, 1, 1], [120] * 3, [0.1] * 3, [1] * 3)
    >>> theft_span(s, 59_000)
    (60000, 180000)
    >>> theft_span(s, 200_000)
    Traceback (most recent call last):
    ...
    ValueError: start 200000 is outside the series [0, 180000)
    """
    first, end = int(series.ts_ms[0]), series.end_ms
    if not (first <= start_ms < end):
        raise ValueError(f"start {start_ms} is outside the series [{first}, {end})")
    a = _snap(series, start_ms)
    b = end if end_ms is None else min(end, _snap(series, end_ms))
    if b <= a:
        raise ValueError(f"end {end_ms} is not after start {start_ms}")
    return a, b


def daily_windows(
    start_ms: int, end_ms: int, start_h: float, length_h: float, utc_offset_h: float = 0.0
) -> list[tuple[int, int]]:
    """The windows [start_h, start_h + length_h) of each local day, clipped to [start, end).

    >>> daily_windows(0, 2 * DAY_MS, 22.0, 4.0)
    [(0, 7200000), (79200000, 93600000), (165600000, 172800000)]
    """
    if not (0.0 <= start_h < 24.0) or not (0.0 < length_h <= 24.0):
        raise ValueError("daily window: start_h in [0, 24) and length_h in (0, 24] hours")
    offset = int(round(utc_offset_h * HOUR_MS))
    first = (start_ms + offset) // DAY_MS - 1
    last = (end_ms + offset) // DAY_MS + 1
    out = []
    for day in range(first, last + 1):  # a loop over days, not readings
        a = day * DAY_MS - offset + int(round(start_h * HOUR_MS))
        b = a + int(round(length_h * HOUR_MS))
        a, b = max(a, start_ms), min(b, end_ms)
        if b > a:
            out.append((a, b))
    return out


def _intervals(
    series: MeterSeries,
    start_ms: int,
    end_ms: int | None,
    daily_window: tuple[float, float] | None,
    utc_offset_h: float,
) -> tuple[tuple[int, int], ...]:
    a, b = theft_span(series, start_ms, end_ms)
    if daily_window is None:
        return ((a, b),)
    windows = daily_windows(a, b, daily_window[0], daily_window[1], utc_offset_h)
    snapped = [(_snap(series, x), _snap(series, y)) for x, y in windows]
    out = tuple((x, y) for x, y in snapped if y > x)
    if not out:
        raise ValueError(f"no daily window {daily_window} between {a} and {b}")
    return out


def _mask(ts_ms: np.ndarray, intervals: tuple[tuple[int, int], ...]) -> np.ndarray:
    """Readings inside any of the half-open intervals (vectorised over intervals)."""
    starts = np.array([a for a, _ in intervals], dtype=np.int64)
    ends = np.array([b for _, b in intervals], dtype=np.int64)
    k = np.searchsorted(starts, ts_ms, side="right") - 1
    inside = k >= 0
    inside[inside] = ts_ms[inside] < ends[k[inside]]
    return inside


def _round(x: np.ndarray, step: float | None) -> np.ndarray:
    if step is None:
        return x
    return np.asarray(np.rint(x / step) * step)


def _check_fraction(name: str, value: float) -> None:
    if not (0.0 <= value <= 1.0) or math.isnan(value):
        raise ValueError(f"{name} must be in [0, 1], got {value}")


def _finish(
    series: MeterSeries,
    theft_type: str,
    intervals: tuple[tuple[int, int], ...],
    params: dict[str, Any],
    on: np.ndarray,
    new: dict[str, np.ndarray],
    resolution: Resolution | None,
    unmetered_w: np.ndarray | None = None,
) -> Injected:
    """Copy the series with ``new`` channel values where ``on``; round those to the meter's
    resolution; count the energy each interval keeps off the bill."""
    steps = {"p": "p_w", "v": "v_v", "i": "i_a", "pf": "pf"}
    out: dict[str, np.ndarray] = {}
    for name in ("p", "v", "i", "pf"):
        col = getattr(series, name).copy()
        if name in new:
            step = getattr(resolution, steps[name]) if resolution is not None else None
            col[on] = _round(new[name][on], step)
        out[name] = col
    if "pf" in new:
        out["pf"] = np.clip(out["pf"], -1.0, 1.0)
    result = MeterSeries(series.ts_ms.copy(), out["p"], out["v"], out["i"], out["pf"])
    # Energy off the bill: drawn minus billed import, or the unmetered load (the metered
    # load's own small change under a voltage sag is not theft).
    if unmetered_w is None:
        lost_w = np.clip(series.p - np.maximum(result.p, 0.0), 0.0, None)
    else:
        lost_w = unmetered_w
    step_h = series.step_ms / HOUR_MS
    kwh = tuple(
        float(lost_w[(series.ts_ms >= a) & (series.ts_ms < b)].sum()) * step_h / 1000.0
        for a, b in intervals
    )
    return Injected(result, theft_type, intervals, params, kwh)


# --- the theft types ----------------------------------------------------------------------


def _bypass(
    series: MeterSeries,
    theft_type: str,
    intervals: tuple[tuple[int, int], ...],
    metered_share: np.ndarray,
    params: dict[str, Any],
    resolution: Resolution | None,
) -> Injected:
    on = _mask(series.ts_ms, intervals)
    new = {"p": series.p * metered_share, "i": series.i * metered_share}
    return _finish(series, theft_type, intervals, params, on, new, resolution)


def full_bypass(
    series: MeterSeries,
    start_ms: int,
    end_ms: int | None = None,
    *,
    metered_fraction: float = 0.0,
    daily_window: tuple[float, float] | None = None,
    utc_offset_h: float = 0.0,
    resolution: Resolution | None = None,
) -> Injected:
    """The load is wired around the meter: only ``metered_fraction`` of p and i is metered.

    >>> s = MeterSeries.of([0, 60_000, 120_000], [100, 100, 100], [120, 120, 120],
    ...                    [1.0, 1.0, 1.0], [0.8, 0.8, 0.8])
    >>> out = full_bypass(s, 60_000)
    >>> out.series.p.tolist(), out.series.i.tolist(), out.series.v.tolist()
    ([100.0, 0.0, 0.0], [1.0, 0.0, 0.0], [120.0, 120.0, 120.0])
    >>> out.intervals
    ((60000, 180000),)
    """
    _check_fraction("metered_fraction", metered_fraction)
    intervals = _intervals(series, start_ms, end_ms, daily_window, utc_offset_h)
    share = np.full(len(series), metered_fraction)
    params = {"metered_fraction": metered_fraction}
    return _bypass(series, "full_bypass", intervals, share, params, resolution)


def partial_bypass(
    series: MeterSeries,
    start_ms: int,
    end_ms: int | None = None,
    *,
    bypassed_fraction: float,
    resolution: Resolution | None = None,
) -> Injected:
    """A share of the load (e.g. one circuit) is wired around the meter.

    >>> s = MeterSeries.of([0, 60_000, 120_000], [100, 100, 100], [120, 120, 120],
    ...                    [1.0, 1.0, 1.0], [0.8, 0.8, 0.8])
    >>> out = partial_bypass(s, 120_000, bypassed_fraction=0.4)
    >>> out.series.p.tolist(), out.series.i.tolist()
    ([100.0, 100.0, 60.0], [1.0, 1.0, 0.6])
    """
    _check_fraction("bypassed_fraction", bypassed_fraction)
    intervals = _intervals(series, start_ms, end_ms, None, 0.0)
    share = np.full(len(series), 1.0 - bypassed_fraction)
    params = {"bypassed_fraction": bypassed_fraction}
    return _bypass(series, "partial_bypass", intervals, share, params, resolution)


def gradual_bypass(
    series: MeterSeries,
    start_ms: int,
    end_ms: int | None = None,
    *,
    max_fraction: float,
    ramp_days: float,
    resolution: Resolution | None = None,
) -> Injected:
    """The bypassed share grows linearly from 0 to ``max_fraction`` over ``ramp_days``.

    >>> s = MeterSeries.of([0, DAY_MS, 2 * DAY_MS, 3 * DAY_MS], [100] * 4, [120] * 4,
    ...                    [1.0] * 4, [0.8] * 4)
    >>> gradual_bypass(s, DAY_MS, max_fraction=0.5, ramp_days=1.0).series.p.tolist()
    [100.0, 100.0, 50.0, 50.0]
    """
    _check_fraction("max_fraction", max_fraction)
    if not (ramp_days > 0):
        raise ValueError("ramp_days must be > 0")
    intervals = _intervals(series, start_ms, end_ms, None, 0.0)
    grown = np.clip((series.ts_ms - intervals[0][0]) / (ramp_days * DAY_MS), 0.0, 1.0)
    share = 1.0 - max_fraction * grown
    params = {"max_fraction": max_fraction, "ramp_days": ramp_days}
    return _bypass(series, "gradual_bypass", intervals, share, params, resolution)


def register_tamper(
    series: MeterSeries,
    start_ms: int,
    end_ms: int | None = None,
    *,
    under_report_fraction: float,
    resolution: Resolution | None = None,
) -> Injected:
    """The energy register under-reads p; v, i and pf stay honest, so P != V x I x PF.

    >>> s = MeterSeries.of([0, 60_000], [100, 100], [120, 120], [1.0, 1.0], [0.8, 0.8])
    >>> out = register_tamper(s, 60_000, under_report_fraction=0.3)
    >>> out.series.p.tolist(), out.series.i.tolist()
    ([100.0, 70.0], [1.0, 1.0])
    """
    _check_fraction("under_report_fraction", under_report_fraction)
    intervals = _intervals(series, start_ms, end_ms, None, 0.0)
    on = _mask(series.ts_ms, intervals)
    new = {"p": series.p * (1.0 - under_report_fraction)}
    params = {"under_report_fraction": under_report_fraction}
    return _finish(series, "register_tamper", intervals, params, on, new, resolution)


def reverse_meter(
    series: MeterSeries,
    start_ms: int,
    end_ms: int | None = None,
    *,
    resolution: Resolution | None = None,
) -> Injected:
    """The current coil is reversed: p and pf change sign, v and i do not.

    >>> s = MeterSeries.of([0, 60_000], [100, 100], [120, 120], [1.0, 1.0], [0.8, 0.8])
    >>> out = reverse_meter(s, 60_000)
    >>> out.series.p.tolist(), out.series.pf.tolist()
    ([100.0, -100.0], [0.8, -0.8])
    """
    intervals = _intervals(series, start_ms, end_ms, None, 0.0)
    on = _mask(series.ts_ms, intervals)
    new = {"p": -series.p, "pf": -series.pf}
    return _finish(series, "reverse_meter", intervals, {}, on, new, resolution)


def meter_freeze(
    series: MeterSeries,
    start_ms: int,
    end_ms: int | None = None,
) -> Injected:
    """Every channel repeats the reading at onset while readings keep arriving.

    >>> s = MeterSeries.of([0, 60_000, 120_000], [100, 150, 90], [120, 121, 119],
    ...                    [1.0, 1.4, 0.9], [0.8, 0.9, 0.85])
    >>> out = meter_freeze(s, 60_000)
    >>> out.series.p.tolist(), out.series.v.tolist(), out.series.ts_ms.tolist()
    ([100.0, 150.0, 150.0], [120.0, 121.0, 121.0], [0, 60000, 120000])
    """
    intervals = _intervals(series, start_ms, end_ms, None, 0.0)
    on = _mask(series.ts_ms, intervals)
    onset = int(np.searchsorted(series.ts_ms, intervals[0][0], side="left"))
    new = {name: np.full(len(series), getattr(series, name)[onset]) for name in ("p", "v", "i")}
    new["pf"] = np.full(len(series), series.pf[onset])
    return _finish(series, "meter_freeze", intervals, {}, on, new, None)


def pf_tamper(
    series: MeterSeries,
    start_ms: int,
    end_ms: int | None = None,
    *,
    mode: str,
    pf_level: float = 0.4,
    seed: int = 0,
    resolution: Resolution | None = None,
) -> Injected:
    """The reported pf is forged (``low``: about ``pf_level``; ``jitter``: uniform 0.1-1)
    and the billed power follows it: p = v x i x pf.

    >>> s = MeterSeries.of([0, 60_000], [96, 96], [120, 120], [1.0, 1.0], [0.8, 0.8])
    >>> out = pf_tamper(s, 60_000, mode="low", pf_level=0.4, seed=1, resolution=AMPDS2_RESOLUTION)
    >>> out.series.pf.round(2).tolist(), out.series.p.tolist()
    ([0.8, 0.41], [96.0, 49.0])
    """
    if mode not in ("low", "jitter"):
        raise ValueError(f"mode must be 'low' or 'jitter', got {mode!r}")
    _check_fraction("pf_level", pf_level)
    intervals = _intervals(series, start_ms, end_ms, None, 0.0)
    on = _mask(series.ts_ms, intervals)
    rng = np.random.default_rng(seed)
    if mode == "jitter":
        forged = rng.uniform(0.1, 1.0, len(series))
    else:
        forged = np.clip(pf_level + rng.normal(0.0, 0.01, len(series)), 0.0, 1.0)
    if resolution is not None:  # p follows the pf as the meter reports it
        forged = _round(forged, resolution.pf)
    new = {"pf": forged, "p": series.v * series.i * forged}
    params = {"mode": mode, "pf_level": pf_level, "seed": seed}
    return _finish(series, "pf_tamper", intervals, params, on, new, resolution)


def night_pump_hook(
    series: MeterSeries,
    start_ms: int,
    end_ms: int | None = None,
    *,
    pump_w: float,
    z_ohm: float,
    pump_pf: float = PUMP_PF,
    daily_window: tuple[float, float] = (22.5, 6.0),
    utc_offset_h: float = 0.0,
    resolution: Resolution | None = None,
) -> Injected:
    """An unmetered pump hooked before the meter runs on a nightly timer. Its current
    pump_w / (pump_pf x v) flows through the service impedance ``z_ohm``: the measured
    voltage sags by Z x I_pump; metered i is unchanged, and p follows the measured v.

    >>> s = MeterSeries.of([0, HOUR_MS, 2 * HOUR_MS], [120, 120, 120], [120, 120, 120],
    ...                    [1.0, 1.0, 1.0], [1.0, 1.0, 1.0])
    >>> out = night_pump_hook(s, 0, pump_w=1920, z_ohm=0.05, daily_window=(1.0, 1.0))
    >>> out.series.v.tolist(), out.series.i.tolist(), out.series.p.tolist()
    ([120.0, 119.0, 120.0], [1.0, 1.0, 1.0], [120.0, 119.0, 120.0])
    >>> out.intervals, out.unbilled_kwh
    (((3600000, 7200000),), (1.92,))
    """
    if not (pump_w > 0) or not (z_ohm >= 0) or not (0.0 < pump_pf <= 1.0):
        raise ValueError("pump_w must be > 0, z_ohm >= 0 and pump_pf in (0, 1]")
    intervals = _intervals(series, start_ms, end_ms, daily_window, utc_offset_h)
    on = _mask(series.ts_ms, intervals)
    i_pump = pump_w / (pump_pf * series.v)
    v_sagged = series.v - z_ohm * i_pump
    if resolution is not None:
        v_sagged = _round(v_sagged, resolution.v_v)
    # an honest meter: P = V x I x PF with its own (sagged) voltage reading
    new = {"v": v_sagged, "p": series.p * v_sagged / series.v}
    params = {"pump_w": pump_w, "pump_pf": pump_pf, "z_ohm": z_ohm}
    unmetered = np.where(on, pump_w, 0.0)
    return _finish(series, "night_pump_hook", intervals, params, on, new, resolution, unmetered)


# --- seeded draw and dispatch -----------------------------------------------------------------


@dataclass(frozen=True)
class TheftDraw:
    """When and how one theft happens (drawn by ``draw_theft``)."""

    theft_type: str
    start_ms: int
    end_ms: int | None
    params: dict[str, Any]
    daily_window: tuple[float, float] | None = None


def nominal_voltage(series: MeterSeries) -> float:
    """The service's nominal voltage (120 or 230 V), from the median reading.

    >>> nominal_voltage(MeterSeries.of([0, 1], [0, 0], [118.9, 121.0], [0, 0], [1, 1]))
    120.0
    """
    median = float(np.median(series.v))
    return 120.0 if abs(median - 120.0) < abs(median - 230.0) else 230.0


def draw_theft(
    theft_type: str,
    series: MeterSeries,
    rng: np.random.Generator,
    earliest_ms: int | None = None,
) -> TheftDraw:
    """Draw a theft's start, end and parameters in the simulator's ranges. The start is a
    reading time >= ``earliest_ms`` (default: 2 days after the first reading, after the
    engine's warm-up); a bounded theft is placed so that it ends inside the series.

    >>> s = MeterSeries.of(np.arange(0, 10 * DAY_MS, HOUR_MS), np.ones(240), np.full(240, 120.0),
    ...                    np.full(240, 0.01), np.ones(240))
    >>> d = draw_theft("meter_freeze", s, np.random.default_rng(0))
    >>> d.start_ms >= 2 * DAY_MS and d.end_ms <= s.end_ms
    True
    """
    if theft_type not in THEFT_TYPES:
        raise ValueError(f"unknown theft type {theft_type!r}; known: {', '.join(THEFT_TYPES)}")
    first, end = int(series.ts_ms[0]), series.end_ms
    earliest = first + THEFT_EARLIEST_S * 1000 if earliest_ms is None else earliest_ms
    if end - earliest < MIN_THEFT_MS:
        raise ValueError(
            f"the series is too short: a theft starts at the earliest {earliest} and needs "
            f"{MIN_THEFT_MS // HOUR_MS} h before the end {end}"
        )
    u = rng.uniform
    params: dict[str, Any] = {}
    window: tuple[float, float] | None = None
    length_ms: float | None  # None: the theft lasts to the end of the series
    if theft_type == "full_bypass":
        length_ms = u(3, 10) * DAY_MS
        window = (round(u(16.5, 19.0), 2), round(u(3.0, 5.5), 2))
        params = {"metered_fraction": round(u(0.0, 0.02), 4)}
    elif theft_type == "night_pump_hook":
        length_ms = u(4, 10) * DAY_MS
        window = (round(u(22.0, 23.5), 2), round(u(4.0, 7.0), 2))
        # service drop plus a share of the transformer, per unit alike at 120 and 230 V
        z_scale = (nominal_voltage(series) / 230.0) ** 2
        params = {
            "pump_w": round(u(1500, 3000), 1),
            "z_ohm": round(u(0.09, 0.25) * z_scale, 4),
        }
    elif theft_type == "partial_bypass":
        length_ms = u(2, 7) * DAY_MS
        params = {"bypassed_fraction": round(u(0.3, 0.7), 3)}
    elif theft_type == "register_tamper":
        length_ms = None
        params = {"under_report_fraction": round(u(0.3, 0.7), 3)}
    elif theft_type == "meter_freeze":
        length_ms = u(3 * HOUR_MS, 2 * DAY_MS)
    elif theft_type in ("reverse_meter", "pf_tamper"):
        length_ms = u(1, 5) * DAY_MS
        if theft_type == "pf_tamper":
            mode = "low" if rng.random() < 0.5 else "jitter"
            params = {
                "mode": mode,
                "pf_level": round(u(0.3, 0.5), 3),
                "seed": int(rng.integers(2**31)),
            }
    else:  # gradual_bypass
        length_ms = None
        params = {"max_fraction": round(u(0.4, 0.8), 3), "ramp_days": round(u(4.0, 10.0), 2)}
    if length_ms is None:
        latest = end - MIN_THEFT_MS
    else:
        latest = max(earliest, end - int(length_ms))
        length_ms = min(length_ms, end - earliest)
    start = _snap_up(series, int(u(earliest, latest)))
    stop = None if length_ms is None else min(end, _snap(series, start + int(length_ms)))
    return TheftDraw(theft_type, start, stop, params, window)


def apply_theft(
    series: MeterSeries,
    draw: TheftDraw,
    utc_offset_h: float = 0.0,
    resolution: Resolution | None = None,
) -> Injected:
    """Inject a drawn theft (dispatch to the function of its type).

    >>> s = MeterSeries.of([0, 60_000], [100, 100], [120, 120], [1.0, 1.0], [0.8, 0.8])
    >>> out = apply_theft(s, TheftDraw("partial_bypass", 60_000, None, {"bypassed_fraction": 0.5}))
    >>> out.series.p.tolist(), out.label_entries()[0]["params"]
    ([100.0, 50.0], {'bypassed_fraction': 0.5, 'unbilled_kwh': 0.001})
    """
    kind, start, end, params = draw.theft_type, draw.start_ms, draw.end_ms, dict(draw.params)
    if kind == "full_bypass":
        return full_bypass(
            series,
            start,
            end,
            daily_window=draw.daily_window,
            utc_offset_h=utc_offset_h,
            resolution=resolution,
            **params,
        )
    if kind == "night_pump_hook":
        return night_pump_hook(
            series,
            start,
            end,
            daily_window=draw.daily_window or (22.5, 6.0),
            utc_offset_h=utc_offset_h,
            resolution=resolution,
            **params,
        )
    if kind == "meter_freeze":
        return meter_freeze(series, start, end)
    simple: dict[str, Callable[..., Injected]] = {
        "partial_bypass": partial_bypass,
        "register_tamper": register_tamper,
        "reverse_meter": reverse_meter,
        "pf_tamper": pf_tamper,
        "gradual_bypass": gradual_bypass,
    }
    if kind not in simple:
        raise ValueError(f"unknown theft type {kind!r}; known: {', '.join(THEFT_TYPES)}")
    return simple[kind](series, start, end, resolution=resolution, **params)


def inject(
    series: MeterSeries,
    theft_type: str,
    seed: int,
    *,
    utc_offset_h: float = 0.0,
    resolution: Resolution | None = None,
    earliest_ms: int | None = None,
) -> Injected:
    """Draw one theft of ``theft_type`` from ``seed`` and inject it (same seed, same output).

    >>> n = 4 * 24
    >>> s = MeterSeries.of(np.arange(n) * HOUR_MS, np.full(n, 96.0), np.full(n, 120.0),
    ...                    np.full(n, 1.0), np.full(n, 0.8))
    >>> out = inject(s, "reverse_meter", seed=3)
    >>> bool((out.series.p < 0).any()) and out.intervals[0][0] >= 2 * DAY_MS
    True
    >>> inject(s, "magnet", seed=3)
    Traceback (most recent call last):
    ...
    ValueError: unknown theft type 'magnet'; known: full_bypass, partial_bypass, ...
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 41]))
    draw = draw_theft(theft_type, series, rng, earliest_ms)
    return apply_theft(series, draw, utc_offset_h, resolution)


# --- an evaluation fleet from one real meter --------------------------------------------------


def interval_readings(series: MeterSeries, minutes: int) -> MeterSeries:
    """The series as a head-end exports ``minutes``-long interval readings: P, V and I are
    the interval's means, PF is mean(V*I*PF) / mean(V*I) (the meter's own power factor over
    the interval, from its registers: a forged P does not forge it), stamped with the
    interval's last reading, at export precision (0.1 W, 0.1 V, 0.01 A, 0.01). Run after
    injection: a meter integrates what it measures, theft included. Intervals are aligned
    to the clock (a 15-minute interval starts at :00, :15, ...).

    >>> s = MeterSeries.of(np.arange(4) * 60_000, [10.0, 10.0, 30.0, 0.0],
    ...                    [120.0, 120.0, 118.0, 121.0], [0.1, 0.1, 0.3, 0.0], [0.8] * 4)
    >>> out = interval_readings(s, 2)
    >>> out.ts_ms.tolist(), out.p.tolist(), out.i.tolist(), out.pf.tolist()
    ([60000, 180000], [10.0, 15.0], [0.1, 0.15], [0.8, 0.8])
    """
    if minutes < 1:
        raise ValueError("an interval is at least one minute")
    bucket = series.ts_ms // (minutes * 60_000)
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    if len(starts) < 2:
        raise ValueError(f"the series spans fewer than two {minutes}-minute intervals")
    counts = np.diff(np.r_[starts, len(bucket)])

    def mean(x: np.ndarray) -> np.ndarray:
        return np.add.reduceat(x, starts) / counts

    s = mean(series.v * series.i)
    pf = np.where(s > 0, mean(series.v * series.i * series.pf) / np.where(s > 0, s, 1.0), 1.0)
    return MeterSeries.of(
        series.ts_ms[np.r_[starts[1:] - 1, len(bucket) - 1]],
        np.round(mean(series.p), 1),
        np.round(mean(series.v), 1),
        np.round(mean(series.i), 2),
        np.round(np.clip(pf, -1.0, 1.0), 2),
    )


def fleet_meter_id(prefix: str, kind: str, k: int) -> str:
    """The id of copy ``k`` of a theft type; clean copies are ``PREFIX-clean-K``.

    >>> fleet_meter_id("AMPDS2-B1E", "register_tamper", 2)
    'AMPDS2-B1E-register_tamper-2'
    """
    return f"{prefix}-{kind}-{k}"


@dataclass(frozen=True)
class InjectedFleet:
    """Copies of one real meter, each with one theft (or none), and their labels."""

    meter_ids: list[str]
    copies: list[MeterSeries]
    labels: dict[str, Any]

    def at_interval(self, minutes: int) -> InjectedFleet:
        """Every copy as ``minutes``-long interval readings (:func:`interval_readings`);
        the theft intervals stay as they are (ms)."""
        copies = [interval_readings(c, minutes) for c in self.copies]
        labels = {
            **self.labels,
            "cadence_s": copies[0].step_ms // 1000,
            "readings": sum(len(c) for c in copies),
            "source": {**self.labels.get("source", {}), "interval_min": minutes},
        }
        return InjectedFleet(self.meter_ids, copies, labels)

    def columns(self) -> dict[str, np.ndarray]:
        """The replay file's columns, time-major (each minute, every copy), like a stream."""
        n_meters, n = len(self.copies), len(self.copies[0])

        def order(cols: list[np.ndarray]) -> np.ndarray:  # (meters x time) -> time-major
            return np.stack(cols).T.reshape(-1)

        return {
            "meter_id": np.tile(np.array(self.meter_ids, dtype=object), n),
            "ts": np.repeat(self.copies[0].ts_ms, n_meters),
            "power_w": order([c.p for c in self.copies]),
            "voltage_v": order([c.v for c in self.copies]),
            "current_a": order([c.i for c in self.copies]),
            "pf": order([c.pf for c in self.copies]),
        }


def build_fleet(
    series: MeterSeries,
    *,
    theft_types: tuple[str, ...] = THEFT_TYPES,
    per_type: int = 2,
    clean: int = 2,
    seed: int = 0,
    utc_offset_h: float = 0.0,
    resolution: Resolution | None = None,
    prefix: str = "REAL",
    source: str = "",
) -> InjectedFleet:
    """``per_type`` copies of ``series`` per theft type, each with one theft drawn from
    (seed, type, copy), plus ``clean`` untouched copies; labels in ``meterwatch.labels.v1``.

    >>> n = 4 * 24
    >>> s = MeterSeries.of(np.arange(n) * HOUR_MS, np.full(n, 96.0), np.full(n, 120.0),
    ...                    np.full(n, 1.0), np.full(n, 0.8))
    >>> fleet = build_fleet(s, theft_types=("reverse_meter",), per_type=1, clean=1)
    >>> fleet.meter_ids
    ['REAL-reverse_meter-1', 'REAL-clean-1']
    >>> [len(m["theft"]) for m in fleet.labels["meters"]]
    [1, 0]
    """
    unknown = [t for t in theft_types if t not in THEFT_TYPES]
    if unknown:
        raise ValueError(f"unknown theft type(s) {unknown}; known: {', '.join(THEFT_TYPES)}")
    if per_type < 0 or clean < 0 or per_type * len(theft_types) + clean == 0:
        raise ValueError("the fleet needs at least one meter (per_type, clean >= 0)")
    meter_ids: list[str] = []
    copies: list[MeterSeries] = []
    entries: list[dict[str, Any]] = []

    def entry(meter_id: str, theft: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "meter_id": meter_id,
            "gateway_id": f"GW-{prefix}",
            "transformer_id": f"TX-{prefix}",
            "household": "house",
            "theft": theft,
            "behaviours": [],
            "faults": [],
        }

    for type_index, kind in enumerate(theft_types):
        for k in range(1, per_type + 1):
            copy_seed = int(np.random.SeedSequence([seed, type_index, k]).generate_state(1)[0])
            out = inject(series, kind, copy_seed, utc_offset_h=utc_offset_h, resolution=resolution)
            meter_ids.append(fleet_meter_id(prefix, kind, k))
            copies.append(out.series)
            entries.append(entry(meter_ids[-1], out.label_entries()))
    for k in range(1, clean + 1):
        meter_ids.append(fleet_meter_id(prefix, "clean", k))
        copies.append(series)
        entries.append(entry(meter_ids[-1], []))
    labels = {
        "schema": "meterwatch.labels.v1",
        "seed": seed,
        "start_ms": int(series.ts_ms[0]),
        "end_ms": series.end_ms,
        "cadence_s": series.step_ms // 1000,
        "nominal_voltage_v": nominal_voltage(series),
        "readings": len(series) * len(copies),
        "source": {"file": source, "utc_offset_h": utc_offset_h, "injected": True},
        "meters": entries,
    }
    return InjectedFleet(meter_ids, copies, labels)
