"""Study: how much of the day-to-day noise of a meter's service-impedance fit (dV/dI of
its 5-minute steps, what R03, R10 and R13 compare) is the supply moving under all the
meters of its gateway at once? Simulator tuning seeds only; an analysis, not a detector,
and nothing here feeds a threshold.

Run on demand: ``.venv/bin/pytest tests/benchmarks/test_bench_peer_impedance_study.py -s``
(``MW_STUDY_SEEDS=1,2`` by default; under a minute per seed).

Per meter and UTC day (days 2-13 of a 14-day fleet), the least-squares impedance
Z = -sum(dV*dI) / sum(dI^2) over consecutive 5-minute steps, two ways:

* ``own``: the meter's own steps, as the engine fits today;
* ``gateway``: each step dV minus the median step of the gateway's meters over the same
  5 minutes (the meter itself is one of about forty), which removes what the feeder and
  the transformer do to every meter alike;
* ``transformer``: the same with the meter's transformer (two per gateway in the
  simulator; a utility would need its GIS map, here from the labels).

It prints, over meters without theft with real current steps (``MIN_DAY_DI2``) on at
least 8 days: the median
of the day-to-day relative spread (standard deviation over mean) of the daily fits, per
kind of premises; and R13's own statistic, the pooled fit of the last two days over the
pooled fit of the eight before (a bypassed share f raises it to 1 / (1 - f)): its 1st,
50th, 99th percentile and maximum, and how many gradual bypasses end above them.

The transformer reference needs a meter-to-transformer map, which readings do not carry.
The study also asks whether the voltages give it: per gateway, the correlation of the
meters' 5-minute voltage steps, split in two by the sign of the leading eigenvector of
the centred correlation matrix, against the simulator's transformers (which only score
the split). Asserts only that every seed had such meters.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bench_support import bypassed_share_at_end, simulated_readings

pytestmark = pytest.mark.benchmark

SEEDS = [int(s) for s in os.environ.get("MW_STUDY_SEEDS", "1,2").split(",")]
METERS, DAYS = 500, 14
STEP_MS = 300_000
DAY_MS = 86_400_000
# a day counts when its current steps add up to this (A^2: e.g. eight 2.5 A steps), which
# keeps the fits about as precise as R13 asks its fits to be
MIN_DAY_DI2 = 50.0
REFERENCES = ("own", "gateway", "transformer")


def daily_sums(df: pd.DataFrame) -> pd.DataFrame:
    """Per meter and day: sum(dV*dI) and sum(dI^2) of consecutive 5-minute steps, with
    dV as measured (``own``) and minus the median step of the meter's gateway
    (``gateway``) or transformer (``transformer``) over the same 5 minutes."""
    g = df.groupby("meter_id")
    steps = df.assign(dv=g["voltage_v"].diff(), di=g["current_a"].diff(), dt=g["t"].diff())
    steps = steps[steps["dt"] == STEP_MS]
    by_gateway = steps.groupby(["gateway", "t"])["dv"].transform("median")
    by_transformer = steps.groupby(["transformer", "t"])["dv"].transform("median")
    steps = steps.assign(
        day=steps["t"] // DAY_MS,
        own=steps["dv"] * steps["di"],
        gateway=(steps["dv"] - by_gateway) * steps["di"],
        transformer=(steps["dv"] - by_transformer) * steps["di"],
        di2=steps["di"] ** 2,
    )
    return steps.groupby(["meter_id", "day"])[[*REFERENCES, "di2"]].sum()


def spread_and_ratio(sums: pd.DataFrame, ref: str) -> tuple[pd.Series, pd.Series]:
    """Per meter: the relative spread of its daily fits, and the last two days' pooled
    fit over the eight days' before."""
    z = -sums[ref] / sums["di2"]
    ok = sums["di2"] > MIN_DAY_DI2
    daily = z[ok].groupby(level=0)
    spread = daily.std() / daily.mean()
    days = sorted(sums.index.get_level_values(1).unique())
    new, old = days[-2:], days[-10:-2]

    def pooled(which: list[int]) -> pd.Series:
        part = sums[sums.index.get_level_values(1).isin(which)].groupby(level=0).sum()
        return -part[ref] / part["di2"]

    # R13's ratio only where both pooled fits rest on counted days
    counted = sums[ok]
    ratio = pooled(new) / pooled(old)
    n_new = counted[counted.index.get_level_values(1).isin(new)].groupby(level=0).size()
    n_old = counted[counted.index.get_level_values(1).isin(old)].groupby(level=0).size()
    ratio = ratio[(n_new.reindex(ratio.index) == 2) & (n_old.reindex(ratio.index) >= 6)]
    return spread[daily.count() >= 8], ratio


def split_by_voltage_steps(df: pd.DataFrame) -> tuple[int, int, float, float]:
    """Per gateway, two groups of meters from the correlation of their 5-minute voltage
    steps; over the fleet: meters grouped as their transformers are (up to the names of
    the two groups), meters, and the mean correlation within and across transformers."""
    agree = total = 0
    within: list[float] = []
    across: list[float] = []
    for _, g in df.groupby("gateway"):
        steps = g.pivot(index="t", columns="meter_id", values="voltage_v").sort_index().diff()
        corr = np.nan_to_num(steps.corr(min_periods=200).to_numpy())
        _, vectors = np.linalg.eigh(corr - corr.mean())
        group = vectors[:, -1] > 0
        tx = g.groupby("meter_id")["transformer"].first().reindex(steps.columns).to_numpy()
        first = tx == tx[0]
        agree += max(int((group == first).sum()), int((group != first).sum()))
        total += len(tx)
        same = tx[:, None] == tx[None, :]
        off = ~np.eye(len(tx), dtype=bool)
        within.append(float(corr[same & off].mean()))
        across.append(float(corr[~same].mean()) if (~same).any() else np.nan)
    return agree, total, float(np.nanmean(within)), float(np.nanmean(across))


def test_study_the_peer_reference_of_the_impedance_fit(tmp_path: Path) -> None:
    rows: list[dict[str, object]] = []
    ramps: list[dict[str, object]] = []
    splits: list[tuple[int, int, float, float]] = []
    for seed in SEEDS:
        df, labels = simulated_readings(seed, tmp_path / f"fleet_{seed}.parquet", METERS, DAYS)
        # the rows the engine would reject (a voltage at or below 0, |pf| above 1) are
        # transport faults, not physics; the first day is the fleet settling in
        valid = (df["voltage_v"] > 0) & (df["pf"].abs() <= 1)
        df = df[valid & (df["t"] >= df["t"].min() + DAY_MS)]
        end_ms = int(df["t"].max())
        clean = {m["meter_id"]: m["household"] for m in labels["meters"] if not m["theft"]}
        gradual = {
            m["meter_id"]: bypassed_share_at_end(m["theft"][0], end_ms)
            for m in labels["meters"]
            if m["theft"] and m["theft"][0]["type"] == "gradual_bypass"
        }
        splits.append(split_by_voltage_steps(df[df["t"] % STEP_MS == 0]))
        sums = daily_sums(df)
        meters = sums.index.get_level_values(0)
        for ref in REFERENCES:
            spread, ratio = spread_and_ratio(sums[meters.isin(clean)], ref)
            for meter, value in spread.items():
                rows.append({"seed": seed, "ref": ref, "meter": meter, "kind": clean[meter],
                             "spread": value, "ratio": ratio.get(meter, np.nan)})  # fmt: skip
            _, ratio = spread_and_ratio(sums[meters.isin(gradual)], ref)
            for meter, share in gradual.items():
                ramps.append({"seed": seed, "ref": ref, "meter": meter, "share": share,
                              "ratio": ratio.get(meter, np.nan)})  # fmt: skip
    table = pd.DataFrame(rows)
    assert set(table["seed"]) == set(SEEDS), "a seed had no clean meter with current steps"
    print(f"\nseeds {SEEDS}: {table[table.ref == 'own'].meter.size} clean meters")
    print("median day-to-day spread of the daily fit (sd / mean):")
    spread = table.pivot_table(index="kind", columns="ref", values="spread", aggfunc="median")
    spread.loc["all"] = table.groupby("ref")["spread"].median()
    print(spread.round(3).to_string())
    thieves = pd.DataFrame(ramps)
    print("last 2 days / the 8 before, pooled fits (1 / 50 / 99 %, max of clean meters; the")
    print("gradual bypasses that data ends on at least that ratio, of those with precise fits):")
    for ref, part in table.groupby("ref"):
        q = np.nanquantile(part["ratio"], [0.01, 0.5, 0.99])
        top = float(np.nanmax(part["ratio"]))
        ramp = thieves[(thieves["ref"] == ref) & thieves["ratio"].notna()]
        over = ramp[ramp["ratio"] >= q[2]]
        print(f"  {ref:12} {q[0]:.3f} / {q[1]:.3f} / {q[2]:.3f}, max {top:.3f};  gradual "
              f"{len(over)}/{len(ramp)} over the 99th, {int((ramp['ratio'] > top).sum())} over the "
              f"max; shares {np.round(np.sort(over['share'].to_numpy()), 2).tolist()}")  # fmt: skip
    print("gradual bypasses under 40 % bypassed at the end (share: ratio own / transformer):")
    young = thieves[thieves["share"] < 0.4].pivot_table(
        index=["seed", "meter", "share"], columns="ref", values="ratio"
    )
    for (_, _, share), r in young.sort_index(level="share").iterrows():
        print(f"  {share:.2f}: {r.get('own', np.nan):.3f} / {r.get('transformer', np.nan):.3f}")
    agree, total = sum(x[0] for x in splits), sum(x[1] for x in splits)
    print(f"transformers from voltage steps: {agree}/{total} meters grouped as their "
          f"transformers; step correlation within a transformer "
          f"{min(x[2] for x in splits):.2f}-{max(x[2] for x in splits):.2f} (mean per seed), "
          f"across {min(x[3] for x in splits):.2f}-{max(x[3] for x in splits):.2f}")  # fmt: skip
