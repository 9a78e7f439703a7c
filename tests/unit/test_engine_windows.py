"""Segmented helpers and the impedance fit on literal arrays."""

from __future__ import annotations

import numpy as np

from stream.engine import MeterState, impedance_fit
from stream.windows import Segments, runs_in_segments, shift_in_segments


def test_segments_and_shift_carry_the_previous_batch() -> None:
    segs = Segments.from_keys(np.array([3, 3, 3, 8, 8]))
    assert segs.starts.tolist() == [0, 3] and segs.ends.tolist() == [2, 4]
    prev = shift_in_segments(np.array([1.0, 2.0, 3.0, 10.0, 11.0]), segs, np.array([0.5, 9.5]))
    assert prev.tolist() == [0.5, 1.0, 2.0, 9.5, 10.0]


def test_runs_skip_neutral_readings_and_reset_per_meter() -> None:
    # meter A: true, neutral, true, reset, true ; meter B continues a carried run of 2
    true = np.array([True, False, True, False, True, True])
    reset = np.array([False, False, False, True, False, False])
    ts = np.array([0, 60, 120, 180, 240, 0]) * 1000
    segs = Segments.from_keys(np.array([0, 0, 0, 0, 0, 1]))
    n, start = runs_in_segments(
        true, reset, ts, segs, np.array([0.0, 2.0]), np.array([-1, -120_000])
    )
    assert n.tolist() == [1.0, 1.0, 2.0, 0.0, 1.0, 3.0]
    assert start.tolist() == [0, 0, 0, -1, 240_000, -120_000]


def test_impedance_fit_recovers_the_slope_and_refuses_too_little_data() -> None:
    rng = np.random.default_rng(0)
    di = rng.normal(0, 4, 500)
    dv = -0.18 * di + rng.normal(0, 0.2, 500)
    sums = np.array(
        [[np.sum(dv * di), np.sum(di * di), np.sum(dv * dv), 500.0], [0.0, 0.5, 0.0, 3.0]]
    )
    z, se = impedance_fit(sums)
    assert abs(z[0] - 0.18) < 3 * se[0] and se[0] < 0.01
    assert np.isnan(z[1]) and np.isnan(se[1])


def test_state_grows_by_doubling_and_keeps_values() -> None:
    st = MeterState(panes=10, trend_days=14, capacity=64)
    st.last_p[5] = 42.0
    st.grow(65)
    assert st.capacity == 128 and st.last_p[5] == 42.0 and np.isnan(st.last_p[100])
    assert st.bytes_per_meter() <= 4096
