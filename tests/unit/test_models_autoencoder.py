"""Frozen autoencoder: reproducible training, verified artifact, degraded mode."""

from __future__ import annotations

import dataclasses
import io
import logging
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from detectors.autoencoder import (
    ArtifactError,
    ArtifactFeatureMismatch,
    AutoencoderDetector,
    TrainingConfig,
    build_model,
    content_hash,
    holdout_mask,
    load_artifact,
    parameter_count,
    save_artifact,
    train_autoencoder,
)
from detectors.hybrid import HybridScorer

NAMES = ("a", "b", "c", "d", "e")


def normal(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 2))
    mixing = np.array([[1.0, 0.5, -0.3, 0.0, 0.2], [0.0, 0.4, 0.8, -0.6, 0.1]])
    return latent @ mixing + 1.0 + rng.normal(0, 0.05, (n, len(NAMES)))


GROUPS = [f"MTR-{i % 40:03d}" for i in range(1200)]
RANGES = {name: (-4.0, 6.0) for name in NAMES}
SMALL = TrainingConfig(seed=5, epochs=4, batch_size=128)


@pytest.fixture(scope="module")
def payload() -> dict[str, Any]:
    return train_autoencoder(
        normal(1200, 0), NAMES, SMALL, ranges=RANGES, groups=GROUPS, recipe={"cmd": "t"}
    )


def test_same_seed_same_data_gives_the_same_hash(payload: dict[str, Any]) -> None:
    again = train_autoencoder(
        normal(1200, 0), NAMES, SMALL, ranges=RANGES, groups=GROUPS, recipe={"cmd": "t"}
    )
    assert again["content_hash"] == payload["content_hash"]


def test_another_seed_gives_another_hash(payload: dict[str, Any]) -> None:
    other = train_autoencoder(
        normal(1200, 0),
        NAMES,
        TrainingConfig(seed=6, epochs=4, batch_size=128),
        ranges=RANGES,
        groups=GROUPS,
    )
    assert other["content_hash"] != payload["content_hash"]


def test_training_leaves_global_torch_settings_alone() -> None:
    import torch

    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    train_autoencoder(normal(400, 1), NAMES, TrainingConfig(seed=1, epochs=1))
    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == deterministic


def test_artifact_round_trips(payload: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "ae.npz"
    save_artifact(payload, path)
    loaded = load_artifact(path)
    assert loaded["content_hash"] == payload["content_hash"] == content_hash(loaded)
    assert loaded["feature_names"] == list(NAMES)
    probe = normal(50, 9)
    fresh = AutoencoderDetector(payload)
    again = AutoencoderDetector.load(path)
    np.testing.assert_array_equal(fresh.score_many(probe), again.score_many(probe))
    assert path.stat().st_size < 100_000


def _write_unchecked(payload: dict[str, Any], path: Path) -> None:
    """Save an edited payload (save_artifact refuses a stale hash, so recompute it)."""
    save_artifact({**payload, "content_hash": content_hash(payload)}, path)


def test_tampered_artifact_fails_the_hash_check(payload: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "ae.npz"
    save_artifact(payload, path)
    with zipfile.ZipFile(path) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    weights = next(n for n in entries if n.endswith("weight.npy"))
    array = np.lib.format.read_array(io.BytesIO(entries[weights]), allow_pickle=False)
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array + np.float32(1e-3), allow_pickle=False)
    entries[weights] = buffer.getvalue()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    with pytest.raises(ArtifactError, match="content hash"):
        load_artifact(path)


def test_unreadable_or_foreign_files_are_artifact_errors(
    payload: dict[str, Any], tmp_path: Path
) -> None:
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"\x00not an artifact")
    with pytest.raises(ArtifactError, match="unreadable"):
        load_artifact(garbage)
    foreign = tmp_path / "foreign.npz"
    _write_unchecked({**payload, "format": "something.else"}, foreign)
    with pytest.raises(ArtifactError, match="not a"):
        load_artifact(foreign)
    pickled = tmp_path / "pickled.npz"  # an object array would need pickle to load: refused
    with zipfile.ZipFile(pickled, "w") as archive:
        archive.writestr("meta.json", '{"format": "x", "w": {"__array__": "arrays/w.npy"}}')
        buffer = io.BytesIO()
        np.lib.format.write_array(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
        archive.writestr("arrays/w.npy", buffer.getvalue())
    with pytest.raises(ArtifactError, match="unreadable"):
        load_artifact(pickled)
    with pytest.raises(ArtifactError, match="no autoencoder artifact"):
        load_artifact(tmp_path / "missing.npz")


def test_saving_twice_gives_the_same_bytes(payload: dict[str, Any], tmp_path: Path) -> None:
    save_artifact(payload, tmp_path / "one.npz")
    save_artifact(payload, tmp_path / "two.npz")
    assert (tmp_path / "one.npz").read_bytes() == (tmp_path / "two.npz").read_bytes()


def test_numpy_inference_equals_the_torch_model(payload: dict[str, Any]) -> None:
    import torch

    detector = AutoencoderDetector(payload)
    model = build_model(len(NAMES), SMALL.hidden).double()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in payload["state_dict"].items()})
    model.eval()
    windows = normal(300, 11)
    z = detector.scaler.transform(windows)
    with torch.no_grad():
        recon = model(torch.from_numpy(z)).numpy()
    expected = np.where(detector.scaler.modelled, (z - recon) ** 2, 0.0)
    np.testing.assert_allclose(detector.reconstruction_errors(windows), expected, atol=1e-9)


def test_a_windows_error_does_not_depend_on_its_batch(payload: dict[str, Any]) -> None:
    """Replay and stream batch the same windows differently: results must be bit-equal."""
    detector = AutoencoderDetector(payload)
    windows = normal(257, 12)
    whole = detector.reconstruction_errors(windows)
    order = np.random.default_rng(1).permutation(len(windows))
    np.testing.assert_array_equal(detector.reconstruction_errors(windows[order]), whole[order])
    for row in (0, 1, 100, 256):
        alone = detector.reconstruction_errors(windows[row : row + 1])
        np.testing.assert_array_equal(alone[0], whole[row])


def test_weights_that_do_not_fit_the_architecture_are_refused(payload: dict[str, Any]) -> None:
    state = dict(payload["state_dict"])
    missing = {k: v for k, v in state.items() if k != "2.bias"}
    with pytest.raises(ArtifactError, match="do not fit"):
        AutoencoderDetector({**payload, "state_dict": missing})
    wrong = {**state, "0.weight": np.zeros((3, 3), dtype=np.float32)}
    with pytest.raises(ArtifactError, match="layer 0"):
        AutoencoderDetector({**payload, "state_dict": wrong})
    bad = {**state, "0.bias": np.full_like(state["0.bias"], np.nan)}
    with pytest.raises(ArtifactError, match="not finite"):
        AutoencoderDetector({**payload, "state_dict": bad})


def test_scoring_with_the_artifact_does_not_import_torch(
    payload: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "ae.npz"
    save_artifact(payload, path)
    script = (
        "import sys, numpy as np\n"
        "from pathlib import Path\n"
        "from detectors.autoencoder import AutoencoderDetector\n"
        f"d = AutoencoderDetector.load(Path({str(path)!r}))\n"
        "d.score_many(np.ones((4, 5)))\n"
        "print('torch' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "False"


def test_save_refuses_a_payload_whose_hash_is_stale(
    payload: dict[str, Any], tmp_path: Path
) -> None:
    stale = dict(payload)
    stale["recipe"] = {"cmd": "edited afterwards"}
    with pytest.raises(ValueError, match="content_hash"):
        save_artifact(stale, tmp_path / "x.npz")


def test_reconstruction_error_points_at_the_broken_feature(payload: dict[str, Any]) -> None:
    detector = AutoencoderDetector(payload)
    windows = normal(200, 3)
    broken = windows.copy()
    broken[:, 3] += 5.0
    errors = detector.reconstruction_errors(broken)
    assert np.mean(np.argmax(errors, axis=1) == 3) > 0.9
    assert np.median(detector.score_many(broken)) > 10 * np.median(detector.score_many(windows))
    calibrated = detector.calibrated(detector.score_many(windows))
    assert 0 <= np.median(calibrated) < 20  # normal traffic scores low
    assert np.all(detector.calibrated(detector.score_many(broken)) > 90)


def test_nan_and_inf_inputs_give_finite_scores(payload: dict[str, Any]) -> None:
    detector = AutoencoderDetector(payload)
    rows = normal(3, 4)
    rows[0, 0], rows[1, 1], rows[2, 2] = np.nan, np.inf, -np.inf
    assert np.all(np.isfinite(detector.score_many(rows)))


def test_hybrid_with_artifact(payload: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "ae.npz"
    save_artifact(payload, path)
    scorer = HybridScorer.create(NAMES, path, seed=0, window_size=100, calibration_min_count=50)
    assert scorer.artifact_loaded
    assert scorer.model_version == f"hst-1+ae-{payload['content_hash'][:8]}"
    windows = normal(20, 6)
    windows[0, 4] = 9.0
    result = scorer.score_windows(windows, np.ones(20, dtype=bool))
    assert result.top_features[0][0][0] == "e"
    assert len(result.top_features) == 20 and all(len(t) <= 3 for t in result.top_features)
    assert np.all(np.isfinite(result.ae)) and np.all(result.hybrid == result.ae)  # HST warming
    clone = pickle.loads(pickle.dumps(scorer))  # noqa: S301 - our own bytes
    assert clone.artifact_loaded and clone.model_version == scorer.model_version


def test_missing_or_corrupt_artifact_degrades_with_a_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 truncated")
    for path in (tmp_path / "missing.npz", corrupt):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="detectors.hybrid"):
            scorer = HybridScorer.create(NAMES, path, seed=0)
        assert not scorer.artifact_loaded
        assert scorer.model_version == "hst-1"
        assert any("Half-Space Trees only" in r.getMessage() for r in caplog.records)
        result = scorer.score_windows(normal(4, 7), np.ones(4, dtype=bool))
        assert np.all(np.isnan(result.ae)) and np.all(np.isfinite(result.hybrid))


def test_feature_list_mismatch_is_an_error(payload: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "ae.npz"
    save_artifact(payload, path)
    with pytest.raises(ArtifactFeatureMismatch, match="engine-only: \\['f'\\]"):
        HybridScorer.create((*NAMES, "f"), path, seed=0)
    with pytest.raises(ArtifactFeatureMismatch, match="order differs: True"):
        HybridScorer.create(tuple(reversed(NAMES)), path, seed=0)


def test_too_little_training_data_is_refused() -> None:
    with pytest.raises(ValueError, match="too few normal windows"):
        train_autoencoder(normal(40, 0), NAMES, SMALL)


def test_holdout_is_by_meter_when_meters_are_known() -> None:
    mask = holdout_mask(len(GROUPS), GROUPS, 0.25, seed=1)
    held = {g for g, m in zip(GROUPS, mask, strict=True) if m}
    trained = {g for g, m in zip(GROUPS, mask, strict=True) if not m}
    assert held and trained and not held & trained
    with pytest.raises(ValueError, match="holdout_share"):
        holdout_mask(10, None, 1.0, seed=1)


def test_model_shape() -> None:
    model = build_model(20)
    sizes = [m.out_features for m in model if hasattr(m, "out_features")]
    assert sizes == [16, 6, 16, 20]
    assert parameter_count(model) == 20 * 16 + 16 + 16 * 6 + 6 + 6 * 16 + 16 + 16 * 20 + 20


def test_features_constant_in_normal_traffic_are_not_modelled() -> None:
    names = (*NAMES, "always_zero")
    windows = np.column_stack([normal(1200, 0), np.zeros(1200)])
    ranges = {**RANGES, "always_zero": (0.0, 1.0)}
    payload = train_autoencoder(windows, names, SMALL, ranges=ranges, groups=GROUPS)
    assert payload["training"]["unmodelled_features"] == ["always_zero"]
    detector = AutoencoderDetector(payload)
    probe = np.column_stack([normal(20, 8), np.zeros(20)])
    lit = probe.copy()
    lit[:, -1] = 1.0  # the rules judge this feature, not the autoencoder
    np.testing.assert_array_equal(detector.score_many(probe), detector.score_many(lit))
    assert np.all(detector.reconstruction_errors(lit)[:, -1] == 0.0)


def test_nothing_to_model_is_refused() -> None:
    with pytest.raises(ValueError, match="no feature varies"):
        train_autoencoder(np.ones((400, len(NAMES))), NAMES, SMALL)


def test_the_scorer_maps_a_batch_once_only_when_both_models_share_the_map(
    payload: dict[str, Any], tmp_path: Path
) -> None:
    """HST's [0, 1] map is reused as the autoencoder's input only when the artifact's map
    is the same; either way the errors equal the autoencoder's own, bit for bit, and the
    input is left alone."""
    path = tmp_path / "ae.npz"
    save_artifact(payload, path)
    same = HybridScorer.create(NAMES, path, seed=0, window_size=100, feature_ranges=RANGES)
    other = HybridScorer.create(NAMES, path, seed=0, window_size=100)  # HST: default ranges
    assert same.shared_unit_map and not other.shared_unit_map
    windows = normal(400, 7) * 3.0
    windows[5, 2], windows[9, 1], windows[11, 0] = np.nan, np.inf, -1e308
    kept = windows.copy()
    expected = AutoencoderDetector(payload).reconstruction_errors(windows)
    for scorer in (same, other):
        result = scorer.score_windows(windows, np.ones(len(windows), dtype=bool))
        np.testing.assert_array_equal(result.attribution, expected)
        np.testing.assert_array_equal(windows, kept)


def test_errors_do_not_depend_on_the_inference_block_size(
    payload: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch longer than a block is run through the network block by block: the same
    errors, bit for bit, including the last partial block and a given [0, 1] map."""
    import detectors.autoencoder as autoencoder_module

    detector = AutoencoderDetector(payload)
    windows = normal(100, 13)
    windows[50, 1] = np.nan
    whole = detector.reconstruction_errors(windows)
    monkeypatch.setattr(autoencoder_module, "AE_BLOCK_ROWS", 7)
    np.testing.assert_array_equal(detector.reconstruction_errors(windows), whole)
    unit = detector.scaler.unit_map(windows)
    np.testing.assert_array_equal(detector.reconstruction_errors(windows, unit), whole)
    assert detector.reconstruction_errors(windows[:0]).shape == (0, len(NAMES))


def test_inference_adds_products_in_feature_order(payload: dict[str, Any]) -> None:
    """The network's arithmetic is pinned, not just close: each output is the products
    of its inputs added one at a time in input order (what einsum did in the row layout
    the artifact's scores were calibrated with), so a faster layout may not change a bit."""
    detector = AutoencoderDetector(payload)
    windows = normal(333, 14) * np.random.default_rng(2).choice([1e-3, 1.0, 1e3], (333, 1))
    z = detector.scaler.transform(windows)
    recon = z
    for index, (weight, bias) in enumerate(detector.layers):
        total = recon[:, 0:1] * weight[0]
        for feature in range(1, weight.shape[0]):
            total = total + recon[:, feature : feature + 1] * weight[feature]
        recon = total + bias
        if index < len(detector.layers) - 1:
            recon = np.tanh(recon)
    expected = np.where(detector.scaler.modelled, (z - recon) ** 2, 0.0)
    np.testing.assert_array_equal(detector.reconstruction_errors(windows), expected)


def test_compiled_standardisation_is_the_scalers_transform(payload: dict[str, Any]) -> None:
    """The compiled map and standardisation (detectors.kernels) give scaler.transform's
    bits, NaN cells, infinities, huge values and an unmodelled feature included."""
    from detectors.autoencoder import Z_CLIP
    from detectors.kernels import standardise_t

    detector = AutoencoderDetector(payload)
    scaler = detector.scaler
    rows = normal(200, 21) * np.random.default_rng(3).choice([1e-3, 1.0, 1e3, 1e9], (200, 1))
    rows[5, 0], rows[6, 1], rows[7, 2], rows[8, 3] = np.nan, np.inf, -np.inf, -0.0
    modelled = scaler.modelled.copy()
    modelled[1] = False
    unit = scaler.unit_map(rows)
    np.testing.assert_array_equal(
        unit.view(np.int64), scaler.unit_map.map_numpy(rows).view(np.int64)
    )
    got = standardise_t(rows, unit, scaler.mean, scaler.scale, modelled, Z_CLIP)
    unmodelled = dataclasses.replace(scaler, modelled=modelled)
    expected = unmodelled.transform(rows, unit).T
    np.testing.assert_array_equal(got.view(np.int64), expected.view(np.int64))
