"""Readings from the plan, in time chunks: physics, metering, theft, transport faults.

Physics per chunk (all vectorised over meters x time steps):

1. Premises load P, Q from the appliance model (``simulator.load``).
2. Every current that flows, metered or not (a bypassed circuit, a hooked pump), passes
   the service drop and the transformer. Transformer voltage = feeder source voltage
   minus Z_tx x (sum of its meters' currents); a meter's voltage = its transformer's
   minus Z_drop x (its own current), plus calibration offset and noise.
3. The meter measures V and I and reports P = V * I * PF (honest meter).
4. Theft changes what the meter reports (never the physics above).
5. Readings are rounded to the meters' resolution.
6. Transport faults: gaps (rows removed), malformed records, clock skew (reported ts
   shifted), late rows and duplicates (arrive later); rows come out in arrival order.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from simulator.config import (
    MALFORMED_KINDS,
    RESOLUTION_I,
    RESOLUTION_P,
    RESOLUTION_PF,
    RESOLUTION_V,
)
from simulator.load import household_power, local_time
from simulator.plan import FleetPlan, Incident, IntervalSet

# Elements (meters x steps) generated per chunk: large enough to amortise numpy call
# overhead, small enough to stay in a few tens of MB.
CHUNK_ELEMENTS = 1 << 16
NUMERIC_FIELDS: tuple[str, ...] = ("power_w", "voltage_v", "current_a", "pf")
GARBAGE_TS: tuple[str, ...] = (
    "garbage",
    "2026-01-05T25:61:00+00:00",
    "##ERR##",
    "0x1F3A9C",
    "NaT?",
)


@dataclass
class Chunk:
    """Readings of one chunk, in arrival order. Index columns refer to the plan."""

    meter: np.ndarray  # int64 meter index
    ts_ms: np.ndarray  # int64 reported timestamp (with gateway clock skew)
    p: np.ndarray
    v: np.ndarray
    i: np.ndarray
    pf: np.ndarray
    missing: np.ndarray  # int8: -1, or index into NUMERIC_FIELDS that is missing
    garbage_ts: np.ndarray  # int8: -1, or index into GARBAGE_TS (unparsable ts)

    def __len__(self) -> int:
        return len(self.meter)

    @classmethod
    def concat(cls, parts: list[Chunk]) -> Chunk:
        return cls(
            *(np.concatenate([getattr(c, f) for c in parts]) for f in cls.__dataclass_fields__)
        )

    def take(self, idx: np.ndarray) -> Chunk:
        return Chunk(*(getattr(self, f)[idx] for f in self.__dataclass_fields__))


@dataclass
class MalformedRecord:
    meter: int
    t_true_ms: int
    ts_ms: int
    kind: str
    field: str


@dataclass
class GenerationLog:
    """What generation learnt that the plan could not know up front."""

    malformed: list[MalformedRecord] = field(default_factory=list)
    rows: int = 0
    # (meter, interval index of its theft) -> energy kept off the bill, Wh
    unbilled_wh: dict[tuple[int, int], float] = field(default_factory=dict)


def cover(
    iset: IntervalSet, t_ms: np.ndarray, n_rows: int, rows: np.ndarray | None = None
) -> np.ndarray:
    """Sum of (whole-number) interval values over each (row, time step), (n_rows, len(t_ms)).

    Half-open intervals: a step at t is covered when start <= t < end. ``rows``
    overrides ``iset.rows`` (to map meters to a local index).
    """
    out = np.zeros((n_rows, len(t_ms) + 1), dtype=np.int32)
    if len(iset):
        r = iset.rows if rows is None else rows
        c0 = np.searchsorted(t_ms, iset.start_ms, "left")
        c1 = np.searchsorted(t_ms, iset.end_ms, "left")
        sel = c1 > c0
        if np.any(sel):
            # values are whole numbers (1, or seconds): integer sums are exact and fast
            value = np.rint(iset.value[sel]).astype(np.int32)
            np.add.at(out, (r[sel], c0[sel]), value)
            np.add.at(out, (r[sel], c1[sel]), -value)
            np.cumsum(out, axis=1, out=out)
    return out[:, :-1]


def cover_max(iset: IntervalSet, t_ms: np.ndarray, n_rows: int) -> np.ndarray:
    """The largest (whole-number) interval value over each (row, time step), 0 where none
    covers it: for delays, where two overlapping stretches of one meter must not add up
    (a reading retried by two overlapping retries arrives after the longer retry delay,
    not after their sum, which no label would state)."""
    out = np.zeros((n_rows, len(t_ms)), dtype=np.int32)
    if len(iset):
        c0 = np.searchsorted(t_ms, iset.start_ms, "left")
        c1 = np.searchsorted(t_ms, iset.end_ms, "left")
        value = np.rint(iset.value).astype(np.int32)
        for k in np.flatnonzero(c1 > c0).tolist():  # the few stretches within this chunk
            span = out[iset.rows[k], c0[k] : c1[k]]
            np.maximum(span, value[k], out=span)
    return out


def incident_set(incidents: list[Incident]) -> tuple[np.ndarray, IntervalSet]:
    """(meters, intervals mapped to local rows 0..k-1) of a group of incidents."""
    meters = np.array([inc.meter for inc in incidents], dtype=np.int64)
    rows, starts, ends = [], [], []
    for k, inc in enumerate(incidents):
        for a, b in inc.intervals:
            rows.append(k)
            starts.append(a)
            ends.append(b)
    iset = IntervalSet(
        np.asarray(rows, dtype=np.int64),
        np.asarray(starts, dtype=np.int64),
        np.asarray(ends, dtype=np.int64),
        np.ones(len(rows)),
    )
    return meters, iset


def _group(incidents: list[Incident]) -> dict[str, list[Incident]]:
    out: dict[str, list[Incident]] = {}
    for inc in incidents:
        out.setdefault(inc.type, []).append(inc)
    return out


def _round(x: np.ndarray, resolution: float) -> np.ndarray:
    scale = 1.0 / resolution
    return np.rint(x * scale) / scale


class FleetGenerator:
    """Iterates a plan's readings chunk by chunk, in arrival order."""

    def __init__(self, plan: FleetPlan) -> None:
        self.plan = plan
        self.log = GenerationLog()
        self._thefts = {k: (v, *incident_set(v)) for k, v in _group(plan.thefts).items()}
        self._behaviours = {k: (v, *incident_set(v)) for k, v in _group(plan.behaviours).items()}
        self._frozen: dict[int, tuple[float, float, float, float]] = {}
        # rows of every thief, to measure what each theft leaves unbilled
        self._thief_rows = np.array(sorted({inc.meter for inc in plan.thefts}), dtype=np.int64)

    # --- behaviour masks for the load model ----------------------------------------
    def _behaviour_masks(self, t_ms: np.ndarray) -> dict[str, np.ndarray]:
        m = self.plan.n_meters
        masks: dict[str, np.ndarray] = {}
        if "vacancy" in self._behaviours:
            _, meters, iset = self._behaviours["vacancy"]
            sub = cover(iset, t_ms, len(meters)) > 0.5
            if sub.any():
                full = np.zeros((m, len(t_ms)), dtype=bool)
                full[meters] = sub
                masks["vacancy"] = full
        if "appliance_fault" in self._behaviours:
            incs, meters, iset = self._behaviours["appliance_fault"]
            sub = cover(iset, t_ms, len(meters)) > 0.5
            for name, fault in (
                ("fault_fridge", "fridge_compressor"),
                ("fault_water_heater", "water_heater_stuck_on"),
            ):
                pick = np.array([inc.params.get("fault") == fault for inc in incs])
                if sub[pick].any():
                    full = np.zeros((m, len(t_ms)), dtype=bool)
                    full[meters[pick]] = sub[pick]
                    masks[name] = full
        return masks

    def _feeder_source(self, t_ms: np.ndarray) -> np.ndarray:
        """Source voltage of each transformer (V), (n_tx, T): tap setting, the slow
        upstream walk of its gateway's feeder, and the feeder's daily load sag."""
        plan = self.plan
        cfg = plan.config
        _, h = local_time(plan, t_ms)
        bins = np.clip(
            (t_ms - cfg.start_ms) // plan.feeder_bin_ms, 0, plan.feeder_walk.shape[1] - 1
        )
        walk = plan.feeder_walk[plan.tx_gw[:, None], bins[None, :]]
        daily = -0.008 * np.exp(-(((h - 19.0) / 2.5) ** 2)) + 0.004 * np.exp(
            -(((h - 3.5) / 3.0) ** 2)
        )
        return np.asarray(
            cfg.nominal_voltage_v * (plan.tx["tap_pu"][:, None] + walk + daily[None, :])
        )

    def chunks(self) -> Iterator[Chunk]:
        plan = self.plan
        cfg = plan.config
        m = plan.n_meters
        step_ms = cfg.cadence_s * 1000
        per_chunk = max(1, CHUNK_ELEMENTS // m)
        pending: Chunk | None = None
        pending_arrival = np.zeros(0, dtype=np.int64)
        for index, c0 in enumerate(range(0, cfg.steps, per_chunk)):
            c1 = min(cfg.steps, c0 + per_chunk)
            t_ms = cfg.start_ms + np.arange(c0, c1, dtype=np.int64) * step_ms
            rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 10, index]))
            chunk, arrival = self._transport(self._grid(t_ms, rng), t_ms, rng)
            if pending is not None:
                chunk = Chunk.concat([pending, chunk])
                arrival = np.concatenate([pending_arrival, arrival])
            # arrival order; ties broken by meter (meters are numbered gateway by gateway)
            order = np.argsort((arrival - t_ms[0]) * m + chunk.meter, kind="stable")
            chunk, arrival = chunk.take(order), arrival[order]
            if c1 < cfg.steps:  # rows arriving after this chunk's end wait for the next one
                horizon = cfg.start_ms + c1 * step_ms
                cut = int(np.searchsorted(arrival, horizon, "left"))
                pending = chunk.take(np.arange(cut, len(chunk)))
                pending_arrival = arrival[cut:]
                chunk = chunk.take(np.arange(cut))
            self.log.rows += len(chunk)
            yield chunk

    # --- physics and metering on the (meters x steps) grid ----------------------------
    def _grid(self, t_ms: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        plan = self.plan
        cfg = plan.config
        n_t = len(t_ms)
        P, Q = household_power(plan, t_ms, self._behaviour_masks(t_ms), rng)
        S = np.hypot(P, Q)
        pf = P / S

        v_src_tx = self._feeder_source(t_ms)
        v_src = v_src_tx[plan.meter_tx]
        i_phys = S / v_src
        if "night_pump_hook" in self._thefts:  # unmetered, but it flows through the drop
            incs, meters, iset = self._thefts["night_pump_hook"]
            on = cover(iset, t_ms, len(meters)) > 0.5
            pump_w = np.array([inc.params["pump_w"] for inc in incs])[:, None]
            pump_pf = np.array([inc.params["pump_pf"] for inc in incs])[:, None]
            i_phys[meters] += on * pump_w / (pump_pf * v_src[meters])
        i_tx = np.add.reduceat(i_phys, plan.tx_start, axis=0)
        v_tx = v_src_tx - plan.tx["z_ohm"][:, None] * i_tx
        v_true = v_tx[plan.meter_tx] - plan.p["z_drop_ohm"][:, None] * i_phys
        noise = rng.standard_normal((plan.n_meters, n_t), dtype=np.float32)
        v_meas = (
            v_true * (1.0 + plan.p["v_cal"][:, None]) + (0.0004 * cfg.nominal_voltage_v) * noise
        )
        # The meter reports the active power drawn and the current consistent with its
        # own voltage reading: P = V * I * PF holds on an honest meter.
        p_meas = P
        i_meas = P / (v_meas * pf)
        out = {"p": p_meas, "v": v_meas, "i": i_meas, "pf": pf}
        honest_p = out["p"][self._thief_rows]
        self._apply_theft(out, t_ms, rng)
        out["p"] = _round(out["p"], RESOLUTION_P)
        out["v"] = _round(out["v"], RESOLUTION_V)
        out["i"] = _round(out["i"], RESOLUTION_I)
        out["pf"] = _round(out["pf"], RESOLUTION_PF)
        self._apply_freeze(out, t_ms)
        if len(self._thief_rows):
            self._count_unbilled(honest_p, out["p"][self._thief_rows], t_ms)
        return out

    def _count_unbilled(self, honest_p: np.ndarray, billed_p: np.ndarray, t_ms: np.ndarray) -> None:
        """Energy each theft interval keeps off the bill (Wh): drawn minus billed import,
        plus the unmetered pump. Comms gaps do not change it: the load still runs."""
        step_h = self.plan.config.cadence_s / 3600.0
        row_of = {int(m): k for k, m in enumerate(self._thief_rows)}
        lost = np.clip(honest_p - np.maximum(billed_p, 0.0), 0.0, None)
        for inc in self.plan.thefts:
            row = row_of[inc.meter]
            for n, (a, b) in enumerate(inc.intervals):
                c0 = int(np.searchsorted(t_ms, a, "left"))
                c1 = int(np.searchsorted(t_ms, b, "left"))
                if c1 <= c0:
                    continue
                if inc.type == "night_pump_hook":
                    wh = float(inc.params["pump_w"]) * (c1 - c0) * step_h
                else:
                    wh = float(lost[row, c0:c1].sum()) * step_h
                key = (inc.meter, n)
                self.log.unbilled_wh[key] = self.log.unbilled_wh.get(key, 0.0) + wh

    def _apply_theft(
        self, out: dict[str, np.ndarray], t_ms: np.ndarray, rng: np.random.Generator
    ) -> None:
        for kind, (incs, meters, iset) in self._thefts.items():
            on = cover(iset, t_ms, len(meters)) > 0.5
            if kind in ("night_pump_hook", "meter_freeze") or not on.any():
                continue  # the pump only shows in voltage; freeze acts after rounding
            p, i, pf, v = out["p"][meters], out["i"][meters], out["pf"][meters], out["v"][meters]
            if kind in ("full_bypass", "partial_bypass", "gradual_bypass"):
                # current through the meter is the metered share of the load; V unchanged
                if kind == "full_bypass":
                    share = np.array([inc.params["metered_fraction"] for inc in incs])[:, None]
                    share = np.broadcast_to(share, on.shape)
                elif kind == "partial_bypass":
                    frac = np.array([inc.params["bypassed_fraction"] for inc in incs])[:, None]
                    share = np.broadcast_to(1.0 - frac, on.shape)
                else:
                    t0 = np.array([inc.intervals[0][0] for inc in incs])[:, None]
                    ramp_ms = (
                        np.array([inc.params["ramp_days"] for inc in incs])[:, None] * 86_400_000
                    )
                    top = np.array([inc.params["max_fraction"] for inc in incs])[:, None]
                    grown = np.clip((t_ms[None, :] - t0) / ramp_ms, 0.0, 1.0)
                    share = 1.0 - top * grown
                p = np.where(on, p * share, p)
                i = np.where(on, i * share, i)
            elif kind == "register_tamper":
                frac = np.array([inc.params["under_report_fraction"] for inc in incs])[:, None]
                p = np.where(on, p * (1.0 - frac), p)
            elif kind == "reverse_meter":
                p = np.where(on, -p, p)
                pf = np.where(on, -pf, pf)
            elif kind == "pf_tamper":
                level = np.array([inc.params["pf_level"] for inc in incs])[:, None]
                jitter = np.array([inc.params["mode"] == "jitter" for inc in incs])[:, None]
                forced = np.where(
                    jitter, rng.uniform(0.1, 1.0, on.shape), level + rng.normal(0, 0.01, on.shape)
                )
                pf = np.where(on, forced, pf)
                p = np.where(on, v * i * pf, p)  # billed power follows the forged PF
            out["p"][meters], out["i"][meters], out["pf"][meters] = p, i, pf

    def _apply_freeze(self, out: dict[str, np.ndarray], t_ms: np.ndarray) -> None:
        if "meter_freeze" not in self._thefts:
            return
        incs, _, _ = self._thefts["meter_freeze"]
        for k, inc in enumerate(incs):  # a handful of meters: loop per incident, not reading
            a, b = inc.intervals[0]
            c0 = int(np.searchsorted(t_ms, a, "left"))
            c1 = int(np.searchsorted(t_ms, b, "left"))
            if c1 <= c0:
                continue
            if k not in self._frozen and c0 < len(t_ms) and t_ms[c0] == a:
                row = inc.meter
                self._frozen[k] = (
                    float(out["p"][row, c0]),
                    float(out["v"][row, c0]),
                    float(out["i"][row, c0]),
                    float(out["pf"][row, c0]),
                )
            values = self._frozen.get(k)
            if values is None:
                continue
            for f, value in zip(("p", "v", "i", "pf"), values, strict=True):
                out[f][inc.meter, c0:c1] = value

    # --- transport faults --------------------------------------------------------------
    def _transport(
        self, grid: dict[str, np.ndarray], t_ms: np.ndarray, rng: np.random.Generator
    ) -> tuple[Chunk, np.ndarray]:
        plan = self.plan
        cfg = plan.config
        m, n_t = plan.n_meters, len(t_ms)
        keep = ~(cover(plan.gaps, t_ms, m) > 0.5)
        keep_t = keep.T  # time-major: rows come out step by step, meter by meter
        meter = np.broadcast_to(np.arange(m, dtype=np.int64)[:, None], (m, n_t)).T[keep_t]
        t_true = np.broadcast_to(t_ms[None, :], (m, n_t)).T[keep_t]
        cols = {f: grid[f].T[keep_t] for f in ("p", "v", "i", "pf")}
        n = len(meter)
        delay_s = cover_max(plan.late, t_ms, m).T[keep_t]
        retry_s = cover_max(plan.duplicates, t_ms, m).T[keep_t]
        skew_gw = cover(plan.skew, t_ms, len(plan.gateway_ids))
        skew_s = skew_gw[plan.meter_gw].T[keep_t]
        ts = t_true + np.rint(skew_s * 1000.0).astype(np.int64)
        missing = np.full(n, -1, dtype=np.int8)
        garbage = np.full(n, -1, dtype=np.int8)

        if cfg.malformed_share > 0 and n:
            hit = np.flatnonzero(rng.random(n) < cfg.malformed_share)
            kinds = rng.integers(0, len(MALFORMED_KINDS), len(hit))
            fields = rng.integers(0, len(NUMERIC_FIELDS), len(hit))
            names = ("p", "v", "i", "pf")
            for k_idx, kind in enumerate(MALFORMED_KINDS):
                sel = hit[kinds == k_idx]
                fsel = fields[kinds == k_idx]
                if not len(sel):
                    continue
                if kind == "unparsable":
                    garbage[sel] = rng.integers(0, len(GARBAGE_TS), len(sel))
                    field_names = ["ts"] * len(sel)
                elif kind == "nan":
                    for f_idx, name in enumerate(names):
                        cols[name][sel[fsel == f_idx]] = np.nan
                    field_names = [NUMERIC_FIELDS[f] for f in fsel]
                elif kind == "pf_out_of_range":
                    sign = np.where(cols["pf"][sel] < 0, -1.0, 1.0)
                    cols["pf"][sel] = sign * _round(rng.uniform(1.01, 2.0, len(sel)), RESOLUTION_PF)
                    field_names = ["pf"] * len(sel)
                elif kind == "voltage_non_positive":
                    cols["v"][sel] = np.where(rng.random(len(sel)) < 0.5, 0.0, -cols["v"][sel])
                    field_names = ["voltage_v"] * len(sel)
                else:  # missing_field
                    missing[sel] = fsel
                    field_names = [NUMERIC_FIELDS[f] for f in fsel]
                for row, fname in zip(sel, field_names, strict=True):
                    self.log.malformed.append(
                        MalformedRecord(
                            int(meter[row]), int(t_true[row]), int(ts[row]), kind, fname
                        )
                    )

        arrival = t_true + np.rint(delay_s * 1000.0).astype(np.int64)
        chunk = Chunk(meter, ts, cols["p"], cols["v"], cols["i"], cols["pf"], missing, garbage)
        dup = np.flatnonzero(retry_s > 0)
        if len(dup):  # the gateway re-sent these: identical rows, arriving later
            copies = chunk.take(dup)
            chunk = Chunk.concat([chunk, copies])
            arrival = np.concatenate(
                [arrival, arrival[dup] + np.rint(retry_s[dup] * 1000).astype(np.int64)]
            )
        return chunk, arrival
