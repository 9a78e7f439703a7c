"""Study for the night pump hook (the theft the engine misses): can a peer voltage
reference tell a pump hooked before the meter from a neighbour's load on the same
transformer? Simulator tuning seeds only; an analysis, not a detector, and nothing here
feeds a threshold.

Run on demand: ``.venv/bin/pytest tests/benchmarks/test_bench_peer_voltage_study.py -s``
(``MW_STUDY_SEEDS=1,2`` by default; about a minute per seed).

A hooked pump draws I_pump through the meter's service drop, so the meter's corrected
voltage u = V + Z*I (Z: the meter's own service impedance, fitted from its 5-minute
dV/dI) sits Z*I_pump lower for the hours the pump runs, while a neighbour's load lowers
every meter of the transformer alike. The study compares u with three references:

* ``own``: the meter's own median level (no peers: what one engine sees per meter today);
* ``gateway``: the median u of the meter's gateway at that hour (what a gateway-keyed
  partition would give an engine; the simulator puts two transformers on a gateway);
* ``transformer``: the median u of the meter's transformer at that hour (needs a
  meter-to-transformer map, e.g. from the utility's GIS; here from the labels).

For each it prints (1) hourly level: per meter and day the deepest 3-hour stretch in which
every hour sits below the meter's usual offset, and the third-worst such day of each
meter (a pump runs 4-10 nights, a one-off dip should not count): the pump thieves' values,
and at two operating points how many pump thieves and how many meters without theft
reach it; (2) 5-minute steps: the unexplained step dV + Z*dI relative to
the reference when a pump switches on, against how often clean meters step that far.

Asserts only that the fleet has pump thieves and clean meters, never a figure.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bench_support import simulated_readings

pytestmark = pytest.mark.benchmark

SEEDS = [int(s) for s in os.environ.get("MW_STUDY_SEEDS", "1,2").split(",")]
METERS, DAYS = 500, 14
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
REFERENCES = ("own", "gateway", "transformer")
CUTS_V = (1.0, 1.5, 2.0)  # operating points: a 3-hour dip at least this deep on a third night


def _service_impedance(df: pd.DataFrame, cadence_ms: int, start_ms: int) -> pd.Series:
    """Z per meter: least squares of dV on -dI over 5-minute steps of its first two days
    with a real current change (|dI| > 1 A)."""
    g = df.groupby("meter_id")
    steps = df.assign(dv=g["voltage_v"].diff(), di=g["current_a"].diff(), dt=g["t"].diff())
    early = steps[(steps.dt == cadence_ms) & (steps.t < start_ms + 2 * DAY_MS)]
    early = early[early.di.abs() > 1.0]
    num = (early.dv * early.di).groupby(early.meter_id).sum()
    den = (early.di * early.di).groupby(early.meter_id).sum()
    return (-num / den).clip(lower=0.0)


def _pump_intervals(labels: dict) -> dict[str, list[tuple[int, int]]]:
    pumps: dict[str, list[tuple[int, int]]] = {}
    for m in labels["meters"]:
        for t in m["theft"]:
            if t["type"] == "night_pump_hook":
                pumps.setdefault(m["meter_id"], []).append((t["start_ms"], t["end_ms"]))
    return pumps


def _third_worst_day(hourly: pd.DataFrame, ref: str) -> pd.Series:
    """Per meter: the third-worst day's deepest 3-hour stretch of u below the reference
    (every hour of it below; the meter's median offset removed)."""
    if ref == "own":
        rel = hourly["u"]
    else:
        rel = hourly["u"] - hourly.groupby([ref, "hour"])["u"].transform("median")
    dip = rel - rel.groupby(hourly["meter_id"]).transform("median")
    stretch = dip.groupby(hourly["meter_id"]).transform(lambda x: x.rolling(3, min_periods=3).max())
    per_day = stretch.groupby([hourly["meter_id"], hourly["hour"] // DAY_MS]).min()
    return per_day.groupby(level=0).apply(
        lambda x: np.sort(x.dropna().to_numpy())[2] if x.notna().sum() > 2 else np.nan
    )


def test_study_peer_voltage_reference_for_night_pumps(tmp_path: Path) -> None:
    print(f"\nnight pump hook vs peers: {METERS} meters x {DAYS} d @ 5 min, seeds {SEEDS}")
    for seed in SEEDS:
        df, labels = simulated_readings(seed, tmp_path / f"s{seed}.parquet", METERS, DAYS)
        cadence_ms = int(labels["cadence_s"]) * 1000
        pumps = _pump_intervals(labels)
        clean = {m["meter_id"] for m in labels["meters"] if not m["theft"]}
        assert pumps and clean
        z = _service_impedance(df, cadence_ms, int(labels["start_ms"]))
        df["u"] = df["voltage_v"] + df["meter_id"].map(z).fillna(0.0) * df["current_a"]
        df["hour"] = df["t"] // HOUR_MS * HOUR_MS
        hourly = (
            df.groupby(["meter_id", "hour"])
            .agg(
                u=("u", "mean"), gateway=("gateway", "first"), transformer=("transformer", "first")
            )  # fmt: skip
            .reset_index()
        )
        g = df.groupby("meter_id")
        df["e"] = g["voltage_v"].diff() + df["meter_id"].map(z).fillna(0.0) * g["current_a"].diff()
        df.loc[g["t"].diff() != cadence_ms, "e"] = np.nan
        n_clean_days = len(clean) * DAYS
        print(f"seed {seed}: {len(pumps)} pump thieves, {len(clean)} clean meters")
        print(f"  {'reference':12}{'pumps: 3rd-worst dip (V)':26}"
              + "".join(f"{f'<= {-c:.1f} V: pumps, clean':26}" for c in CUTS_V)
              + f"{'pump on-step (V)':18}{'clean steps <= -1.5 V /meter-day'}")  # fmt: skip
        for ref in REFERENCES:
            worst = _third_worst_day(hourly, ref)
            pump_dips = np.sort(worst.reindex(list(pumps)).to_numpy())
            clean_dips = worst.reindex(sorted(clean)).dropna().to_numpy()
            cells = [
                f"{int((pump_dips <= -c).sum())}/{len(pump_dips)}, "
                f"{int((clean_dips <= -c).sum())}/{len(clean_dips)}"
                for c in CUTS_V
            ]
            at_cut = "".join(f"{cell:26}" for cell in cells)
            e = (
                df["e"]
                if ref == "own"
                else df["e"] - df.groupby([ref, "t"])["e"].transform("median")
            )
            on_steps = []
            for meter, spans in pumps.items():
                rows = df.index[df["meter_id"] == meter]
                times = df.loc[rows, "t"].to_numpy()
                for start, _ in spans:
                    k = int(np.searchsorted(times, start))
                    if k < len(rows) and np.isfinite(e.loc[rows[k]]):
                        on_steps.append(float(e.loc[rows[k]]))
            clean_rate = float((e[df["meter_id"].isin(clean)] <= -1.5).sum()) / n_clean_days
            dips = ", ".join(f"{d:.1f}" for d in pump_dips)
            print(f"  {ref:12}{dips:26}{at_cut}{np.median(on_steps):<18.2f}{clean_rate:.2f}")
