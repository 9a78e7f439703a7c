"""Models benchmark: window-level AUC on a held-out simulated fleet, and inference speed.

Run on demand (``make bench`` or ``.venv/bin/pytest tests/benchmarks/test_bench_models.py
-s``). Prints figures side by side; asserts only correctness, never timings.

- AUC: a simulated fleet (seed ``METERWATCH_BENCH_SEED``, default 101: never used for
  training) is replayed through the engine with the committed artifact; every warmed-up
  window of a thief overlapping a theft interval is a positive, every window of a clean
  meter a negative. AUC per detector (hst, ae, hybrid) overall and per theft type.
- Throughput: HST, autoencoder and the whole HybridScorer on engine-shaped feature
  matrices, batched (one call per K windows) against one window per call.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from bench_support import judged_windows, score_fleet

from detectors.evaluation import roc_auc
from detectors.features import FEATURE_NAMES, FEATURE_RANGES
from detectors.hybrid import HybridScorer
from stream.settings import Settings

pytestmark = pytest.mark.benchmark

METERS = int(os.environ.get("METERWATCH_BENCH_METERS", "100"))
DAYS = float(os.environ.get("METERWATCH_BENCH_DAYS", "7"))
SEED = int(os.environ.get("METERWATCH_BENCH_SEED", "101"))
CADENCE = os.environ.get("METERWATCH_BENCH_CADENCE", "1m")


def test_window_auc_on_held_out_fleet(tmp_path: Path) -> None:
    settings = Settings()
    if not settings.model_artifact.is_file():
        pytest.skip(f"no committed artifact at {settings.model_artifact}")
    readings = tmp_path / "fleet.parquet"
    subprocess.run(
        [str(Path(sys.executable).parent / "meterwatch"), "simulate", "--meters", str(METERS),
         "--days", str(DAYS), "--cadence", CADENCE, "--seed", str(SEED),
         "--theft-share", "0.2", "--out", str(readings)],
        check=True, capture_output=True,
    )  # fmt: skip
    started = time.perf_counter()
    scored = score_fleet(readings, settings)
    seconds = time.perf_counter() - started
    truth, judged = judged_windows(scored, readings, settings)
    print(
        f"\nfleet seed {SEED}: {METERS} meters x {DAYS} days @ {CADENCE}, "
        f"{judged.sum()} judged windows ({truth.theft[judged].sum()} theft), "
        f"engine+models {seconds:.1f}s"
    )
    print(f"{'windows':24s} {'hst':>6s} {'ae':>6s} {'hybrid':>6s}")
    types = sorted(set(truth.theft_type[judged & truth.theft].tolist()))
    for label in ["all", *types]:
        positive = truth.theft if label == "all" else truth.theft_type == label
        rows = judged & (positive | truth.clean)
        aucs = [roc_auc(scored[d][rows], positive[rows]) for d in ("hst", "ae", "hybrid")]
        print(f"{label:24s} " + " ".join(f"{a:6.3f}" for a in aucs))
        if label == "all":
            assert min(aucs) > 0.5


def _features(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    columns = []
    for name in FEATURE_NAMES:
        low, high = FEATURE_RANGES.get(name, (-1.0, 1.0))
        columns.append(rng.uniform(low, high, n))
    return np.column_stack(columns)


def test_inference_throughput_batched_vs_one_at_a_time() -> None:
    settings = Settings()
    scorer = HybridScorer.create(
        FEATURE_NAMES, settings.model_artifact, seed=0, calibration_min_count=100
    )
    warm = _features(5000, 1)
    scorer.score_windows(warm, np.ones(len(warm), dtype=bool))
    probe = _features(2000, 2)
    rows = []
    for label, fn in [
        ("hst", lambda x: scorer.hst.score_many(x)),
        ("autoencoder", lambda x: scorer.autoencoder.score_many(x) if scorer.autoencoder else x),
        ("hybrid score+learn", lambda x: scorer.score_windows(x, np.ones(len(x), dtype=bool))),
    ]:
        started = time.perf_counter()
        fn(probe)
        batched = len(probe) / (time.perf_counter() - started)
        single_rows = probe[:300]
        started = time.perf_counter()
        for row in single_rows:
            fn(row[None, :])
        single = len(single_rows) / (time.perf_counter() - started)
        rows.append((label, batched, single))
    print(f"\nartifact loaded: {scorer.artifact_loaded} ({scorer.model_version})")
    print(f"{'detector':20s} {'batched w/s':>12s} {'1-at-a-time w/s':>16s} {'ratio':>7s}")
    for label, batched, single in rows:
        print(f"{label:20s} {batched:12,.0f} {single:16,.0f} {batched / single:7.1f}")
