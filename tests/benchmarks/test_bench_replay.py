"""Replay throughput of a ~1-million-reading CSV, parsing included, on one core, side by
side with a plain ``pandas.read_csv`` of the same file.

Run on demand: ``.venv/bin/pytest tests/benchmarks/test_bench_replay.py -s``. The file is
a simulated fleet (2,000 meters x 1.83 days at 5-minute cadence, transport faults on,
~1.05 M rows, rows in time order as a gateway export would be). Each measurement runs in a
fresh interpreter pinned to one CPU (``taskset -c 0`` when available) with Arrow's thread
pools at 1 thread, and prints readings/s by CPU time and by wall time (wall time suffers
on a shared machine; CPU time is the figure to quote). Asserts only that the replay is
complete, never timings.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.benchmark

REPO = Path(__file__).resolve().parents[2]
METERS, DAYS = 2000, 1.83

PANDAS = """
import json, sys, time
import pandas as pd
w, c = time.perf_counter(), time.process_time()
df = pd.read_csv(sys.argv[1])
print(json.dumps({"rows": len(df), "wall": time.perf_counter() - w,
                  "cpu": time.process_time() - c}))
"""

REPLAY = """
import json, sys, time
import pyarrow
pyarrow.set_cpu_count(1)
pyarrow.set_io_thread_count(1)
from pathlib import Path
from stream.cli_engine import run_replay
from stream.settings import Settings
scorer = sys.argv[3]
settings = Settings()
if scorer == "none":
    import stream.engine as engine_module
    engine_module._load_scorer = lambda settings: None
w, c = time.perf_counter(), time.process_time()
summary = run_replay(Path(sys.argv[1]), Path(sys.argv[2]), settings, progress=False)
summary["wall"] = time.perf_counter() - w
summary["cpu"] = time.process_time() - c
print(json.dumps(summary))
"""


def _run(script: str, *args: str) -> dict:
    cmd = [sys.executable, "-c", script, *args]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=REPO)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def fleet_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bench") / "fleet.csv"
    subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "meterwatch"),
            "simulate",
            "--meters",
            str(METERS),
            "--days",
            str(DAYS),
            "--cadence",
            "5m",
            "--seed",
            "5",
            "--out",
            str(path),
        ],
        check=True,
        capture_output=True,
        cwd=REPO,
    )
    return path


def test_replay_throughput_vs_pandas(fleet_csv: Path, tmp_path: Path) -> None:
    pandas = _run(PANDAS, str(fleet_csv))
    full = _run(REPLAY, str(fleet_csv), str(tmp_path / "full"), "auto")
    rules = _run(REPLAY, str(fleet_csv), str(tmp_path / "rules"), "none")
    rows = pandas["rows"]
    assert full["rows_in"] == rows and rules["rows_in"] == rows
    assert full["readings_accepted"] > 0.98 * rows

    def rate(n: int, s: float) -> str:
        return f"{n / s:>12,.0f}/s"

    print(f"\nreplay of {rows:,} readings ({METERS} meters x {DAYS} d @ 5 min), one core")
    print(f"{'':44}{'cpu':>14}{'wall':>14}")
    print(
        f"{'pandas.read_csv (parse only)':44}{rate(rows, pandas['cpu'])}"
        f"{rate(rows, pandas['wall'])}"
    )
    print(
        f"{'replay: parse + rules + events (no models)':44}{rate(rows, rules['cpu'])}"
        f"{rate(rows, rules['wall'])}"
    )
    print(
        f"{'replay: parse + rules + HST/AE + events':44}{rate(rows, full['cpu'])}"
        f"{rate(rows, full['wall'])}"
    )
    print(
        f"ratio replay(full)/pandas-read time, cpu: {full['cpu'] / pandas['cpu']:.2f}x; "
        f"replay(rules)/pandas: {rules['cpu'] / pandas['cpu']:.2f}x"
    )
    print(
        f"parse {full['seconds_read']:.2f} s, engine {full['seconds_engine']:.2f} s (wall); "
        f"{full['bytes_per_meter']:,} bytes/meter"
    )
    # where the engine's time goes (stream.engine.ENGINE_STAGES), as shares of the whole
    # replay: what a faster engine has to shrink
    total = full["seconds_total"]
    shares = {"parse": full["seconds_read"], **full["seconds_by_stage"]}
    print(
        "share of replay time: "
        + ", ".join(f"{name} {seconds / total:.0%}" for name, seconds in shares.items())
    )
