"""The frozen autoencoder: model, deterministic training, artifact, batched inference.

A small MLP (F -> 16 -> 6 -> 16 -> F, tanh) learns to reconstruct standardised window
features of NORMAL traffic. A window it reconstructs badly is unlike normal traffic; the
per-feature squared error says which features are unusual (``top_features``).

Torch trains the model; numpy runs it. The artifact (format v2, ``.npz``) is a zip of
``.npy`` arrays (weights and scaler) plus one ``meta.json`` (feature list, calibration,
training settings, recipe), read with ``allow_pickle=False``, so loading never runs
pickled code and needs neither torch nor any other extra dependency. Why not the v1
``torch.save`` file: importing torch costs ~1.7 s of CPU in every process that scores
(15 % of a one-million-reading replay), for four matrix products of at most 18 x 16 that
numpy does as fast. Inference is float64 from the float32 trained weights; a unit test
checks it equals the torch model's forward pass. The zip entries carry a fixed date, so
the bytes depend only on the content. Its ``content_hash`` is a SHA-256 over a canonical
form of the content (array dtype, shape and bytes; everything else as sorted JSON), so it
does not depend on the zip container's layout; loading recomputes and checks it.

Training is reproducible: fixed seed, one CPU thread, deterministic algorithms, a seeded
shuffling generator, a hold-out split derived from hashes of meter ids. Two runs on the
same data and arguments give the same content hash on the same platform (BLAS kernels of
another CPU family may differ in the last bits).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from detectors.base import FloatMatrix, FloatVector
from detectors.calibration import FrozenTailCalibrator
from detectors.hst import UnitIntervalMap
from detectors.kernels import dense_layer, standardise_t

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

ARTIFACT_FORMAT = "meterwatch.autoencoder.v2"
ARRAY_KEY = "__array__"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed, so the bytes depend only on the content
_META = "meta.json"
HIDDEN_SIZES = (16, 6)
STD_FLOOR = 0.01
"""Smallest scale of a standardised feature, as a share of its physical range: a feature
constant on all normal windows (e.g. negative-power share) would otherwise turn any tiny
deviation into an infinite error."""
Z_CLIP = 50.0
"""Standardised inputs are clipped to +-Z_CLIP so one absurd value cannot overflow."""
LOG_ERROR_FLOOR = 1e-9
#: rows per pass of the network at inference: a block's activations stay in the CPU cache
#: (measured 20% faster than one pass over a replay batch of 100k windows); rows are
#: independent, so the result does not depend on it
AE_BLOCK_ROWS = 2048
CONSTANT_SPREAD = 1e-9
"""Training spread (in [0, 1] units) at or below which a feature counts as constant."""
USUAL_SHARE_LIMIT = 0.99
"""A feature at exactly its usual value in at least this share of normal windows (a cue
share such as negative-power share: 0 almost always) is not modelled."""


class ArtifactError(Exception):
    """The artifact is missing, unreadable, corrupt or of an unknown format."""


class ArtifactFeatureMismatch(ValueError):
    """The artifact was trained on a different feature list than the engine computes."""


@dataclass(frozen=True)
class TrainingConfig:
    seed: int = 0
    epochs: int = 20
    batch_size: int = 512
    learning_rate: float = 3e-3
    holdout_share: float = 0.2
    hidden: tuple[int, ...] = HIDDEN_SIZES


# --- canonical content hash --------------------------------------------------------------


def _canonical(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        data = np.ascontiguousarray(value).tobytes()
        return {
            ARRAY_KEY: str(value.dtype),
            "shape": list(value.shape),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return value


def content_hash(payload: Mapping[str, Any]) -> str:
    """SHA-256 of the artifact content, excluding the ``content_hash`` field itself."""
    body = {k: v for k, v in payload.items() if k != "content_hash"}
    text = json.dumps(_canonical(body), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- model -------------------------------------------------------------------------------


def build_model(n_features: int, hidden: Sequence[int] = HIDDEN_SIZES) -> torch.nn.Sequential:
    """Symmetric tanh MLP: F -> h1 -> ... -> bottleneck -> ... -> h1 -> F."""
    import torch

    sizes = [n_features, *hidden, *reversed(list(hidden)[:-1]), n_features]
    layers: list[torch.nn.Module] = []
    for index, (size_in, size_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(torch.nn.Linear(size_in, size_out))
        if index < len(sizes) - 2:
            layers.append(torch.nn.Tanh())
    return torch.nn.Sequential(*layers)


def parameter_count(model: torch.nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


@contextmanager
def _deterministic_torch(seed: int) -> Iterator[None]:
    """One thread, deterministic kernels, seeded; restores the global settings after."""
    import torch

    threads = torch.get_num_threads()
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
        torch.set_num_threads(threads)


@dataclass(frozen=True)
class FeatureScaler:
    """Model input: each feature through its FIXED physical-range map to [0, 1] (the one
    Half-Space Trees use; it tames heavy tails such as a 10x ratio to baseline), then
    standardised with the mean and spread of the normal training windows. NaN inputs
    become the training mean (no evidence).

    A feature at its usual value in at least 99% of the normal training windows (a cue
    share such as the share of negative power or of frozen readings: 0 almost always)
    has no normal spread to learn: scoring it would turn the autoencoder into a hard "any
    non-zero value is infinitely odd" threshold, which is the job of the physical rules
    (with their baseline checks), and it made 97% of the windows of a real, idle
    sub-circuit (AMPds2 B1E: near-zero power most of the time) score >= 75. Such features
    are left out of the model (``modelled`` False: input and error held at 0) and listed
    in the artifact.
    """

    unit_map: UnitIntervalMap
    mean: FloatVector
    scale: FloatVector
    modelled: npt.NDArray[np.bool_]

    @classmethod
    def fit(
        cls,
        X: FloatMatrix,
        feature_names: Sequence[str],
        ranges: Mapping[str, tuple[float, float]] | None,
    ) -> FeatureScaler:
        unit_map = UnitIntervalMap.build(feature_names, ranges)
        unit = np.where(np.isnan(X), np.nan, unit_map(X))
        mean = np.nan_to_num(np.nanmean(unit, axis=0), nan=0.5)
        spread = np.nan_to_num(np.nanstd(unit, axis=0), nan=0.0)
        usual = np.nanmedian(unit, axis=0)
        at_usual = np.mean(np.abs(unit - usual) <= CONSTANT_SPREAD, axis=0)
        modelled = (spread > CONSTANT_SPREAD) & (at_usual < USUAL_SHARE_LIMIT)
        return cls(unit_map, mean, np.maximum(spread, STD_FLOOR), modelled)

    def transform(self, X: FloatMatrix, unit: FloatMatrix | None = None) -> FloatMatrix:
        """Standardised model input; ``unit`` is ``self.unit_map(X)`` when the caller has
        it already (the scorer maps a batch once for both models when the maps agree)."""
        values = np.asarray(X, dtype=np.float64)
        # the same arithmetic as (unit - mean) / scale, NaN and unmodelled -> 0, clipped,
        # done in place on one new array
        z = np.subtract(self.unit_map(values) if unit is None else unit, self.mean)
        z /= self.scale
        # (NaN cells, then whole unmodelled columns: 2.5x faster than one combined mask)
        np.copyto(z, 0.0, where=np.isnan(values))
        z[:, ~self.modelled] = 0.0
        return np.clip(z, -Z_CLIP, Z_CLIP, out=z)

    def to_payload(self) -> dict[str, Any]:
        return {
            "range_low": self.unit_map.low.copy(),
            "range_span": self.unit_map.span.copy(),
            "range_known": self.unit_map.has_range.copy(),
            "mean": self.mean.copy(),
            "scale": self.scale.copy(),
            "modelled": self.modelled.copy(),
        }

    @classmethod
    def from_payload(cls, names: Sequence[str], data: Mapping[str, Any]) -> FeatureScaler:
        arrays = {k: np.asarray(data[k]) for k in ("range_low", "range_span", "mean")}
        scale = np.asarray(data["scale"], dtype=np.float64)
        known = np.asarray(data["range_known"], dtype=np.bool_)
        modelled = np.asarray(data["modelled"], dtype=np.bool_)
        width = (len(names),)
        if any(a.shape != width for a in (*arrays.values(), scale, known, modelled)):
            raise ArtifactError("artifact scaler does not match its feature list")
        if np.any(scale <= 0) or np.any(arrays["range_span"] <= 0):
            raise ArtifactError("artifact scaler has non-positive scales")
        unit_map = UnitIntervalMap(
            tuple(names),
            arrays["range_low"].astype(np.float64),
            arrays["range_span"].astype(np.float64),
            known,
        )
        return cls(unit_map, arrays["mean"].astype(np.float64), scale, modelled)


def holdout_mask(
    n_rows: int, groups: Sequence[str] | None, share: float, seed: int
) -> npt.NDArray[np.bool_]:
    """Rows held out for calibration: whole meters when ``groups`` (meter ids) is given,
    so calibration sees meters the model never trained on; a seeded draw otherwise."""
    if not 0.0 < share < 1.0:
        raise ValueError("holdout_share must be in (0, 1)")
    if groups is None:
        draw = np.random.default_rng(seed).random(n_rows)
        return np.asarray(draw < share)
    if len(groups) != n_rows:
        raise ValueError("groups must have one entry per row")
    unique = sorted(set(groups))
    held = {
        g
        for g in unique
        if int(hashlib.sha256(f"{seed}:{g}".encode()).hexdigest()[:8], 16) / 2**32 < share
    }
    if not held or len(held) == len(unique):
        # too few meters to split by meter: fall back to a seeded row draw
        return holdout_mask(n_rows, None, share, seed)
    return np.array([g in held for g in groups], dtype=np.bool_)


def train_autoencoder(
    X: FloatMatrix,
    feature_names: Sequence[str],
    config: TrainingConfig,
    *,
    ranges: Mapping[str, tuple[float, float]] | None = None,
    groups: Sequence[str] | None = None,
    recipe: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Train on normal windows and return the artifact payload (with its content hash).

    ``ranges`` are the features' fixed physical ranges (``detectors.features.
    FEATURE_RANGES``); ``groups`` the meter id of each row, for a by-meter hold-out."""
    import torch

    names = list(feature_names)
    matrix = np.asarray(X, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] != len(names):
        raise ValueError(f"expected a (N, {len(names)}) matrix, got shape {matrix.shape}")
    held = holdout_mask(matrix.shape[0], groups, config.holdout_share, config.seed)
    train, holdout = matrix[~held], matrix[held]
    if train.shape[0] < 50 or holdout.shape[0] < 20:
        raise ValueError(
            f"too few normal windows: {train.shape[0]} to train (>= 50), "
            f"{holdout.shape[0]} to calibrate (>= 20)"
        )
    scaler = FeatureScaler.fit(train, names, ranges)
    if not scaler.modelled.any():
        raise ValueError("no feature varies across the normal windows: nothing to model")
    with _deterministic_torch(config.seed):
        model = build_model(len(names), config.hidden)
        inputs = torch.from_numpy(scaler.transform(train).astype(np.float32))
        optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
        shuffle = torch.Generator().manual_seed(config.seed)
        loss_value = math.nan
        model.train()
        for _ in range(config.epochs):
            order = torch.randperm(inputs.shape[0], generator=shuffle)
            total, count = 0.0, 0
            for start in range(0, inputs.shape[0], config.batch_size):
                batch = inputs[order[start : start + config.batch_size]]
                optimiser.zero_grad()
                loss = torch.mean((model(batch) - batch) ** 2)
                loss.backward()  # type: ignore[no-untyped-call]
                optimiser.step()
                total += float(loss.detach()) * batch.shape[0]
                count += batch.shape[0]
            loss_value = total / count
        model.eval()
        state = {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}
    detector = AutoencoderDetector._from_parts(names, config.hidden, state, scaler, None)
    holdout_raw = detector.score_many(holdout)
    calibration = FrozenTailCalibrator.fit(np.log10(holdout_raw + LOG_ERROR_FLOOR))
    payload: dict[str, Any] = {
        "format": ARTIFACT_FORMAT,
        "feature_names": names,
        "hidden": list(config.hidden),
        "state_dict": state,
        "scaler": scaler.to_payload(),
        "calibration": {"space": "log10_mse", **calibration.to_dict()},
        "training": {
            "seed": config.seed,
            "epochs": config.epochs,
            "batch_size": config.batch_size,
            "learning_rate": config.learning_rate,
            "holdout_share": config.holdout_share,
            "n_train_windows": int(train.shape[0]),
            "n_holdout_windows": int(holdout.shape[0]),
            "final_train_mse": float(loss_value),
            "holdout_median_mse": float(np.median(holdout_raw)),
            "parameters": parameter_count(model),
            "unmodelled_features": [
                n for n, m in zip(names, scaler.modelled, strict=True) if not m
            ],
            "torch_version": str(torch.__version__).split("+")[0],
        },
        "recipe": dict(recipe or {}),
    }
    payload["content_hash"] = content_hash(payload)
    return payload


# --- artifact I/O -----------------------------------------------------------------------


def _split_arrays(value: Any, prefix: str, arrays: dict[str, FloatMatrix]) -> Any:
    """JSON-able copy of ``value`` with every array replaced by a reference to a zip entry."""
    if isinstance(value, np.ndarray):
        name = f"arrays/{prefix}.npy"
        arrays[name] = value
        return {ARRAY_KEY: name}
    if isinstance(value, Mapping):
        return {str(k): _split_arrays(v, f"{prefix}/{k}", arrays) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_split_arrays(v, f"{prefix}/{i}", arrays) for i, v in enumerate(value)]
    return value


def _join_arrays(value: Any, archive: zipfile.ZipFile) -> Any:
    if isinstance(value, dict):
        if set(value) == {ARRAY_KEY}:
            with archive.open(str(value[ARRAY_KEY])) as handle:
                return np.lib.format.read_array(io.BytesIO(handle.read()), allow_pickle=False)
        return {k: _join_arrays(v, archive) for k, v in value.items()}
    if isinstance(value, list):
        return [_join_arrays(v, archive) for v in value]
    return value


def save_artifact(payload: Mapping[str, Any], path: Path) -> None:
    """Write atomically (temp file then rename) so a crash never leaves half a file.
    The bytes depend only on the content: sorted entries, a fixed date, no compression
    (the arrays are a few KB of float32 noise that does not compress)."""
    if payload.get("content_hash") != content_hash(payload):
        raise ValueError("payload content_hash does not match its content")
    arrays: dict[str, FloatMatrix] = {}
    meta = _split_arrays(dict(payload), "", arrays)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        entries = {_META: json.dumps(meta, sort_keys=True, indent=1).encode("utf-8")}
        for name, array in arrays.items():
            npy = io.BytesIO()
            np.lib.format.write_array(npy, np.ascontiguousarray(array), allow_pickle=False)
            entries[name] = npy.getvalue()
        for name in sorted(entries):
            archive.writestr(zipfile.ZipInfo(name, date_time=_ZIP_DATE), entries[name])
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(buffer.getvalue())
    partial.replace(path)


def load_artifact(path: Path) -> dict[str, Any]:
    """Read and verify an artifact; raises :class:`ArtifactError` with the reason."""
    if not path.is_file():
        raise ArtifactError(f"no autoencoder artifact at {path}")
    try:
        with zipfile.ZipFile(path) as archive:
            meta = json.loads(archive.read(_META))
            payload = _join_arrays(meta, archive)
    except Exception as exc:  # any unreadable file is one failure mode for the caller
        raise ArtifactError(f"unreadable autoencoder artifact {path}: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != ARTIFACT_FORMAT:
        raise ArtifactError(f"{path} is not a {ARTIFACT_FORMAT} artifact")
    expected = payload.get("content_hash")
    actual = content_hash(payload)
    if expected != actual:
        raise ArtifactError(f"{path} content hash {actual[:12]} != recorded {str(expected)[:12]}")
    return payload


# --- inference ------------------------------------------------------------------------------


def _numpy_layers(
    state: Mapping[str, Any], n_features: int, hidden: Sequence[int]
) -> list[tuple[FloatMatrix, FloatVector]]:
    """(W transposed, b) of each linear layer of :func:`build_model`, in float64, checked
    against the architecture the artifact declares."""
    sizes = [n_features, *hidden, *reversed(list(hidden)[:-1]), n_features]
    # torch.nn.Sequential names its linear layers 0, 2, 4, ... (a Tanh between each)
    expected = {f"{2 * k}.{part}" for k in range(len(sizes) - 1) for part in ("weight", "bias")}
    if set(state) != expected:
        raise ArtifactError(
            f"artifact weights do not fit the model: keys {sorted(state)} != {sorted(expected)}"
        )
    layers = []
    for k, (size_in, size_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        weight = np.asarray(state[f"{2 * k}.weight"], dtype=np.float64)
        bias = np.asarray(state[f"{2 * k}.bias"], dtype=np.float64)
        if weight.shape != (size_out, size_in) or bias.shape != (size_out,):
            raise ArtifactError(
                f"artifact weights do not fit the model: layer {k} has {weight.shape}/"
                f"{bias.shape}, expected {(size_out, size_in)}/{(size_out,)}"
            )
        if not (np.isfinite(weight).all() and np.isfinite(bias).all()):
            raise ArtifactError(f"artifact weights of layer {k} are not finite")
        layers.append((np.ascontiguousarray(weight.T), bias))
    return layers


class AutoencoderDetector:
    """Frozen autoencoder as a :class:`WindowDetector`.

    ``score_many`` is the raw score: mean squared reconstruction error of the
    standardised features (high = unlike normal traffic). ``calibrated`` maps it to 0-100
    with the calibration stored in the artifact. ``learn_one``/``learn_many`` do nothing:
    the model is frozen (it changes only by training a new artifact).
    """

    def __init__(self, payload: Mapping[str, Any]) -> None:
        try:
            names = [str(n) for n in payload["feature_names"]]
            hidden = tuple(int(h) for h in payload["hidden"])
            state = dict(payload["state_dict"])
            scaler = FeatureScaler.from_payload(names, dict(payload["scaler"]))
            calibration = FrozenTailCalibrator.from_dict(dict(payload["calibration"]))
            digest = str(payload["content_hash"])
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ArtifactError(f"artifact content malformed: {exc}") from exc
        self._init(names, hidden, state, scaler, calibration, digest)

    @classmethod
    def _from_parts(
        cls,
        names: Sequence[str],
        hidden: Sequence[int],
        state: Mapping[str, Any],
        scaler: FeatureScaler,
        calibration: FrozenTailCalibrator | None,
    ) -> AutoencoderDetector:
        detector = cls.__new__(cls)
        detector._init(list(names), tuple(hidden), dict(state), scaler, calibration, "")
        return detector

    def _init(
        self,
        names: list[str],
        hidden: tuple[int, ...],
        state: dict[str, Any],
        scaler: FeatureScaler,
        calibration: FrozenTailCalibrator | None,
        digest: str,
    ) -> None:
        self.feature_names = tuple(names)
        self.scaler = scaler
        self.calibration = calibration
        self.content_hash = digest
        self.layers = _numpy_layers(state, len(names), hidden)

    @classmethod
    def load(cls, path: Path) -> AutoencoderDetector:
        return cls(load_artifact(path))

    def check_features(self, feature_names: Sequence[str]) -> None:
        if tuple(feature_names) != self.feature_names:
            missing = sorted(set(feature_names) - set(self.feature_names))
            extra = sorted(set(self.feature_names) - set(feature_names))
            raise ArtifactFeatureMismatch(
                "autoencoder artifact was trained on a different feature list "
                f"(engine-only: {missing}, artifact-only: {extra}, order differs: "
                f"{not missing and not extra}); retrain with `meterwatch train-ae`"
            )

    def reconstruction_errors(self, X: FloatMatrix, unit: FloatMatrix | None = None) -> FloatMatrix:
        """Per-feature squared error in standardised units, shape (K, F); one batch.
        ``unit``: ``self.scaler.unit_map(X)`` if the caller has it (see ``transform``)."""
        matrix = np.asarray(X, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[1] != len(self.feature_names):
            raise ValueError(
                f"expected a (K, {len(self.feature_names)}) matrix, got shape {matrix.shape}"
            )
        n_rows = matrix.shape[0]
        if n_rows <= AE_BLOCK_ROWS:
            return self._errors_block(matrix, unit)
        errors = np.empty(matrix.shape, dtype=np.float64)
        for start in range(0, n_rows, AE_BLOCK_ROWS):
            rows = slice(start, start + AE_BLOCK_ROWS)
            errors[rows] = self._errors_block(matrix[rows], None if unit is None else unit[rows])
        return errors

    def _errors_block(self, matrix: FloatMatrix, unit: FloatMatrix | None) -> FloatMatrix:
        if matrix.shape[0] == 0:
            return np.zeros(matrix.shape, dtype=np.float64)
        scaler = self.scaler
        rows = np.ascontiguousarray(matrix, dtype=np.float64)
        mapped = np.ascontiguousarray(scaler.unit_map(rows) if unit is None else unit)
        # compiled: scaler.transform(matrix, unit), transposed (features x rows)
        z_t = standardise_t(rows, mapped, scaler.mean, scaler.scale, scaler.modelled, Z_CLIP)
        # not matmul: a row's result must not depend on the batch around it (replay and
        # stream batch the same windows differently), and BLAS picks kernels by matrix
        # shape and may change the last bits. The compiled layer adds each output's
        # products in input-feature order, one multiply and one add at a time (what einsum
        # did, tests/unit/test_models_autoencoder.py), in the transposed layout (features
        # x rows) so its inner loop runs along contiguous rows
        recon_t = z_t
        last = len(self.layers) - 1
        for index, (weight, bias) in enumerate(self.layers):
            recon_t = dense_layer(weight, bias, recon_t)
            if index < last:
                np.tanh(recon_t, out=recon_t)
        # (z - recon) ** 2, zero where not modelled: in place on the last layer's output
        errors_t = np.subtract(z_t, recon_t, out=recon_t)
        np.square(errors_t, out=errors_t)
        errors_t[~self.scaler.modelled] = 0.0
        return np.ascontiguousarray(errors_t.T)

    def score_many(self, X: FloatMatrix) -> FloatVector:
        return np.asarray(self.reconstruction_errors(X).mean(axis=1), dtype=np.float64)

    def calibrated(self, raw: FloatVector) -> FloatVector:
        if self.calibration is None:
            raise ArtifactError("this autoencoder has no calibration")
        return self.calibration.score(np.log10(np.asarray(raw) + LOG_ERROR_FLOOR))

    def learn_many(self, X: FloatMatrix) -> None:
        """Frozen: learning happens offline in ``train_autoencoder``."""

    def _row(self, x: Mapping[str, float]) -> FloatMatrix:
        return np.array([[float(x.get(name, math.nan)) for name in self.feature_names]])

    def score_one(self, x: Mapping[str, float]) -> float:
        return float(self.score_many(self._row(x))[0])

    def learn_one(self, x: Mapping[str, float]) -> None:
        """Frozen: see :meth:`learn_many`."""
