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
"""

from __future__ import annotations

import math
import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from bench_support import simulated_readings

from detectors.timer_hook import HookState, step_hook, unexplained_step
from rules.thresholds import load_thresholds

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
