"""Shared by the benchmarks: the meterwatch command line, a simulated fleet run through
simulate -> replay -> evaluate, and the replay of a fleet that judges its windows."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from detectors.evaluation import window_truth
from detectors.features import FEATURE_NAMES
from detectors.hybrid import HybridScorer
from stream.settings import Settings

DAY_MS = 86_400_000


def meterwatch(*args: str) -> tuple[str, float]:
    """Run ``meterwatch ARGS`` (the venv's entry point); its stdout and wall time. A
    non-zero exit fails the benchmark with the command's stderr."""
    exe = shutil.which("meterwatch", path=str(Path(sys.executable).parent)) or "meterwatch"
    started = time.perf_counter()
    done = subprocess.run([exe, *args], capture_output=True, text=True, check=False)  # noqa: S603
    assert done.returncode == 0, f"meterwatch {args[0]}: {done.stderr}"
    return done.stdout, time.perf_counter() - started


def simulate(seed: int, out: Path, meters: int, days: float, cadence: str = "5m") -> None:
    """``meterwatch simulate``: the fleet's readings to ``out``, its labels beside them."""
    meterwatch("simulate", "--meters", str(meters), "--days", str(days), "--cadence", cadence,
               "--seed", str(seed), "--out", str(out))  # fmt: skip


def bypassed_share_at_end(theft: dict[str, Any], end_ms: int) -> float:
    """The share a gradual bypass (its label) had reached at ``end_ms``: the simulator's
    ramp from 0 to ``max_fraction`` over ``ramp_days`` from the theft's start."""
    params = theft["params"]
    grown = (end_ms - int(theft["start_ms"])) / (float(params["ramp_days"]) * DAY_MS)
    return float(params["max_fraction"]) * min(max(grown, 0.0), 1.0)


def simulated_readings(
    seed: int, out: Path, meters: int = 500, days: float = 14
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``meterwatch simulate`` at 5 minutes, read back for a study: the well-formed readings
    (one per meter and timestamp, ``t`` in epoch ms, with ``gateway`` and ``transformer``
    from the labels), sorted by meter and time, and the labels."""
    simulate(seed, out, meters, days)
    labels: dict[str, Any] = json.loads(out.with_suffix(".labels.json").read_text(encoding="utf-8"))
    df = pd.read_parquet(out).dropna(subset=["power_w", "voltage_v", "current_a", "pf"])
    ts = pd.to_datetime(df["ts"], utc=True, errors="coerce", format="ISO8601")
    df = df.assign(t=ts.dt.tz_localize(None).to_numpy().astype("datetime64[ms]").astype("int64"))
    df = df[ts.notna().to_numpy()].drop_duplicates(["meter_id", "t"])
    transformer = {m["meter_id"]: m["transformer_id"] for m in labels["meters"]}
    df["transformer"] = df["meter_id"].map(transformer)
    df["gateway"] = df["gateway_id"]
    return df.sort_values(["meter_id", "t"]), labels


def simulate_replay_evaluate(
    seed: int, root: Path, meters: int = 500, days: float = 14, cadence: str = "5m"
) -> tuple[Path, dict[str, Any]]:
    """The README's three commands for one seed, in ``root``: the fleet file and the
    figures ``evaluate --json`` wrote (``missed_thieves`` among them)."""
    fleet = root / f"fleet_{seed}.parquet"
    replay = root / f"replay_{seed}"
    figures = root / f"figures_{seed}.json"
    simulate(seed, fleet, meters, days, cadence)
    meterwatch("replay", str(fleet), "--out", str(replay), "--no-progress")
    meterwatch("evaluate", "--labels", str(fleet.with_suffix(".labels.json")),
               "--events", str(replay / "events.jsonl"), "--json", str(figures))  # fmt: skip
    result: dict[str, Any] = json.loads(figures.read_text(encoding="utf-8"))
    return fleet, result


def score_fleet(readings: Path, settings: Settings, **scorer_options: Any) -> dict[str, np.ndarray]:
    """Replay the fleet through the engine with the committed artifact; per window the
    meter, the window end and the hst / ae / hybrid scores. ``scorer_options`` go to
    ``HybridScorer.create`` (e.g. ``n_trees``)."""
    from stream.codecs import read_table
    from stream.engine import Engine

    scorer = HybridScorer.create(FEATURE_NAMES, settings.model_artifact, seed=0, **scorer_options)
    engine = Engine.from_settings(settings, scorer=scorer)
    batch, _ = read_table(readings)
    parts: dict[str, list[np.ndarray]] = {"meter": [], "end": [], "hst": [], "ae": [], "hybrid": []}
    step = 200_000  # feed in chunks, as the worker and replay do
    outputs = [
        engine.process(batch.take(np.arange(start, min(start + step, len(batch)))))
        for start in range(0, len(batch), step)
    ]
    outputs.append(engine.flush())
    for out in outputs:
        if out.windows_scored == 0:
            continue
        parts["meter"].append(np.asarray(out.window_meter_ids, dtype=object))
        parts["end"].append(np.asarray(out.window_end_ms, dtype=np.int64))
        for name in ("hst", "ae", "hybrid"):
            parts[name].append(np.asarray(out.scores[name], dtype=np.float64))
    return {k: np.concatenate(v) for k, v in parts.items()}


def judged_windows(
    scored: dict[str, np.ndarray], readings: Path, settings: Settings
) -> tuple[Any, np.ndarray]:
    """The windows' truth from the fleet's labels, and which windows are judged: warmed
    up (past the meter's first window plus the warm-up) and either theft or clean."""
    first_end: dict[str, int] = {}
    for meter, end in zip(scored["meter"].tolist(), scored["end"].tolist(), strict=True):
        first_end[meter] = min(first_end.get(meter, end), end)
    warm = scored["end"] >= np.array([first_end[m] for m in scored["meter"]]) + (
        settings.warmup_seconds * 1000
    )
    truth = window_truth(
        readings.with_suffix(".labels.json"),
        scored["meter"].tolist(),
        scored["end"],
        settings.window_seconds * 1000,
    )
    return truth, warm & (truth.theft | truth.clean)
