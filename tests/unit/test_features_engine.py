"""Window features: pure functions on literal arrays."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from detectors import features as F


def test_feature_names_are_unique_and_have_physical_ranges() -> None:
    assert len(set(F.FEATURE_NAMES)) == len(F.FEATURE_NAMES)
    assert set(F.FEATURE_RANGES) == set(F.FEATURE_NAMES)
    for lo, hi in F.FEATURE_RANGES.values():
        assert hi > lo


def test_ratio_to_baseline_floors_a_near_zero_baseline() -> None:
    # an idle circuit (expected 2 W) reading 30 W is 0.5 of the 60 W floor, not 15x
    out = F.ratio_to_baseline(np.array([30.0, 400.0, 0.0]), np.array([2.0, 800.0, np.nan]))
    np.testing.assert_allclose(out, [0.5, 0.5, 0.0])


def test_zscore_uses_the_hour_spread_with_a_floor() -> None:
    out = F.zscore_to_baseline(
        np.array([500.0, 110.0]), np.array([300.0, 100.0]), np.array([100.0, 1.0])
    )
    np.testing.assert_allclose(out, [2.0, 0.5])


def test_coefficient_of_variation_from_sufficient_statistics() -> None:
    # readings 100 and 300 W: mean 200, population std 100
    cv = F.coefficient_of_variation(
        np.array([2.0, 1.0]), np.array([400.0, 50.0]), np.array([100_000.0, 2500.0])
    )
    np.testing.assert_allclose(cv, [0.5, 0.0])


def test_pf_level_falls_back_to_the_meters_own_level_without_real_current() -> None:
    out = F.pf_level(np.array([0.0, 1.5]), np.array([0.0, 2.0]), np.array([0.93, np.nan]))
    np.testing.assert_allclose(out, [0.93, 0.75])


def test_pf_jitter_is_the_std_of_pf() -> None:
    # PF 0.4 and 1.0: std 0.3
    out = F.pf_jitter(np.array([1.4]), np.array([0.16 + 1.0]), np.array([2.0]))
    np.testing.assert_allclose(out, [0.3])


def test_unexplained_sag_subtracts_the_drop_of_the_meters_own_current() -> None:
    # 230 V usual at 2 A usual; now 226 V at 12 A through 0.2 ohm: 2 V explained, 2 V not
    out = F.unexplained_sag(
        np.array([226.0]), np.array([230.0]), np.array([12.0]), np.array([2.0]), np.array([0.2])
    )
    np.testing.assert_allclose(out, [2.0])


def test_trend_slope_needs_three_days_and_ignores_invalid_days() -> None:
    ratios = np.array([[1.0, 0.9, 0.8, 0.7], [1.0, 0.5, 0.0, 0.0], [1.0, 5.0, 0.8, 0.6]])
    valid = np.array([[True] * 4, [True, True, False, False], [True, False, True, True]])
    out = F.trend_slope(ratios, valid)
    assert abs(out[0] + 0.1) < 1e-12
    assert out[1] == 0.0
    # days 0, 2, 3 hold 1.0, 0.8, 0.6: the invalid 5.0 must not make the slope positive
    assert out[2] < 0


def test_coverage_when_cadence_is_coarser_than_the_window() -> None:
    # 15-min cadence in a 10-min window: one reading covers it all
    out = F.coverage(np.array([1.0, 2.0, 0.0]), np.array([900.0, 60.0, 60.0]), 600.0)
    np.testing.assert_allclose(out, [1.0, 0.2, 0.0])


def test_feature_matrix_orders_columns_and_removes_non_finite() -> None:
    cols = {name: np.array([float(k), np.nan]) for k, name in enumerate(F.FEATURE_NAMES)}
    cols[F.FEATURE_NAMES[0]] = np.array([np.inf, 1.0])
    mat = F.feature_matrix(cols)
    assert mat.shape == (2, len(F.FEATURE_NAMES))
    assert mat[0, 0] == 0.0 and mat[0, 3] == 3.0 and mat[1, 3] == 0.0
    assert np.isfinite(mat).all()


@given(
    arrays(np.float64, 8, elements=st.floats(allow_nan=True, allow_infinity=True, width=64)),
    arrays(np.float64, 8, elements=st.floats(allow_nan=True, allow_infinity=True, width=64)),
)
def test_features_never_mutate_input_and_stay_finite(a: np.ndarray, b: np.ndarray) -> None:
    a0, b0 = a.copy(), b.copy()
    with np.errstate(all="ignore"):
        outs = [
            F.ratio_to_baseline(a, b),
            F.zscore_to_baseline(a, b, b),
            F.share(a, b),
            F.odd_hour_load(a, b, b),
        ]
    np.testing.assert_array_equal(a, a0)
    np.testing.assert_array_equal(b, b0)
    for out in outs:
        assert out.shape == (8,)
        assert np.isfinite(out).all()


@settings(deadline=None, max_examples=60)
@given(
    st.integers(1, 40),
    st.integers(1, 20),
    st.integers(0, 2**32 - 1),
    st.sampled_from([np.float32, np.float64]),
)
def test_trend_slope_is_the_weighted_least_squares_sums_bit_for_bit(
    n_rows: int, n_days: int, seed: int, dtype: type
) -> None:
    """The slope from the five weighted sums written out (weights 0/1 per day), equal to
    the last bit: the replay's outputs are compared byte for byte across versions."""
    rng = np.random.default_rng(seed)
    ratios = (rng.normal(1.0, 0.5, (n_rows, n_days)) * 10.0 ** rng.integers(-3, 3)).astype(dtype)
    ratios[rng.random((n_rows, n_days)) < 0.1] = np.inf
    valid = rng.random((n_rows, n_days)) < rng.random()
    days = np.arange(n_days, dtype=np.float64)[None, :]
    w = valid.astype(np.float64)
    y = np.where(valid, ratios, 0.0)
    with np.errstate(all="ignore"):  # inf ratios make inf - inf on purpose
        n, sx, sy = w.sum(axis=1), (w * days).sum(axis=1), (w * y).sum(axis=1)
        sxx, sxy = (w * days * days).sum(axis=1), (w * days * y).sum(axis=1)
        slope = (n * sxy - sx * sy) / (n * sxx - sx * sx)
        got = F.trend_slope(ratios, valid)
    expected = np.where((n >= 3) & np.isfinite(slope), slope, 0.0)
    np.testing.assert_array_equal(got, expected)


def test_feature_functions_take_plain_numbers_too() -> None:
    """One window as plain floats gives the value of the same window in an array."""
    cases = [
        (F.ratio_to_baseline, (100.0, 200.0)),
        (F.zscore_to_baseline, (300.0, 100.0, 50.0)),
        (F.coefficient_of_variation, (2.0, 300.0, 50000.0)),
        (F.share, (3.0, 4.0)),
        (F.pf_jitter, (1.6, 1.36, 2.0)),
        (F.odd_hour_load, (900.0, 100.0, 400.0)),
        (F.voltage_deviation, (220.0, 230.0)),
    ]
    for function, args in cases:
        as_arrays = function(*(np.array([a]) for a in args))
        assert float(function(*args)) == float(as_arrays[0])
    assert float(F.coverage(5.0, 60.0, 600.0)) == float(
        F.coverage(np.array([5.0]), np.array([60.0]), 600.0)[0]
    )
