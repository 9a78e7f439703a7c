"""A meter frozen while its real circuit idles (AMPds2 B1E: 0 W / 0 A most of the time) is
caught once the repeat of every channel, voltage included, has lasted far longer than any
repeat the meter showed before; the clean copy stays quiet; batching does not matter."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest
from ampds2_copies import DATA, DAY_MS, copies_batch, first_days, run_copies, without_versions

from simulator.inject import HOUR_MS, MeterSeries, meter_freeze

IDLE_FOR_MS = 12 * HOUR_MS


def first_idle_start(s: MeterSeries) -> int:
    """ts of the first 0 W reading, 2 days or more after the start, that opens at least an
    hour of 0 W (the freeze starts while the circuit idles, not during a load)."""
    idle = (s.p == 0).astype(np.int64)
    hour = np.convolve(idle, np.ones(60, dtype=np.int64), mode="valid") == 60
    after_warm_up = s.ts_ms[: len(hour)] >= s.ts_ms[0] + 2 * DAY_MS
    candidates = np.flatnonzero(hour & after_warm_up)
    assert len(candidates), "no idle hour after the warm-up"
    return int(s.ts_ms[candidates[0]])


@pytest.mark.slow
@pytest.mark.skipif(not DATA.is_file(), reason=f"AMPds2 sample not found at {DATA}")
def test_a_meter_frozen_while_idle_is_caught_after_hours_and_the_clean_copy_is_not() -> None:
    s = first_days(4)
    at = first_idle_start(s)
    frozen = meter_freeze(s, at, at + IDLE_FOR_MS).series
    assert frozen.p[s.ts_ms >= at][0] == 0.0  # frozen at 0 W: the loaded-freeze test cannot fire
    batch = copies_batch({"REAL-frozen-idle": frozen, "REAL-clean": s})
    events = run_copies(batch, 20_000)
    alerts = [e for e in events.values() if e["theft_likely"]]
    assert [e["meter_id"] for e in alerts] == ["REAL-frozen-idle"], alerts
    alert = alerts[0]
    assert alert["cues"][0]["id"] == "R01"
    evidence = alert["cues"][0]["evidence"]
    # the real circuit never repeated every channel for long; the freeze did, for hours
    assert evidence["longest_earlier_repeat_s"] < 3600
    assert evidence["frozen_for_s"] >= 6 * 3600
    detected_ms = datetime.fromisoformat(alert["detected_at"]).timestamp() * 1000
    assert at + 6 * HOUR_MS <= detected_ms <= at + 7 * HOUR_MS
    # the longest-repeat history is a running maximum: small batches give the same events
    # (only the version counter differs: it counts the updates emitted, one per batch)
    assert without_versions(run_copies(batch, 997)) == without_versions(events)
