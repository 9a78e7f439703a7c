"""R04's one-sided check on the real AMPds2 sub-meter: a P register reading half of the
power (V, I and PF honest) is alerted on the first evening with load. The current
register here has 0.1 A steps on a ~0.19 A load, so the symmetric band (+-19 W at 120 V)
hides half of the circuit's 21 W; reading low can hide only half a step, so P below
V*I*PF by more than that (plus the meter's accuracy) is a register reading low. The
clean copy stays quiet."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ampds2_copies import DATA, DAY_MS, copies_batch, first_days, run_copies

from simulator.inject import HOUR_MS
from stream.codecs import ReadingBatch
from stream.settings import Settings


def alerts_of(batch: ReadingBatch, settings: Settings) -> list[dict[str, Any]]:
    events = run_copies(batch, 20_000, settings).values()
    return sorted((e for e in events if e["theft_likely"]), key=lambda e: e["detected_at"])


@pytest.mark.slow
@pytest.mark.skipif(not DATA.is_file(), reason=f"AMPds2 sample not found at {DATA}")
def test_a_register_reading_half_is_alerted_on_the_first_evenings(tmp_path: Path) -> None:
    s = first_days(8)
    onset = int(s.ts_ms[0]) + 2 * DAY_MS
    after = s.ts_ms >= onset
    halved = dataclasses.replace(s, p=np.where(after, np.round(s.p * 0.5), s.p))
    loaded = np.flatnonzero(after & (s.p > 15))
    assert len(loaded), "no evening load after the onset"
    first_evening = int(s.ts_ms[loaded[0]])
    batch = copies_batch({"REAL-half": halved, "REAL-clean": s})
    alerts = alerts_of(batch, Settings())
    assert {e["meter_id"] for e in alerts} == {"REAL-half"}, alerts
    assert [c["id"] for c in alerts[0]["cues"]] == ["R04"]
    detected_ms = datetime.fromisoformat(alerts[0]["detected_at"]).timestamp() * 1000
    assert first_evening <= detected_ms <= first_evening + 30 * HOUR_MS

    # the same engine with only the symmetric band misses it for days
    shipped = Settings().thresholds_file.read_text(encoding="utf-8")
    symmetric = tmp_path / "thresholds.toml"
    off = shipped.replace("under_read_abs_tol_w = 2.5", "under_read_abs_tol_w = 1e9")
    assert off != shipped
    symmetric.write_text(off, encoding="utf-8")
    late = alerts_of(batch, Settings(thresholds_file=symmetric))
    late_ms = [datetime.fromisoformat(e["detected_at"]).timestamp() * 1000 for e in late]
    assert not late_ms or min(late_ms) > detected_ms + 2 * DAY_MS, late_ms
