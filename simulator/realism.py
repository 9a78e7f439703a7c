"""Realism check: a simulated 120 V fleet against real AMPds2 readings.

The real file (``../shared/data/ampds2_B1E_part11_1min.csv.xz``) is one 120 V bedroom
circuit in Burnaby, Canada, at 1-minute cadence, Feb-Apr 2014. Its voltage is the house's
service voltage, so voltage statistics compare directly with a simulated meter's. Its
load is one lightly used circuit, not a whole home, so for power we compare only the
*shape* of the day (when the evening peak comes, how much of the day is quiet) and the
power factor of real appliance load.

    python -m simulator.realism [PATH]     # prints the side-by-side table
"""

from __future__ import annotations

import lzma
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from simulator.config import FleetConfig

AMPDS2_PATH = (
    Path(__file__).resolve().parent.parent.parent / "shared/data/ampds2_B1E_part11_1min.csv.xz"
)
# AMPds2 house: Burnaby BC, Pacific time (UTC-8 in winter), latitude 49.2 N
AMPDS2_UTC_OFFSET_H = -8.0
AMPDS2_LATITUDE = 49.2


@dataclass(frozen=True)
class Series:
    ts_s: np.ndarray  # epoch seconds
    v: np.ndarray
    i: np.ndarray
    p: np.ndarray
    pf: np.ndarray  # apparent power factor as the meter reports it


@dataclass(frozen=True)
class Stats:
    v_mean: float
    v_std: float
    v_p01: float
    v_p99: float
    v_daily_range: float  # median over days of max - min
    v_step_std: float  # std of the 1-minute change
    pf_p05: float  # power factor when current flows (I > 0.1 A)
    pf_median: float
    pf_p95: float
    evening_peak_hour: int  # local hour with the highest mean power
    evening_share: float  # share of energy used 17:00-23:00 local
    quiet_share: float  # share of minutes below 10 % of the 99th percentile of P


def load_ampds2(path: Path = AMPDS2_PATH) -> Series:
    import pyarrow.csv as pacsv

    with lzma.open(path, "rb") as raw:
        table = pacsv.read_csv(raw)

    def col(name: str) -> np.ndarray:
        return np.asarray(table.column(name).to_numpy(), dtype=float)

    return Series(col("unix_ts"), col("V"), col("I"), col("P"), col("APF"))


def stats(series: Series, utc_offset_h: float) -> Stats:
    """Statistics of one meter's 1-minute series (rows sorted by time)."""
    order = np.argsort(series.ts_s, kind="stable")
    ts, v, i, p, pf = (x[order] for x in (series.ts_s, series.v, series.i, series.p, series.pf))
    local = ts + utc_offset_h * 3600.0
    day = (local // 86_400).astype(np.int64)
    hour = ((local % 86_400) // 3600).astype(np.int64)
    ranges = [float(np.ptp(v[day == d])) for d in np.unique(day) if np.sum(day == d) > 600]
    steps = np.diff(v)[np.diff(ts) <= 61]
    on = i > 0.1
    hourly = np.array([p[hour == h].mean() if np.any(hour == h) else 0.0 for h in range(24)])
    total = float(np.sum(np.clip(p, 0, None)))
    evening = float(np.sum(np.clip(p[(hour >= 17) & (hour < 23)], 0, None)))
    high = float(np.percentile(p, 99))
    return Stats(
        v_mean=float(np.mean(v)),
        v_std=float(np.std(v)),
        v_p01=float(np.percentile(v, 1)),
        v_p99=float(np.percentile(v, 99)),
        v_daily_range=float(np.median(ranges)) if ranges else float("nan"),
        v_step_std=float(np.std(steps)) if len(steps) else float("nan"),
        pf_p05=float(np.percentile(pf[on], 5)) if on.any() else float("nan"),
        pf_median=float(np.median(pf[on])) if on.any() else float("nan"),
        pf_p95=float(np.percentile(pf[on], 95)) if on.any() else float("nan"),
        evening_peak_hour=int(np.argmax(hourly)),
        evening_share=evening / total if total > 0 else float("nan"),
        quiet_share=float(np.mean(p < 0.1 * high)) if high > 0 else 1.0,
    )


def simulated_fleet_stats(meters: int = 20, days: float = 7.0, seed: int = 1) -> list[Stats]:
    """Per-meter statistics of a clean simulated 120 V fleet at 1-minute cadence, in the
    AMPds2 house's season, latitude and time zone."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from simulator.fleet import simulate

    config = FleetConfig(
        meters=meters,
        days=days,
        cadence_s=60,
        seed=seed,
        start=datetime(2014, 2, 24, 8, 0, tzinfo=UTC),
        theft_share=0.0,
        behaviour_share=0.0,
        malformed_share=0.0,
        transport_faults=False,
        nominal_voltage_v=120.0,
        household_mix=(0.4, 0.4, 0.2, 0.0),
        utc_offset_h=AMPDS2_UTC_OFFSET_H,
        latitude_deg=AMPDS2_LATITUDE,
    )
    table, _ = simulate(config)
    ts = pc.cast(
        pc.strptime(table.column("ts"), format="%Y-%m-%dT%H:%M:%S%z", unit="s"), pa.int64()
    ).to_numpy()
    meter = np.asarray(table.column("meter_id").to_pylist())
    cols = {k: table.column(k).to_numpy() for k in ("voltage_v", "current_a", "power_w", "pf")}
    out = []
    for m in np.unique(meter):
        sel = meter == m
        out.append(
            stats(
                Series(
                    ts[sel].astype(float),
                    cols["voltage_v"][sel],
                    cols["current_a"][sel],
                    cols["power_w"][sel],
                    cols["pf"][sel],
                ),
                AMPDS2_UTC_OFFSET_H,
            )
        )
    return out


def compare(
    path: Path = AMPDS2_PATH, meters: int = 20, days: float = 7.0
) -> list[tuple[str, float, float, float, float]]:
    """Rows (metric, AMPds2, simulated median, simulated min, simulated max)."""
    real = stats(load_ampds2(path), AMPDS2_UTC_OFFSET_H)
    sim = simulated_fleet_stats(meters, days)
    rows = []
    for name in Stats.__dataclass_fields__:
        values = np.array([getattr(s, name) for s in sim], dtype=float)
        rows.append(
            (
                name,
                float(getattr(real, name)),
                float(np.median(values)),
                float(np.min(values)),
                float(np.max(values)),
            )
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else AMPDS2_PATH
    print(f"{'metric':20s} {'AMPds2':>9s} {'sim median':>11s} {'sim min':>9s} {'sim max':>9s}")
    for name, real, med, lo, hi in compare(path):
        print(f"{name:20s} {real:9.3f} {med:11.3f} {lo:9.3f} {hi:9.3f}")


if __name__ == "__main__":
    main()
