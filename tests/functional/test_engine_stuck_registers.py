"""R14 on the real AMPds2 sub-meter: power, current and PF stuck at a loaded reading while
the voltage register keeps moving is caught two hours in; the same meter with every channel
frozen is R01's, not R14's; the clean copy stays quiet; batching does not matter."""

from __future__ import annotations

import dataclasses
from datetime import datetime

import numpy as np
import pytest
from ampds2_copies import DATA, DAY_MS, copies_batch, first_days, run_copies, without_versions

from simulator.inject import HOUR_MS, MeterSeries, meter_freeze


def first_loaded_after_warm_up(s: MeterSeries) -> int:
    """ts of the first reading with load (the evening's ~20 W) 2 days or more in."""
    loaded = np.flatnonzero((s.p > 15) & (s.ts_ms >= s.ts_ms[0] + 2 * DAY_MS))
    assert len(loaded), "no loaded reading after the warm-up"
    return int(s.ts_ms[loaded[0]])


def stuck_from(s: MeterSeries, at_ms: int) -> MeterSeries:
    """P, I and PF repeat the reading at ``at_ms`` from then on; V stays the real one."""
    k = int(np.searchsorted(s.ts_ms, at_ms))
    held = {name: getattr(s, name).copy() for name in ("p", "i", "pf")}
    for values in held.values():
        values[k:] = values[k]
    return dataclasses.replace(s, **held)


@pytest.mark.slow
@pytest.mark.skipif(not DATA.is_file(), reason=f"AMPds2 sample not found at {DATA}")
def test_stuck_load_registers_are_caught_and_a_full_freeze_stays_r01() -> None:
    s = first_days(4)
    at = first_loaded_after_warm_up(s)
    stuck = stuck_from(s, at)
    after = s.ts_ms >= at
    assert np.unique(stuck.p[after]).size == 1 and np.unique(stuck.v[after]).size > 10
    frozen = meter_freeze(s, at).series
    batch = copies_batch({"REAL-stuck": stuck, "REAL-frozen": frozen, "REAL-clean": s})
    events = run_copies(batch, 20_000)

    alerts = {e["meter_id"]: e for e in events.values() if e["theft_likely"]}
    assert set(alerts) == {"REAL-stuck", "REAL-frozen"}, alerts
    r14 = [c for c in alerts["REAL-stuck"]["cues"] if c["id"] == "R14"]
    assert r14, alerts["REAL-stuck"]["cues"]
    evidence = r14[0]["evidence"]
    # the real circuit's load registers never held still for long; the stuck ones did
    assert evidence["longest_earlier_stuck_s"] < 3600
    assert evidence["stuck_for_s"] >= 2 * 3600
    detected_ms = datetime.fromisoformat(alerts["REAL-stuck"]["detected_at"]).timestamp() * 1000
    assert at + 2 * HOUR_MS <= detected_ms <= at + 3 * HOUR_MS
    frozen_cues = {c["id"] for e in events.values() if e["meter_id"] == "REAL-frozen"
                   for c in e["cues"]}  # fmt: skip
    assert "R01" in frozen_cues and "R14" not in frozen_cues
    # the longest-run history is a running maximum: small batches give the same events
    assert without_versions(run_copies(batch, 997)) == without_versions(events)
