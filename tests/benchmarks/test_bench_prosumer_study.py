"""Study: what rooftop PV does to the theft cues (a known limit, see the README).

Run on demand: ``.venv/bin/pytest tests/benchmarks/test_bench_prosumer_study.py -s``
(``MW_STUDY_SEED``, default 1; under a minute).

A simulated fleet without theft (40 meters, 8 days, 5-minute readings, no transport
faults). Every second meter gets a 3 kWp PV array, from the first day or from day 5 (a
new install). The physics is simple on purpose:
- PV output is 3 kW x sin of the hour between 06:00 and 18:00 UTC;
- the net power P - PV is what the meter reads, with the current register |P| / (V |PF|)
  and the PF signed like P;
- the PV current lowers the meter's service drop by Z x I_pv, with Z the meter's own
  service impedance from the simulator's plan (the transformer's share is left out).

It prints the theft alerts per cue, on PV homes and on the others, for both install days.
Every alert here is false: no meter steals. The voltage cues (R09, R10, R11, R15) read
importing pairs only; the power cues (R05 reverse flow, R12 below standby, R03/R08/R13
level drops) read a new export as theft. Nothing here feeds a threshold. Asserts only
that the fleet was replayed.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from simulator.config import FleetConfig
from simulator.fleet import write_files
from simulator.plan import build_plan
from stream.codecs import ReadingBatch, read_table
from stream.engine import Engine
from stream.settings import Settings

pytestmark = pytest.mark.benchmark

SEED = int(os.environ.get("MW_STUDY_SEED", "1"))
PEAK_W, NOMINAL_V = 3000.0, 230.0
HOUR_MS, DAY_MS = 3_600_000, 86_400_000


def with_pv(
    batch: ReadingBatch, pv_meters: set[str], z_ohm: dict[str, float], from_ms: int
) -> ReadingBatch:
    hour = (batch.ts_ms % DAY_MS) / HOUR_MS
    sun = np.clip(np.sin((hour - 6.0) / 12.0 * np.pi), 0.0, None)
    ids = batch.meter_id.astype(str)
    has = np.isin(ids, sorted(pv_meters)) & (batch.ts_ms >= from_ms)
    pv = PEAK_W * sun * has
    p = batch.p - pv
    v = batch.v + np.array([z_ohm[m] for m in ids]) * pv / NOMINAL_V
    pf_abs = np.where(np.abs(batch.pf) > 0.05, np.abs(batch.pf), 0.95)
    return ReadingBatch.from_columns(
        meter_id=batch.meter_id,
        gateway_id=batch.gateway_id,
        ts_ms=batch.ts_ms,
        p=np.round(p, 1),
        v=np.round(v, 1),
        i=np.round(np.abs(p) / (v * pf_abs), 2),
        pf=np.round(np.where(p < 0, -pf_abs, pf_abs), 3),
    )


def theft_alert_cues(batch: ReadingBatch) -> list[tuple[str, tuple[str, ...]]]:
    engine = Engine.from_settings(Settings(), scorer=None, clock=lambda: 2e9)
    events = {}
    for start in range(0, len(batch), 20_000):
        for ev in engine.process(batch.slice(start, start + 20_000)).event_updates:
            events[ev.event_id] = ev
    for ev in engine.flush().event_updates:
        events[ev.event_id] = ev
    assert engine.counters["readings_accepted"] == len(batch)
    return [(ev.meter_id, tuple(sorted(ev.cues))) for ev in events.values() if ev.theft_likely]


def test_prosumer_study(tmp_path: Path) -> None:
    config = FleetConfig(
        meters=40, days=8, cadence_s=300, seed=SEED, theft_share=0.0, behaviour_share=0.0,
        malformed_share=0.0, transport_faults=False,
    )  # fmt: skip
    path = tmp_path / "fleet.parquet"
    write_files(config, path)
    batch, rejected = read_table(path)
    assert len(batch) > 0 and len(rejected) == 0
    meters = sorted(set(batch.meter_id.astype(str)))
    plan = build_plan(config)
    z_ohm = dict(zip(plan.meter_ids, plan.p["z_drop_ohm"].tolist(), strict=True))
    pv_meters = set(meters[::2])
    start = int(batch.ts_ms.min()) // DAY_MS * DAY_MS
    print(f"\n{len(meters)} meters, {len(pv_meters)} with {PEAK_W / 1000:.0f} kWp PV, seed {SEED}")
    for install_day in (None, 0, 5):
        fleet = (
            batch
            if install_day is None
            else with_pv(batch, pv_meters, z_ohm, start + install_day * DAY_MS)
        )
        alerts = theft_alert_cues(fleet)
        on_pv = Counter(c for m, cues in alerts if m in pv_meters for c in cues)
        others = Counter(c for m, cues in alerts if m not in pv_meters for c in cues)
        n_pv = sum(m in pv_meters for m, _ in alerts)
        label = "no PV" if install_day is None else f"PV from day {install_day}"
        print(
            f"{label:>16}: {len(alerts)} theft alerts ({n_pv} on PV homes); cues on PV "
            f"homes {dict(sorted(on_pv.items()))}, on the others {dict(sorted(others.items()))}"
        )
