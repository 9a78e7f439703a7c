"""The simulated 120 V fleet against real AMPds2 readings (simulator/realism.py)."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.realism import (
    AMPDS2_PATH,
    AMPDS2_UTC_OFFSET_H,
    Series,
    load_ampds2,
    simulated_fleet_stats,
    stats,
)

needs_data = pytest.mark.skipif(not AMPDS2_PATH.exists(), reason=f"no AMPds2 file at {AMPDS2_PATH}")


@needs_data
def test_simulated_voltage_and_power_factor_look_like_the_real_meter() -> None:
    real = stats(load_ampds2(), AMPDS2_UTC_OFFSET_H)
    sim = simulated_fleet_stats(meters=8, days=3.0)
    med = {
        name: float(np.median([getattr(s, name) for s in sim]))
        for name in real.__dataclass_fields__
    }
    # voltage level within 2 % of the real service, spread within a factor of 2
    assert abs(med["v_mean"] - real.v_mean) <= 0.02 * real.v_mean
    assert 0.5 <= med["v_std"] / real.v_std <= 2.0
    assert 0.5 <= med["v_daily_range"] / real.v_daily_range <= 2.0
    assert 0.33 <= med["v_step_std"] / real.v_step_std <= 3.0
    # the 1st-99th percentile band stays inside +-7 % of 120 V, as the real one does
    assert 0.93 * 120 <= med["v_p01"] and med["v_p99"] <= 1.07 * 120
    # power factor of real load: mostly 0.7-1.0, never above 1
    assert 0.6 <= med["pf_p05"] <= med["pf_median"] <= med["pf_p95"] <= 1.0
    # the day peaks in the evening, like the real circuit
    assert 17 <= med["evening_peak_hour"] <= 22
    assert 17 <= real.evening_peak_hour <= 22


def test_stats_on_a_literal_series() -> None:
    ts = np.arange(0, 2 * 86_400, 60, dtype=float)
    hour = (ts % 86_400) // 3600
    p = np.where(hour == 19, 300.0, 0.0)
    v = 120.0 - 0.01 * p + np.where(np.arange(len(ts)) % 2 == 0, 0.1, -0.1)
    i = p / v
    s = stats(Series(ts, v, i, p, np.where(p > 0, 0.9, 1.0)), utc_offset_h=0.0)
    assert s.evening_peak_hour == 19
    assert s.evening_share == pytest.approx(1.0)
    assert s.pf_median == pytest.approx(0.9)
    assert s.v_daily_range == pytest.approx(3.2, abs=1e-9)
    assert s.quiet_share == pytest.approx(23 / 24)
