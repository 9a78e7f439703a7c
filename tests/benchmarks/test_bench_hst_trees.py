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

import numpy as np
import pytest

from detectors.evaluation import roc_auc, window_truth
from detectors.features import FEATURE_NAMES
from detectors.hybrid import HybridScorer
from stream.settings import Settings

pytestmark = pytest.mark.benchmark

SEEDS = [int(s) for s in os.environ.get("METERWATCH_BENCH_SEEDS", "2,3").split(",")]
TREE_COUNTS = (25, 10)


def _replay(readings: Path, settings: Settings, n_trees: int) -> dict[str, np.ndarray]:
    from stream.codecs import read_table
    from stream.engine import Engine

    scorer = HybridScorer.create(FEATURE_NAMES, settings.model_artifact, seed=0, n_trees=n_trees)
    engine = Engine.from_settings(settings, scorer=scorer)
    batch, _ = read_table(readings)
    step = 200_000
    outputs = [
        engine.process(batch.take(np.arange(a, min(a + step, len(batch)))))
        for a in range(0, len(batch), step)
    ]
    outputs.append(engine.flush())
    keep = [o for o in outputs if o.windows_scored]
    return {
        "meter": np.concatenate([np.asarray(o.window_meter_ids, dtype=object) for o in keep]),
        "end": np.concatenate([np.asarray(o.window_end_ms, dtype=np.int64) for o in keep]),
        "hst": np.concatenate([np.asarray(o.scores["hst"], dtype=np.float64) for o in keep]),
        "hybrid": np.concatenate([np.asarray(o.scores["hybrid"], dtype=np.float64) for o in keep]),
    }


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
        scored = _replay(readings, settings, n_trees)
        cpu = time.process_time() - started
        first: dict[str, int] = {}
        for meter, end in zip(scored["meter"].tolist(), scored["end"].tolist(), strict=True):
            first[meter] = min(first.get(meter, end), end)
        warm = scored["end"] >= np.array([first[m] for m in scored["meter"]]) + (
            settings.warmup_seconds * 1000
        )
        truth = window_truth(
            readings.with_suffix(".labels.json"),
            scored["meter"].tolist(),
            scored["end"],
            settings.window_seconds * 1000,
        )
        judged = warm & (truth.theft | truth.clean)
        parts = [f"{n_trees:>2} trees: engine cpu {cpu:5.1f} s"]
        for label in ["all", *sorted(set(truth.theft_type[judged & truth.theft].tolist()))]:
            positive = truth.theft if label == "all" else truth.theft_type == label
            rows = judged & (positive | truth.clean)
            hst = roc_auc(scored["hst"][rows], positive[rows])
            hybrid = roc_auc(scored["hybrid"][rows], positive[rows])
            parts.append(f"{label} hst {hst:.3f} hybrid {hybrid:.3f}")
            if label == "all":
                assert hst > 0.5 and hybrid > 0.5
        print(" | ".join(parts))
