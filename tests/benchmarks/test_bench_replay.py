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
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.benchmark

REPO = Path(__file__).resolve().parents[2]
METERS, DAYS = 2000, 1.83
BENCH_RUNS = int(os.environ.get("MW_BENCH_RUNS", "3"))

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


def _run(script: str, *args: str, code: Path = REPO) -> dict:
    """Run ``script`` in a fresh interpreter pinned to one CPU, importing the meterwatch
    code in ``code`` (``python -c`` puts the working directory first on the path)."""
    cmd = [sys.executable, "-c", script, *args]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=code)
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


def _median_run(runs: int, script: str, *args: str) -> dict:
    """The result of the run with the median CPU time among ``runs`` repeats (a shared
    host drifts by tens of percent between runs a minute apart; MW_BENCH_RUNS=1 for a
    quick look)."""
    results = sorted((_run(script, *args) for _ in range(runs)), key=lambda r: r["cpu"])
    return results[len(results) // 2]


def test_replay_throughput_vs_pandas(fleet_csv: Path, tmp_path: Path) -> None:
    # each figure is the median of BENCH_RUNS runs of it
    pandas = _median_run(BENCH_RUNS, PANDAS, str(fleet_csv))
    full = _median_run(BENCH_RUNS, REPLAY, str(fleet_csv), str(tmp_path / "full"), "auto")
    rules = _median_run(BENCH_RUNS, REPLAY, str(fleet_csv), str(tmp_path / "rules"), "none")
    # the fixed cost of any replay, whatever its size: the same command on a file of the
    # fleet's first 10 rows (the engine's imports, numba's start-up and the load of the
    # compiled kernels, the model artifact, the output files)
    tiny_csv = tmp_path / "tiny.csv"
    with fleet_csv.open() as src:
        tiny_csv.write_text("".join(next(src) for _ in range(11)))
    tiny = _run(REPLAY, str(tiny_csv), str(tmp_path / "tiny"), "auto")
    rows = pandas["rows"]
    assert full["rows_in"] == rows and rules["rows_in"] == rows
    assert full["readings_accepted"] > 0.98 * rows

    def rate(n: int, s: float) -> str:
        return f"{n / s:>12,.0f}/s"

    print(
        f"\nreplay of {rows:,} readings ({METERS} meters x {DAYS} d @ 5 min), one core, "
        f"median of {BENCH_RUNS} runs"
    )
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
        f"fixed cost of a replay (a 10-row file, fresh process): {tiny['cpu']:.2f} s cpu; "
        f"net of it the full replay runs at{rate(rows, full['cpu'] - tiny['cpu'])} cpu "
        "(the figure above includes it)"
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


AB_BASE = os.environ.get("MW_AB_BASE", "")
AB_RUNS = int(os.environ.get("MW_AB_RUNS", "5"))


@pytest.mark.skipif(not AB_BASE, reason="set MW_AB_BASE=<git revision> to compare with it")
def test_replay_speed_against_a_base_revision(fleet_csv: Path, tmp_path: Path) -> None:
    """The full replay of this checkout against the same replay of revision MW_AB_BASE
    (``git archive``), alternated MW_AB_RUNS times, so the host's drifts hit both alike:
    ``MW_AB_BASE=1490130 MW_AB_RUNS=10 .venv/bin/pytest tests/benchmarks/test_bench_replay.py
    -k base_revision -s``. Prints CPU-time readings/s (median and best of each) and the
    median ratio; also checks that both wrote the same events."""
    base = tmp_path / "base"
    base.mkdir()
    archive = subprocess.run(
        ["git", "archive", AB_BASE],
        cwd=REPO,
        check=True,
        capture_output=True,  # noqa: S607
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)  # noqa: S607
    cpu: dict[str, list[float]] = {"base": [], "this": []}
    rows = 0
    for k in range(AB_RUNS):
        for name, code in (("base", base), ("this", REPO)):
            out = tmp_path / f"{name}{k}"
            summary = _run(REPLAY, str(fleet_csv), str(out), "auto", code=code)
            cpu[name].append(summary["cpu"])
            rows = summary["rows_in"]
    same = (tmp_path / "base0" / "events.jsonl").read_bytes() == (
        tmp_path / "this0" / "events.jsonl"
    ).read_bytes()
    print(f"\nfull replay of {rows:,} readings, {AB_RUNS} alternated runs, CPU time")
    for name, seconds in cpu.items():
        label = f"{AB_BASE} (base)" if name == "base" else "this checkout"
        print(
            f"{label:>24}: median {rows / statistics.median(seconds):>9,.0f}/s, "
            f"best {rows / min(seconds):>9,.0f}/s  ({', '.join(f'{s:.2f}' for s in seconds)} s)"
        )
    faster = sum(b > t for b, t in zip(cpu["base"], cpu["this"], strict=True))
    ratio = statistics.median(cpu["base"]) / statistics.median(cpu["this"])
    print(f"median speed ratio this/base {ratio:.3f}; faster in {faster} of {AB_RUNS} pairs")
    print(f"events.jsonl identical: {same}")
    assert rows > 0
