"""Simulator generation speed (readings per second), Parquet against CSV, on one core.

Run on demand: ``.venv/bin/pytest tests/benchmarks/test_bench_simulator.py -s``. Each case
runs in a fresh interpreter pinned to one CPU (``taskset -c 0`` when available) with
Arrow's thread pools at 1 thread, and prints readings/s by CPU time and by wall time
(wall time suffers on a shared machine; CPU time is the figure to quote). Asserts only
that the output is complete, never timings.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.benchmark

CASES = [
    # (label, meters, days, cadence_s, suffix)
    ("500 meters x 14 d @ 5 min", 500, 14.0, 300, "parquet"),
    ("50 meters x 1 d @ 5 s", 50, 1.0, 5, "parquet"),
    ("2000 meters x 1 d @ 30 s", 2000, 1.0, 30, "parquet"),
    ("500 meters x 14 d @ 5 min", 500, 14.0, 300, "csv"),
]

SCRIPT = """
import json, sys, time
from pathlib import Path
import pyarrow as pa
import pyarrow.compute, pyarrow.csv, pyarrow.parquet  # imports are not generation time
pa.set_cpu_count(1)
pa.set_io_thread_count(1)
from simulator.fleet import FleetConfig, write_files
meters, days, cadence, out = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
config = FleetConfig(meters=meters, days=days, cadence_s=cadence, seed=7)
cpu0, wall0 = time.process_time(), time.perf_counter()
rows, labels = write_files(config, Path(out))
cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
print(json.dumps({"rows": rows, "cpu_s": cpu, "wall_s": wall, "expected": config.steps * meters}))
"""


def run_case(meters: int, days: float, cadence: int, out: Path) -> dict[str, float]:
    cmd = [sys.executable, "-c", SCRIPT, str(meters), str(days), str(cadence), str(out)]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=600)
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_generation_speed(tmp_path: Path) -> None:
    print()
    print(
        f"{'case':28s} {'format':8s} {'readings':>10s} {'cpu s':>7s} {'wall s':>7s} "
        f"{'readings/s (cpu)':>17s} {'readings/s (wall)':>18s}"
    )
    for label, meters, days, cadence, suffix in CASES:
        out = tmp_path / f"bench_{meters}_{cadence}.{suffix}"
        r = run_case(meters, days, cadence, out)
        # complete: every step of every meter, give or take transport faults
        assert 0.9 * r["expected"] <= r["rows"] <= 1.1 * r["expected"]
        assert out.stat().st_size > 0 and out.with_name(out.stem + ".labels.json").exists()
        print(
            f"{label:28s} {suffix:8s} {int(r['rows']):>10,d} {r['cpu_s']:7.2f} {r['wall_s']:7.2f} "
            f"{r['rows'] / r['cpu_s']:>17,.0f} {r['rows'] / r['wall_s']:>18,.0f}"
        )
