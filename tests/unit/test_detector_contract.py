"""The contract every window detector honours (detectors/base.py WindowDetector).

Each detector (Half-Space Trees wrapper, frozen autoencoder, hybrid scorer) runs through
the same checks: it satisfies the protocol, a fixed seed gives the same scores, it
survives a pickle round trip with identical behaviour, it never mutates its input, and
it ranks abnormal windows above normal ones (AUC > 0.5, high = suspicious).

Data: windows of a correlated "normal" feature process versus windows where one or two
features are pushed off (a drop to zero, a jump), the shape theft gives baseline-
normalised features. Once the simulator and engine land, the simulator-fleet variant in
tests/functional/test_models_fleet.py runs the same AUC check on engine features.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from detectors.autoencoder import TrainingConfig, save_artifact, train_autoencoder
from detectors.base import WindowDetector
from detectors.hst import HalfSpaceTreesDetector
from detectors.hybrid import HybridScorer

NAMES = ("ratio_to_baseline", "max_step", "flatness", "near_zero_share", "pf_level", "pf_jitter")


def normal_windows(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    load = rng.lognormal(0.0, 0.25, n)
    return np.column_stack(
        [
            load,
            0.2 * load + rng.normal(0, 0.03, n),
            rng.uniform(0.0, 0.1, n),
            np.zeros(n) + rng.uniform(0, 0.02, n),
            0.93 + rng.normal(0, 0.02, n),
            np.abs(rng.normal(0.01, 0.005, n)),
        ]
    )


def abnormal_windows(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    windows = normal_windows(n, seed + 1000)
    kind = rng.integers(0, 3, n)
    bypass, tamper, spike = kind == 0, kind == 1, kind == 2
    windows[bypass, 0] = rng.uniform(0.0, 0.05, bypass.sum())
    windows[bypass, 3] = rng.uniform(0.8, 1.0, bypass.sum())
    windows[tamper, 4] = rng.uniform(0.3, 0.6, tamper.sum())
    windows[spike, 1] = rng.uniform(2.0, 4.0, spike.sum())
    return windows


def auc(normal_scores: np.ndarray, abnormal_scores: np.ndarray) -> float:
    """P(abnormal score > normal score), ties counting half (Mann-Whitney)."""
    greater = (abnormal_scores[:, None] > normal_scores[None, :]).mean()
    ties = (abnormal_scores[:, None] == normal_scores[None, :]).mean()
    return float(greater + 0.5 * ties)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    payload = train_autoencoder(
        normal_windows(3000, seed=1),
        NAMES,
        TrainingConfig(seed=3, epochs=8),
        groups=[f"m{i % 60}" for i in range(3000)],
    )
    path = tmp_path_factory.mktemp("ae") / "ae.npz"
    save_artifact(payload, path)
    return path


Factory = Callable[[Path, int], WindowDetector]


def make_hst(artifact: Path, seed: int) -> WindowDetector:
    return HalfSpaceTreesDetector(NAMES, n_trees=15, height=6, window_size=300, seed=seed)


def make_autoencoder(artifact: Path, seed: int) -> WindowDetector:
    from detectors.autoencoder import AutoencoderDetector

    return AutoencoderDetector.load(artifact)


def make_hybrid(artifact: Path, seed: int) -> WindowDetector:
    return HybridScorer.create(
        NAMES, artifact, seed=seed, n_trees=15, height=6, window_size=300,
        calibration_min_count=200,
    )  # fmt: skip


def make_hybrid_without_artifact(artifact: Path, seed: int) -> WindowDetector:
    return HybridScorer.create(
        NAMES, None, seed=seed, n_trees=15, height=6, window_size=300, calibration_min_count=200
    )


DETECTORS = {
    "hst": make_hst,
    "autoencoder": make_autoencoder,
    "hybrid": make_hybrid,
    "hybrid_hst_only": make_hybrid_without_artifact,
}


@pytest.fixture(params=sorted(DETECTORS))
def factory(request: pytest.FixtureRequest) -> Factory:
    return DETECTORS[request.param]


def warmed(factory: Factory, artifact: Path, seed: int = 0) -> WindowDetector:
    """A detector that has learned from 1500 normal windows in batches of 100."""
    detector = factory(artifact, seed)
    history = normal_windows(1500, seed=5)
    for start in range(0, len(history), 100):
        detector.learn_many(history[start : start + 100])
    return detector


def test_satisfies_the_protocol(factory: Factory, artifact: Path) -> None:
    detector = factory(artifact, 0)
    assert isinstance(detector, WindowDetector)
    assert tuple(detector.feature_names) == NAMES


def test_fixed_seed_gives_the_same_scores(factory: Factory, artifact: Path) -> None:
    probe = np.vstack([normal_windows(100, 9), abnormal_windows(100, 9)])
    first = warmed(factory, artifact, seed=4).score_many(probe)
    second = warmed(factory, artifact, seed=4).score_many(probe)
    np.testing.assert_array_equal(first, second)


def test_pickle_round_trip_behaves_identically(factory: Factory, artifact: Path) -> None:
    detector = warmed(factory, artifact)
    clone = pickle.loads(pickle.dumps(detector))  # noqa: S301 - our own bytes
    follow_up = normal_windows(400, seed=11)
    probe = np.vstack([normal_windows(50, 12), abnormal_windows(50, 12)])
    for model in (detector, clone):
        model.learn_many(follow_up)
    np.testing.assert_array_equal(detector.score_many(probe), clone.score_many(probe))


def test_input_is_not_mutated(factory: Factory, artifact: Path) -> None:
    detector = warmed(factory, artifact)
    batch = np.vstack([normal_windows(50, 13), abnormal_windows(50, 13)])
    batch[0, 2] = np.nan
    before = batch.copy()
    detector.score_many(batch)
    detector.learn_many(batch)
    row = dict(zip(NAMES, batch[1], strict=True))
    row_before = dict(row)
    detector.score_one(row)
    detector.learn_one(row)
    np.testing.assert_array_equal(batch, before)
    assert row == row_before


def test_abnormal_windows_score_higher(factory: Factory, artifact: Path) -> None:
    detector = warmed(factory, artifact)
    normal = detector.score_many(normal_windows(300, seed=21))
    abnormal = detector.score_many(abnormal_windows(300, seed=21))
    assert np.all(np.isfinite(normal)) and np.all(np.isfinite(abnormal))
    assert auc(normal, abnormal) > 0.75


def test_score_one_matches_score_many(factory: Factory, artifact: Path) -> None:
    detector = warmed(factory, artifact)
    probe = np.vstack([normal_windows(5, 30), abnormal_windows(5, 30)])
    batched = detector.score_many(probe)
    single = [detector.score_one(dict(zip(NAMES, row, strict=True))) for row in probe]
    np.testing.assert_allclose(single, batched, rtol=1e-5, atol=1e-6)


def test_wrong_width_is_rejected(factory: Factory, artifact: Path) -> None:
    detector = factory(artifact, 0)
    with pytest.raises(ValueError, match="matrix"):
        detector.score_many(np.zeros((3, len(NAMES) + 1)))
