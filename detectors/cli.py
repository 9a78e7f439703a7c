"""``meterwatch train-ae``: train the frozen autoencoder on normal windows and export it.

Training data is window features of NORMAL traffic, either

- ``--data FILE`` (repeatable): reading files (CSV/Parquet, the replay input format) of a
  theft-free fleet, for example ``meterwatch simulate --theft-share 0 --seed 11``; they are
  run through the engine (the same code as replay and stream) to get the features; or
- ``--features NPZ``: a matrix saved earlier (arrays ``features``, ``feature_names`` and
  optionally ``meter_ids``), e.g. by ``--save-features``.

The artifact records the recipe (arguments, input file names and SHA-256) so the same
command on the same inputs reproduces its content hash. torch, pyarrow and the engine are
imported inside the command, never at CLI start-up.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from detectors.base import FloatMatrix

FEATURE_CODE = (
    "detectors/features.py",
    "stream/engine.py",
    "stream/windows.py",
    "stream/codecs.py",
    "rules/thresholds.toml",
)
"""Files that decide the training features computed from readings (the thresholds file
holds the baseline parameters); recorded in the recipe, not checked."""
REPO_ROOT = Path(__file__).resolve().parent.parent


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def collect_engine_features(
    paths: list[Path], settings: Any
) -> tuple[FloatMatrix, list[str], tuple[str, ...]]:
    """Run each reading file through a fresh engine; return the scored windows' features,
    their meter ids and the feature names.

    Windows inside a meter's warm-up are left out: their baseline is not settled, and the
    engine never alerts on them either. The warm-up is the engine's ``window_warm`` flag
    when it reports one, else ``settings.warmup_seconds`` after the meter's first window.
    """
    from detectors.features import FEATURE_NAMES
    from stream.codecs import read_table
    from stream.engine import Engine

    warmup_ms = int(settings.warmup_seconds) * 1000
    blocks: list[FloatMatrix] = []
    meters: list[str] = []
    for path in paths:
        # no scorer while collecting: the features do not depend on the models
        engine = Engine.from_settings(settings, scorer=None)
        batch, _rejected = read_table(path)
        first_end: dict[str, int] = {}
        for output in (engine.process(batch), engine.flush()):
            features = np.asarray(output.features, dtype=np.float64)
            if features.size == 0:
                continue
            ids = [str(m) for m in output.window_meter_ids]
            ends = np.asarray(output.window_end_ms, dtype=np.int64)
            warm = getattr(output, "window_warm", None)
            if warm is not None:
                keep = np.asarray(warm, dtype=np.bool_)
            else:
                for meter, end in zip(ids, ends.tolist(), strict=True):
                    first_end[meter] = min(first_end.get(meter, end), end)
                starts = np.array([first_end[m] for m in ids], dtype=np.int64)
                keep = ends >= starts + warmup_ms
            blocks.append(features[keep])
            meters.extend(m for m, k in zip(ids, keep.tolist(), strict=True) if k)
    if not meters:
        raise ValueError("the engine produced no warmed-up windows from the given files")
    return np.vstack(blocks), meters, tuple(FEATURE_NAMES)


def known_ranges(names: tuple[str, ...]) -> dict[str, tuple[float, float]]:
    """The published physical ranges of those features that have one."""
    from detectors.features import FEATURE_RANGES

    return {name: FEATURE_RANGES[name] for name in names if name in FEATURE_RANGES}


def train_ae_command(
    data: Annotated[
        list[Path] | None,
        typer.Option("--data", help="Reading file (CSV/Parquet) of theft-free traffic; repeat."),
    ] = None,
    features: Annotated[
        Path | None,
        typer.Option("--features", help="NPZ with features, feature_names[, meter_ids]."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Artifact path [default: settings]")
    ] = None,
    save_features: Annotated[
        Path | None, typer.Option("--save-features", help="Also save the training matrix here.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Training seed (weights, shuffling, hold-out).")] = 0,
    epochs: Annotated[int, typer.Option(min=1)] = 20,
    batch_size: Annotated[int, typer.Option(min=1)] = 512,
    learning_rate: Annotated[float, typer.Option(min=1e-6)] = 3e-3,
    holdout_share: Annotated[float, typer.Option(min=0.01, max=0.9)] = 0.2,
) -> None:
    """Train the frozen autoencoder on normal windows and export the artifact."""
    from detectors.autoencoder import TrainingConfig, save_artifact, train_autoencoder
    from stream.settings import Settings

    if (data is None) == (features is None):
        typer.echo("error: give either --data FILE... or --features NPZ", err=True)
        raise typer.Exit(code=2)
    # fields come from defaults and METERWATCH_* env; mypy cannot see that without a plugin
    settings = Settings()  # type: ignore[call-arg]
    target = out or settings.model_artifact
    inputs = list(data or []) + ([features] if features is not None else [])
    missing = [p for p in inputs if not p.is_file()]
    if missing:
        typer.echo(f"error: no such file: {missing[0]}", err=True)
        raise typer.Exit(code=2)

    started = time.perf_counter()
    groups: list[str] | None
    from stream.codecs import UnusableInputError

    try:
        if features is not None:
            with np.load(features, allow_pickle=False) as npz:
                matrix = np.asarray(npz["features"], dtype=np.float64)
                names = tuple(str(n) for n in npz["feature_names"])
                groups = [str(m) for m in npz["meter_ids"]] if "meter_ids" in npz else None
        else:
            matrix, meter_list, names = collect_engine_features(list(data or []), settings)
            groups = meter_list
    except (UnusableInputError, ValueError, KeyError, OSError) as exc:
        typer.echo(f"error: unusable training input: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    typer.echo(f"{matrix.shape[0]} normal windows x {matrix.shape[1]} features")
    if save_features is not None:
        np.savez_compressed(
            save_features,
            features=matrix,
            feature_names=np.array(names),
            meter_ids=np.array(groups if groups is not None else []),
        )

    config = TrainingConfig(
        seed=seed,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        holdout_share=holdout_share,
    )
    recipe = {
        "command": "meterwatch train-ae",
        # the code that turned readings into features: a different digest explains a
        # different content hash from the same inputs
        "feature_code_sha256": (
            {} if features is not None else {p: _sha256(REPO_ROOT / p) for p in FEATURE_CODE}
        ),
        "inputs": [{"name": p.name, "sha256": _sha256(p)} for p in inputs],
        "input_kind": "features" if features is not None else "readings",
        "seed": seed,
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "holdout_share": holdout_share,
    }
    try:
        payload = train_autoencoder(
            matrix, names, config, ranges=known_ranges(names), groups=groups, recipe=recipe
        )
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    save_artifact(payload, target)
    seconds = time.perf_counter() - started
    training = payload["training"]
    typer.echo(
        f"wrote {target} ({target.stat().st_size} bytes) content_hash={payload['content_hash']} "
        f"parameters={training['parameters']} train={training['n_train_windows']} "
        f"holdout={training['n_holdout_windows']} final_mse={training['final_train_mse']:.4f} "
        f"in {seconds:.1f}s"
    )
