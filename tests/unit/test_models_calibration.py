"""Calibration to 0-100 from the distribution of scores on normal traffic."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from detectors.calibration import (
    FrozenTailCalibrator,
    StreamingTailCalibrator,
    tail_probability_to_score,
)


def test_fixed_map_from_tail_probability() -> None:
    scores = tail_probability_to_score(np.array([1.0, 0.1, 0.01, 1e-4, 1e-9, 0.0]))
    np.testing.assert_allclose(scores, [0.0, 25.0, 50.0, 100.0, 100.0, 100.0])


def test_streaming_is_silent_until_ready_then_ranks_the_tail() -> None:
    calibrator = StreamingTailCalibrator(min_count=1000)
    normal = np.random.default_rng(0).beta(2, 8, 5000)  # raw HST-like scores in [0, 1]
    calibrator.update(normal[:999])
    assert not calibrator.ready
    assert np.all(calibrator.score(np.array([0.1, 0.99])) == 0.0)
    calibrator.update(normal[999:])
    assert calibrator.ready
    median, p99, extreme = calibrator.score(np.quantile(normal, [0.5, 0.99]).tolist() + [0.99])
    assert 5 < median < 12  # -log10(0.5)/4 * 100 = 7.5
    assert 40 < p99 < 60  # -log10(0.01)/4 * 100 = 50
    assert extreme > 90


def test_streaming_does_not_flag_a_fixed_share_of_what_it_judges() -> None:
    """Judging a batch made only of normal windows must give low scores, and a batch made
    only of anomalies must give high scores: no quantile of the judged data is used."""
    calibrator = StreamingTailCalibrator(min_count=100)
    rng = np.random.default_rng(1)
    calibrator.update(rng.uniform(0.2, 0.4, 5000))
    assert np.mean(calibrator.score(rng.uniform(0.2, 0.4, 500)) > 75) < 0.01
    assert np.all(calibrator.score(rng.uniform(0.6, 0.9, 500)) > 90)


def test_streaming_forgets_old_traffic() -> None:
    calibrator = StreamingTailCalibrator(min_count=10, half_life=1000)
    calibrator.update(np.full(5000, 0.2))
    assert calibrator.score(np.array([0.5]))[0] > 90
    for _ in range(20):
        calibrator.update(np.full(1000, 0.6))
    assert calibrator.score(np.array([0.5]))[0] < 10
    assert calibrator.total < 1000 / (1 - 0.5) + 1  # bounded effective count


def test_streaming_ignores_nan_and_keeps_nan() -> None:
    calibrator = StreamingTailCalibrator(min_count=1)
    calibrator.update(np.array([np.nan, 0.3, np.inf]))
    assert calibrator.total == 1.0
    assert np.isnan(calibrator.score(np.array([np.nan]))[0])


@given(st.lists(st.floats(0, 1), min_size=2, max_size=50))
def test_streaming_score_is_monotone(values: list[float]) -> None:
    calibrator = StreamingTailCalibrator(min_count=0, n_bins=50)
    calibrator.update(np.random.default_rng(3).uniform(0, 1, 300))
    ordered = np.sort(np.array(values))
    assert np.all(np.diff(calibrator.score(ordered)) >= -1e-9)


def test_frozen_fit_matches_the_normal_sample_and_extrapolates() -> None:
    sample = np.random.default_rng(4).normal(0.0, 1.0, 20_000)
    calibrator = FrozenTailCalibrator.fit(sample)
    p = calibrator.tail_probability(np.array([0.0, 2.326, sample.max(), sample.max() + 1]))
    assert p[0] == pytest.approx(0.5, abs=0.02)
    assert p[1] == pytest.approx(0.01, rel=0.15)
    assert p[2] == pytest.approx(1 / 20_000, rel=0.5)
    assert p[3] < p[2]
    scores = calibrator.score(np.array([-5.0, 0.0, 10.0, np.nan]))
    assert scores[0] == 0.0 and 5 < scores[1] < 10 and scores[2] == 100.0
    assert np.isnan(scores[3])


def test_frozen_round_trips_through_plain_types() -> None:
    calibrator = FrozenTailCalibrator.fit(np.random.default_rng(5).exponential(1.0, 500))
    again = FrozenTailCalibrator.from_dict(calibrator.to_dict())
    probe = np.linspace(-1, 12, 50)
    np.testing.assert_array_equal(calibrator.score(probe), again.score(probe))


def test_frozen_rejects_too_little_data_and_malformed_knots() -> None:
    with pytest.raises(ValueError, match="at least 20"):
        FrozenTailCalibrator.fit(np.arange(5.0))
    with pytest.raises(ValueError, match="do not vary"):
        FrozenTailCalibrator.fit(np.ones(100))
    with pytest.raises(ValueError, match="monotone"):
        FrozenTailCalibrator.from_dict(
            {"knots": [1.0, 0.5], "neg_log10_tail": [0.0, 1.0], "tail_scale": 1.0}
        )
    with pytest.raises(ValueError, match="malformed"):
        FrozenTailCalibrator.from_dict({"knots": [1.0], "neg_log10_tail": [0.0], "tail_scale": 1.0})


def test_streaming_scores_infinite_raw_scores_as_the_range_ends() -> None:
    """+inf is the most surprising value and -inf the least: they score as the top and
    bottom of the known raw range (not as NaN, and not as the middle)."""
    calibrator = StreamingTailCalibrator(min_count=10)
    calibrator.update(np.linspace(0.1, 0.5, 200))
    scores = calibrator.score(np.array([np.inf, 1.0, -np.inf, 0.0, np.nan]))
    assert scores[0] == scores[1] and scores[2] == scores[3]
    assert scores[0] > scores[2]
    assert np.isnan(scores[4])
