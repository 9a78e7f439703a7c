"""Window features: pure, vectorised functions of a window's statistics and the meter's
own baseline. The order of :data:`FEATURE_NAMES` is the column order of every feature
matrix (the models read it from here and never hard-code it).

Every function takes numpy arrays of K windows and returns a (K,) float64 array; none
mutates its input. Features are normalised against the meter's own baseline, which is
what lets one shared model serve meters of very different sizes. Where a feature has no
information (no reading with real current for the PF, no baseline yet) it takes its
neutral value, never NaN, so the models always get finite input.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

FEATURE_NAMES: tuple[str, ...] = (
    "p_ratio_baseline",
    "p_zscore_baseline",
    "p_cv",
    "max_step_ratio",
    "flat_share",
    "zero_v_share",
    "neg_share",
    "pf_mean",
    "pf_jitter",
    "pf_drop",
    "residual_share",
    "residual_rel",
    "v_dev_ratio",
    "v_unexplained_sag_v",
    "sag_steps_share",
    "trend_slope_per_day",
    "odd_hour_load",
    "coverage",
)

#: Physical ranges of the features, for detectors that need inputs in [0, 1]. Fixed by
#: the physics of each feature, never by the data.
FEATURE_RANGES: Mapping[str, tuple[float, float]] = {
    "p_ratio_baseline": (0.0, 4.0),
    "p_zscore_baseline": (-6.0, 6.0),
    "p_cv": (0.0, 3.0),
    "max_step_ratio": (0.0, 6.0),
    "flat_share": (0.0, 1.0),
    "zero_v_share": (0.0, 1.0),
    "neg_share": (0.0, 1.0),
    "pf_mean": (-1.0, 1.0),
    "pf_jitter": (0.0, 0.5),
    "pf_drop": (-0.5, 1.0),
    "residual_share": (0.0, 1.0),
    "residual_rel": (0.0, 1.0),
    "v_dev_ratio": (-0.1, 0.1),
    "v_unexplained_sag_v": (-5.0, 20.0),
    "sag_steps_share": (0.0, 1.0),
    "trend_slope_per_day": (-0.3, 0.3),
    "odd_hour_load": (0.0, 4.0),
    "coverage": (0.0, 1.0),
}

#: Below this expected power (W) ratios to the baseline are taken against this floor, so
#: that a meter whose baseline is ~0 W (an idle circuit) does not produce huge ratios.
RATIO_FLOOR_W = 60.0


def fill_nan(values: FloatArray, value: float) -> FloatArray:
    """``values`` with NaN replaced by ``value`` (a new array; cheaper than nan_to_num).

    >>> fill_nan(np.array([1.0, np.nan]), 5.0)
    array([1., 5.])
    """
    return np.where(np.isnan(values), value, values)


def _safe_div(num: FloatArray, den: FloatArray, neutral: float) -> FloatArray:
    """num / den as a NEW array, non-finite quotients replaced by ``neutral``.

    The feature functions below finish their work in place on the arrays they created
    (never on their inputs): a replay batch has ~100k windows, and a fresh temporary per
    step costs more in memory traffic than the arithmetic (the same values either way).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.asarray(np.divide(num, den))
    np.copyto(q, neutral, where=~np.isfinite(q))
    return q


def ratio_to_baseline(mean_p: FloatArray, expected_p: FloatArray) -> FloatArray:
    """Mean power over the expected power of that hour, the denominator floored.

    >>> ratio_to_baseline(np.array([100.0, 0.0, 30.0]), np.array([200.0, 500.0, 0.0]))
    array([0.5, 0. , 0.5])
    """
    den = fill_nan(expected_p, RATIO_FLOOR_W)
    np.maximum(den, RATIO_FLOOR_W, out=den)
    ratio = _safe_div(mean_p, den, 1.0)
    return np.clip(ratio, -10.0, 10.0, out=ratio)


def zscore_to_baseline(
    mean_p: FloatArray, expected_p: FloatArray, expected_std: FloatArray
) -> FloatArray:
    """(mean - expected) / spread of that hour, spread floored at 20 W.

    >>> zscore_to_baseline(np.array([300.0]), np.array([100.0]), np.array([50.0]))
    array([4.])
    """
    spread = fill_nan(expected_std, 0.0)
    np.maximum(spread, 20.0, out=spread)
    z = _safe_div(mean_p - fill_nan(expected_p, 0.0), spread, 0.0)
    return np.clip(z, -20.0, 20.0, out=z)


def coefficient_of_variation(n: FloatArray, sum_p: FloatArray, sum_p2: FloatArray) -> FloatArray:
    """Within-window std/mean of power from sufficient statistics (0 for < 2 readings).

    >>> coefficient_of_variation(np.array([2.0]), np.array([300.0]), np.array([50000.0]))
    array([0.33333333])
    """
    mean = _safe_div(sum_p, n, 0.0)
    var = _safe_div(sum_p2, n, 0.0)
    var -= mean * mean
    np.maximum(var, 0.0, out=var)
    level = np.asarray(np.abs(mean))  # (an array also for scalar input: filled in place)
    np.maximum(level, 1.0, out=level)
    cv = _safe_div(np.sqrt(var, out=var), level, 0.0)
    np.clip(cv, 0.0, 10.0, out=cv)
    return np.where(n >= 2, cv, 0.0)


def step_ratio(max_step_w: FloatArray, expected_p: FloatArray) -> FloatArray:
    """Largest reading-to-reading power step over the expected power (floored).

    >>> step_ratio(np.array([1200.0]), np.array([400.0]))
    array([3.])
    """
    return ratio_to_baseline(max_step_w, expected_p)


def share(count: FloatArray, n: FloatArray) -> FloatArray:
    """count / n, 0 when the window is empty.

    >>> share(np.array([3.0, 0.0]), np.array([4.0, 0.0]))
    array([0.75, 0.  ])
    """
    q = _safe_div(count, n, 0.0)
    return np.clip(q, 0.0, 1.0, out=q)


def pf_level(sum_pf: FloatArray, n_pf: FloatArray, fallback: FloatArray) -> FloatArray:
    """Mean PF over readings with real current; the meter's own level when there are none.

    >>> pf_level(np.array([1.8, 0.0]), np.array([2.0, 0.0]), np.array([0.95, 0.95]))
    array([0.9 , 0.95])
    """
    fb = fill_nan(fallback, 1.0)
    return np.where(n_pf > 0, _safe_div(sum_pf, n_pf, 1.0), fb)


def pf_jitter(sum_pf: FloatArray, sum_pf2: FloatArray, n_pf: FloatArray) -> FloatArray:
    """Std of PF over readings with real current (0 with fewer than 2).

    >>> pf_jitter(np.array([1.6]), np.array([1.36]), np.array([2.0]))
    array([0.2])
    """
    mean = _safe_div(sum_pf, n_pf, 0.0)
    var = _safe_div(sum_pf2, n_pf, 0.0)
    var -= mean * mean
    np.maximum(var, 0.0, out=var)
    return np.where(n_pf >= 2, np.sqrt(var, out=var), 0.0)


def pf_drop(pf_mean: FloatArray, pf_baseline: FloatArray) -> FloatArray:
    """How far the PF fell below the meter's own level (positive = lower).

    >>> pf_drop(np.array([0.5]), np.array([0.95]))
    array([0.45])
    """
    return fill_nan(pf_baseline, 1.0) - pf_mean


def voltage_deviation(mean_v: FloatArray, expected_v: FloatArray) -> FloatArray:
    """Relative deviation of voltage from the meter's own hour-of-day voltage.

    >>> voltage_deviation(np.array([220.0]), np.array([230.0])).round(4)
    array([-0.0435])
    """
    ev = fill_nan(expected_v, 0.0)
    return np.where(ev > 0, _safe_div(mean_v - ev, ev, 0.0), 0.0)


def unexplained_sag(
    mean_v: FloatArray,
    expected_v: FloatArray,
    mean_i: FloatArray,
    expected_i: FloatArray,
    impedance_ohm: FloatArray,
) -> FloatArray:
    """Voltage drop (V, positive = lower) not explained by the meter's own current.

    A load drawing current through the service cable lowers the voltage at the meter by
    about R x I. Expected voltage already includes the usual current of that hour, so a
    current above that hour's usual explains R x (I - I_usual) of the drop. What is left
    is a load the meter does not see (a hook before the meter), or the feeder.

    >>> unexplained_sag(np.array([225.0]), np.array([230.0]), np.array([12.0]),
    ...                 np.array([2.0]), np.array([0.2]))
    array([3.])
    """
    ev = fill_nan(expected_v, 0.0)
    r = np.clip(fill_nan(impedance_ohm, 0.0), 0.0, 2.0)
    explained = r * (mean_i - fill_nan(expected_i, 0.0))
    return np.where(ev > 0, (ev - mean_v) - explained, 0.0)


def odd_hour_load(
    mean_p: FloatArray, expected_p: FloatArray, expected_daily_mean_p: FloatArray
) -> FloatArray:
    """Load above that hour's usual, relative to the meter's daily mean (>= 0).

    >>> odd_hour_load(np.array([900.0]), np.array([100.0]), np.array([400.0]))
    array([2.])
    """
    den = fill_nan(expected_daily_mean_p, RATIO_FLOOR_W)
    np.maximum(den, RATIO_FLOOR_W, out=den)
    excess = np.asarray(mean_p - fill_nan(expected_p, 0.0))
    np.maximum(excess, 0.0, out=excess)
    q = _safe_div(excess, den, 0.0)
    return np.clip(q, 0.0, 10.0, out=q)


def trend_slope(day_ratios: FloatArray, day_valid: npt.NDArray[np.bool_]) -> FloatArray:
    """Least-squares slope per day of each row's daily energy ratios (oldest first).

    Rows with fewer than 3 valid days get 0.

    >>> trend_slope(np.array([[1.0, 0.9, 0.8, 0.7]]), np.array([[True] * 4]))
    array([-0.1])
    """
    n_days = day_ratios.shape[1]
    days = np.arange(n_days, dtype=np.float64)
    # the y sums: y is 0 on invalid days, so w * y is y itself and w * days * y is
    # days * y (bit for bit, in float64 as before), summed along the same contiguous
    # rows, so in the same order
    y = np.where(day_valid, day_ratios, 0.0).astype(np.float64)
    sy = y.sum(axis=1)
    y *= days
    sxy = y.sum(axis=1)
    # n, sum of days and of squared days: sums of small integers, exact in any order, so
    # one matrix product gives the very values the three row sums gave
    moments = day_valid.astype(np.float64) @ np.stack([np.ones(n_days), days, days * days], 1)
    n, sx, sxx = moments[:, 0], moments[:, 1], moments[:, 2]
    den = n * sxx - sx * sx
    slope = _safe_div(n * sxy - sx * sy, den, 0.0)
    return np.where(n >= 3, slope, 0.0)


def coverage(n: FloatArray, cadence_s: FloatArray, window_s: float) -> FloatArray:
    """Share of the window covered by readings at the meter's usual cadence, in [0, 1].

    With a cadence coarser than the window, one reading covers the whole window.

    >>> coverage(np.array([5.0, 1.0]), np.array([60.0, 900.0]), 600.0)
    array([0.5, 1. ])
    """
    covered = np.asarray(n * fill_nan(cadence_s, window_s))
    covered /= window_s
    return np.clip(covered, 0.0, 1.0, out=covered)


def feature_matrix(columns: Mapping[str, FloatArray]) -> FloatArray:
    """Stack named feature columns into a (K, F) float64 matrix in FEATURE_NAMES order."""
    # one row per feature (contiguous copies), non-finite cells zeroed in place, then one
    # transposing copy: column_stack writes every value strided and ``where`` allocates
    # another (K, F) array (2x the time for a replay batch, the same values)
    rows = np.stack([np.asarray(columns[name], dtype=np.float64) for name in FEATURE_NAMES])
    np.copyto(rows, 0.0, where=~np.isfinite(rows))
    return np.ascontiguousarray(rows.T)


def finite_median(values: FloatArray, axis: int) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """Median of the finite values along ``axis`` (NaN where there are none), and their
    count.

    >>> med, n = finite_median(np.array([[1.0, np.nan], [3.0, np.nan], [2.0, 5.0]]), 0)
    >>> med.tolist(), n.tolist()
    ([2.0, 5.0], [3, 1])
    """
    finite = np.isfinite(values)
    n = finite.sum(axis=axis)
    ordered = np.sort(np.where(finite, values, np.inf), axis=axis)
    lo = np.expand_dims(np.maximum(n - 1, 0) // 2, axis)
    hi = np.expand_dims(np.maximum(n, 1) // 2, axis)
    a = np.take_along_axis(ordered, lo, axis=axis).squeeze(axis)
    b = np.take_along_axis(ordered, np.minimum(hi, lo + 1), axis=axis).squeeze(axis)
    b = np.where(n % 2 == 1, a, b)
    with np.errstate(invalid="ignore"):  # inf + inf where n == 0, masked just below
        med = np.where(n > 0, 0.5 * (a + b), np.nan)
    return np.asarray(med, dtype=np.float64), np.asarray(n, dtype=np.int64)
