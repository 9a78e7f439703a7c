"""How many Half-Space Trees: window AUC and engine CPU time, 25 trees against 10.

Run on demand: ``.venv/bin/pytest tests/benchmarks/test_bench_hst_trees.py -s``
(``METERWATCH_BENCH_SEEDS``, default ``2,3``: tuning seeds, never the held-out 101-103).
Each seed's fleet (100 meters x 7 days @ 5 min, 20 % thieves) is replayed through the
engine once per tree count, side by side in one process; it prints the CPU time and the
window ROC-AUC of the HST and hybrid scores, overall and per theft type. Asserts only
that both configurations rank theft above chance, never timings.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bench_support import judged_windows, score_fleet

from detectors.evaluation import roc_auc
from stream.settings import Settings

pytestmark = pytest.mark.benchmark

SEEDS = [int(s) for s in os.environ.get("METERWATCH_BENCH_SEEDS", "2,3").split(",")]
TREE_COUNTS = (25, 10)


@pytest.mark.parametrize("seed", SEEDS)
def test_tree_count_auc_and_cpu_side_by_side(seed: int, tmp_path: Path) -> None:
    settings = Settings()
    readings = tmp_path / f"fleet-{seed}.parquet"
    subprocess.run(
        [str(Path(sys.executable).parent / "meterwatch"), "simulate", "--meters", "100",
         "--days", "7", "--cadence", "5m", "--seed", str(seed), "--theft-share", "0.2",
         "--out", str(readings)],
        check=True, capture_output=True,
    )  # fmt: skip
    print(f"\nseed {seed}: 100 meters x 7 days @ 5 min, 20 % thieves")
    for n_trees in TREE_COUNTS:
        started = time.process_time()
        scored = score_fleet(readings, settings, n_trees=n_trees)
        cpu = time.process_time() - started
        truth, judged = judged_windows(scored, readings, settings)
        parts = [f"{n_trees:>2} trees: replay cpu {cpu:5.1f} s"]
        for label in ["all", *sorted(set(truth.theft_type[judged & truth.theft].tolist()))]:
            positive = truth.theft if label == "all" else truth.theft_type == label
            rows = judged & (positive | truth.clean)
            hst = roc_auc(scored["hst"][rows], positive[rows])
            hybrid = roc_auc(scored["hybrid"][rows], positive[rows])
            parts.append(f"{label} hst {hst:.3f} hybrid {hybrid:.3f}")
            if label == "all":
                assert hst > 0.5 and hybrid > 0.5
        print(" | ".join(parts))
