"""The committed default autoencoder artifact: present, verified, small, and trained on
the feature list the engine computes today (change features.py -> rerun train-ae)."""

from __future__ import annotations

from detectors.autoencoder import AutoencoderDetector, load_artifact
from detectors.features import FEATURE_NAMES, FEATURE_RANGES
from stream.settings import Settings


def test_committed_artifact_loads_and_verifies() -> None:
    path = Settings().model_artifact
    assert path.is_file(), f"default artifact missing: {path}"
    assert path.stat().st_size < 1_000_000
    payload = load_artifact(path)  # recomputes the content hash
    assert payload["recipe"]["command"] == "meterwatch train-ae"
    assert payload["recipe"]["inputs"], "the recipe names its training inputs"


def test_committed_artifact_matches_the_engine_features() -> None:
    detector = AutoencoderDetector.load(Settings().model_artifact)
    detector.check_features(FEATURE_NAMES)  # raises with the difference when stale
    unit_map = detector.scaler.unit_map
    for column, name in enumerate(FEATURE_NAMES):
        if name in FEATURE_RANGES:
            low, high = FEATURE_RANGES[name]
            assert unit_map.has_range[column], name
            assert unit_map.low[column] == low and unit_map.span[column] == high - low, name
