"""Study behind R16 (a load on a timer hooked before the meter): do the step pairs of a
meter's half-hour voltage steps against its transformer tell a hooked pump from clean
meters? Simulator tuning seeds only; an analysis, and it asserts no figure.

Run on demand: ``.venv/bin/pytest tests/benchmarks/test_bench_timer_hook_study.py -s``
(``MW_STUDY_SEEDS=1,2`` by default; the thirteenth session ran 1-12, about 20 s a seed).

Per meter: 15-minute mean V and I; the half-hour step (slot k against slot k - 2) of V
less the median step of the other meters of its transformer (from the labels here; the
engine learns the peers from the voltages, ``detectors.peer_impedance``), plus Z times
its current step (Z from its 15-minute steps over the whole data, referenced alike), and
judged only where its current moved at most ``max_quiet_di_a``. The pairs are
:func:`detectors.timer_hook.step_hook` itself. For each step size it prints how many
pump thieves and how many meters of each other kind have:

* a **timer repeat** (R16 as built): a pair repeating the previous pair's time of day and
  length on a later day;
* an **on-repeat** (a trial, not built): a switch-on step alone at the previous pair's
  time of day and of its size, which would find a pump on its second night before the
  data ends, before it switches off.

A transformer with fewer than 4 other meters has no reference here, as in the engine.

The second study is R15's one-night pair tier: the engine itself replays each fleet
(rules only), and every night R15 judges is paired with the meter's R16 step pairs (any,
repeated or not, implying at least 3 A) that switched on within the night's dipped
stretch (from an hour before it). It prints, per dip and pair size, the pumps found on a
night of theirs, those among them on which R16 never fired, and the meters without a
pump that have such a night, by kind.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from bench_support import simulate, simulated_readings

from detectors.timer_hook import HookState, step_hook, unexplained_step
from rules.thresholds import load_thresholds
from stream.codecs import read_table
from stream.engine import PZ_SLOT_MS, Engine
from stream.settings import Settings

pytestmark = pytest.mark.benchmark

SEEDS = [int(s) for s in os.environ.get("MW_STUDY_SEEDS", "1,2").split(",")]
STEPS_V = (0.4, 0.5, 0.6)
SLOT_MS = 900_000
DAY_SLOTS = 96


def referenced_steps(df: pd.DataFrame, labels: dict[str, Any]) -> pd.DataFrame:
    """Per (slot, meter): the unexplained half-hour step (NaN where not judged)."""
    t = load_thresholds().section("timer_sag")
    df = df.assign(slot=df["t"] // SLOT_MS)
    g = df.groupby(["meter_id", "slot"])[["voltage_v", "current_a"]].mean()
    volts, amps = g["voltage_v"].unstack(0), g["current_a"].unstack(0)
    volts = volts.reindex(range(int(volts.index.min()), int(volts.index.max()) + 1))
    amps = amps.reindex(volts.index)
    tx = {m["meter_id"]: m["transformer_id"] for m in labels["meters"]}
    groups: dict[str, list[str]] = {}
    for meter in volts.columns:
        groups.setdefault(tx[meter], []).append(meter)
    dv1, di1, dv2, di2 = volts.diff(), amps.diff(), volts.diff(2), amps.diff(2)
    out = pd.DataFrame(np.nan, index=volts.index, columns=volts.columns)
    for members in groups.values():
        for meter in members:
            others = [o for o in members if o != meter]
            if len(others) < 4:
                continue
            y1 = dv1[meter] - dv1[others].median(axis=1)
            z = -float((y1 * di1[meter]).sum() / (di1[meter] ** 2).sum())
            y2 = (dv2[meter] - dv2[others].median(axis=1)).to_numpy()
            d2 = di2[meter].to_numpy()
            z = z if z > 0 else math.nan
            out[meter] = [
                unexplained_step(float(a), float(b), z, t["max_quiet_di_a"])
                for a, b in zip(y2, d2, strict=True)
            ]
    return out


def verdicts(e: pd.Series, min_step_v: float) -> tuple[bool, bool]:
    """(timer repeat, on-repeat) over one meter's steps."""
    t = {**load_thresholds().section("timer_sag"), "min_step_v": min_step_v}
    state, timer, on_repeat = HookState(), False, False
    pairs: list[tuple[int, float]] = []
    for slot, step in zip(e.index.tolist(), e.to_numpy().tolist(), strict=True):
        before = state
        state, done = step_hook(state, int(slot), float(step), t)
        timer |= done.repeated
        if done.closed:
            pairs.append((done.on_slot, done.size_v))
        new_on = state.on_slot == slot and before.on_slot != slot
        if new_on and pairs:
            k0, size = pairs[-1]
            apart = slot - k0
            on_repeat |= (
                DAY_SLOTS - 1 <= apart <= 7 * DAY_SLOTS + 1
                and abs((apart + DAY_SLOTS // 2) % DAY_SLOTS - DAY_SLOTS // 2) <= 1
                and abs(-step - size) <= t["match_ratio"] * max(-step, size)
            )
    return timer, on_repeat


def test_study_timer_step_pairs_for_night_pumps(tmp_path: Path) -> None:
    tally: dict[tuple[float, str], Counter[str]] = {}
    for seed in SEEDS:
        df, labels = simulated_readings(seed, tmp_path / f"s{seed}.parquet")
        steps = referenced_steps(df, labels)
        kinds = {
            m["meter_id"]: m["theft"][0]["type"]
            if m["theft"]
            else ("behaviour" if m["behaviours"] else "clean")
            for m in labels["meters"]
        }
        assert "night_pump_hook" in kinds.values() and "clean" in kinds.values()
        for meter in steps.columns:
            for size in STEPS_V:
                timer, on_repeat = verdicts(steps[meter], size)
                for name, hit in (("timer repeat", timer), ("on-repeat", on_repeat)):
                    if hit:
                        tally.setdefault((size, name), Counter())[kinds[meter]] += 1
        pumps = sum(1 for k in kinds.values() if k == "night_pump_hook")
        print(f"seed {seed}: {pumps} pump thieves")
    print(f"\nR16 study, seeds {SEEDS}: meters with a verdict, by kind")
    for (size, name), counts in sorted(tally.items()):
        pumps = counts.pop("night_pump_hook", 0)
        print(f"  steps >= {size} V, {name:13}: pumps {pumps:3}, clean {counts.pop('clean', 0):3}, "
              f"others {dict(counts)}")  # fmt: skip


HOUR_MS = 3_600_000
DAY_MS = 86_400_000


def nights_and_pairs(
    fleet: Path,
) -> tuple[dict[tuple[str, int], tuple[float, int]], dict[str, list[tuple[int, float, bool]]]]:
    """Replay ``fleet`` through the engine (rules only): R15's judged nights ((meter, peer
    day) -> (dip V, stretch start hour)) and R16's closed pairs per meter (switch-on ms,
    size V, repeated), those implying at least R16's ``min_amps_a``."""
    batch, _ = read_table(fleet)
    batch = batch.take(np.argsort(batch.ts_ms, kind="stable"))
    engine = Engine.from_settings(Settings(), scorer=None, clock=lambda: 2e9)
    min_amps = load_thresholds().value("timer_sag", "min_amps_a")
    nights: dict[tuple[str, int], tuple[float, int]] = {}
    pairs: dict[str, list[tuple[int, float, bool]]] = {}
    judge, hook = engine._judge_peer_day, engine._timer_hook

    def judged(gateway: str, day: int) -> Any:
        done = judge(gateway, day)
        for m, (dip, _, at) in done.items():
            nights[(engine.meter_ids[m], day)] = (dip, at)
        return done

    def hooked(g: Any, s: Any, y2: Any, di2: Any) -> Any:
        out = hook(g, s, y2, di2)
        for k in np.flatnonzero(out["closed"]).tolist():
            amps = out["size_v"][k] / out["z_ohm"][k]
            if not amps < min_amps:  # NaN (Z unknown) passes, as in R16
                pairs.setdefault(engine.meter_ids[g[k]], []).append(
                    (int(out["on_slot"][k]) * PZ_SLOT_MS, float(out["size_v"][k]),
                     bool(out["repeated"][k]))
                )  # fmt: skip
        return out

    engine._judge_peer_day = judged  # type: ignore[method-assign]
    engine._timer_hook = hooked  # type: ignore[method-assign]
    for a in range(0, len(batch), 200_000):
        engine.process(batch.slice(a, a + 200_000))
    engine.flush()
    return nights, pairs


def test_study_one_night_dip_with_a_step_pair(tmp_path: Path) -> None:
    pv = load_thresholds().section("peer_voltage_dip")
    day_start = int(pv["day_start_h"] * HOUR_MS)
    stretch = int(pv["stretch_h"] * HOUR_MS)
    rows: list[tuple[int, str, str, bool, bool, float, float]] = []
    for seed in SEEDS:
        fleet = tmp_path / f"n{seed}.parquet"
        simulate(seed, fleet, 500, 14)
        labels = json.loads(fleet.with_suffix(".labels.json").read_text(encoding="utf-8"))
        meters = {m["meter_id"]: m for m in labels["meters"]}
        nights, pairs = nights_and_pairs(fleet)
        for (mid, day), (dip, at) in nights.items():
            if not np.isfinite(dip):
                continue
            d0 = day * DAY_MS + day_start
            a0 = d0 + at * HOUR_MS - HOUR_MS
            inside = [
                size for on, size, _ in pairs.get(mid, []) if a0 <= on <= a0 + HOUR_MS + stretch
            ]
            meter = meters[mid]
            kind = meter["theft"][0]["type"] if meter["theft"] else (
                "behaviour" if meter["behaviours"] else "clean")  # fmt: skip
            theft_night = any(d0 <= t["start_ms"] < d0 + DAY_MS for t in meter["theft"])
            r16 = any(rep for _, _, rep in pairs.get(mid, []))
            rows.append((seed, mid, kind, theft_night, r16, dip, max(inside, default=0.0)))
    assert any(r[2] == "night_pump_hook" for r in rows) and any(r[2] == "clean" for r in rows)
    print(f"\nR15 one night with an R16 pair in its stretch, seeds {SEEDS}")
    for dip_v in (0.5, 0.7, 0.9):
        for pair_v in (0.5, 0.7):
            hit = [r for r in rows if r[5] <= -dip_v and r[6] >= pair_v]
            pumps = {(r[0], r[1]) for r in hit if r[2] == "night_pump_hook" and r[3]}
            beyond = {(r[0], r[1]) for r in hit if r[2] == "night_pump_hook" and r[3] and not r[4]}
            others = Counter(
                k for k in {(r[0], r[1], r[2]) for r in hit if r[2] != "night_pump_hook"}
            )
            kinds = Counter(kind for _, _, kind in others)
            print(f"  dip >= {dip_v} V, pair >= {pair_v} V: pumps {len(pumps)} "
                  f"({len(beyond)} on which R16 never fired); meters without a pump: "
                  f"{dict(kinds)}")  # fmt: skip
