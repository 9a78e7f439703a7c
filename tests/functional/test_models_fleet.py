"""The detectors inside the whole engine on a small simulated fleet (no servers).

A fleet with thieves is replayed through the engine with the committed autoencoder
artifact; every detector's window scores must rank theft windows above the windows of
clean meters (AUC > 0.5; the benchmark prints the full table on a larger fleet), and
scores must be calibrated 0-100 with clean traffic mostly low.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from detectors.evaluation import roc_auc, window_truth
from detectors.features import FEATURE_NAMES
from detectors.hybrid import HybridScorer
from stream.settings import Settings


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fleet") / "fleet.parquet"
    meterwatch = Path(sys.executable).parent / "meterwatch"
    subprocess.run(
        [str(meterwatch), "simulate", "--meters", "40", "--days", "4", "--cadence", "5m",
         "--theft-share", "0.25", "--seed", "102", "--out", str(out)],
        check=True, capture_output=True,
    )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def scored(fleet: Path) -> dict[str, np.ndarray]:
    from stream.codecs import read_table
    from stream.engine import Engine

    settings = Settings()
    scorer = HybridScorer.create(FEATURE_NAMES, settings.model_artifact, seed=0)
    assert scorer.artifact_loaded, "the committed artifact must load"
    engine = Engine.from_settings(settings, scorer=scorer)
    batch, _ = read_table(fleet)
    outputs = [engine.process(batch), engine.flush()]
    outputs = [o for o in outputs if o.windows_scored]
    result = {
        "meter": np.concatenate([o.window_meter_ids for o in outputs]).astype(str),
        "end": np.concatenate([o.window_end_ms for o in outputs]).astype(np.int64),
    }
    for name in ("hst", "ae", "hybrid"):
        result[name] = np.concatenate([o.scores[name] for o in outputs])
    truth = window_truth(
        fleet.with_suffix(".labels.json"),
        result["meter"].tolist(),
        result["end"],
        settings.window_seconds * 1000,
    )
    first: dict[str, int] = {}
    for meter, end in zip(result["meter"].tolist(), result["end"].tolist(), strict=True):
        first[meter] = min(first.get(meter, end), end)
    warm = result["end"] >= np.array([first[m] for m in result["meter"]]) + 86_400_000
    result["judged"] = warm & (truth.theft | truth.clean)
    result["theft"] = truth.theft
    result["clean"] = truth.clean
    return result


@pytest.mark.slow
@pytest.mark.parametrize("detector", ["hst", "ae", "hybrid"])
def test_theft_windows_rank_above_clean_windows(
    scored: dict[str, np.ndarray], detector: str
) -> None:
    judged = scored["judged"]
    assert scored["theft"][judged].sum() > 100 and scored["clean"][judged].sum() > 1000
    auc = roc_auc(scored[detector][judged], scored["theft"][judged])
    assert auc > 0.6, f"{detector} window AUC {auc:.3f}"


@pytest.mark.slow
@pytest.mark.parametrize("detector", ["hst", "ae", "hybrid"])
def test_scores_are_calibrated_on_clean_traffic(
    scored: dict[str, np.ndarray], detector: str
) -> None:
    clean = scored[detector][scored["judged"] & scored["clean"]]
    assert np.all((clean >= 0) & (clean <= 100))
    assert np.median(clean) < 25  # tail probability > 0.1 for the typical clean window
    assert np.mean(clean >= 75) < 0.05  # far from flagging a fixed share of everything
