"""The engine's verdicts do not depend on how its input is batched: a replay (one large
batch), a worker's micro-batches and anything between give the same events.

Every state a reading's facts read (previous reading, runs, measurement resolution,
cadence, baselines, the zero level, the service impedance) is taken as of the meter's
previous pane, so this holds exactly: every field of every event but ``version`` (which
counts the updates emitted, one per call). One evidence number is compared to 1 % only:
R15's ``pair_step_v``, R16's step against the transformer's median, a cross-meter fact
that a peer silent right after a reading moves a little between batchings (see
``stream.engine``'s docstring)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from engine_runs import final_events

from simulator.fleet import FleetConfig, write_files
from stream.codecs import ReadingBatch, read_table
from stream.engine import Engine
from stream.settings import Settings


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> ReadingBatch:
    path = tmp_path_factory.mktemp("batching") / "fleet.parquet"
    write_files(FleetConfig(meters=40, days=5, cadence_s=300, seed=3, theft_share=0.3), path)
    batch, _ = read_table(path)
    return batch.take(np.argsort(batch.ts_ms, kind="stable"))


CROSS_METER_EVIDENCE = ("pair_step_v",)


def events_of(batch: ReadingBatch, step: int) -> dict[str, dict[str, Any]]:
    engine = Engine.from_settings(Settings(), scorer=None, clock=lambda: 2e9)
    return {
        event_id: {k: v for k, v in ev.to_json().items() if k != "version"}
        for event_id, ev in final_events(engine, batch, step).items()
    }


def split_cross_meter(events: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], list[float]]:
    """The events without their cross-meter evidence numbers, and those numbers in order."""
    exact: dict[str, Any] = {}
    loose: list[float] = []
    for event_id in sorted(events):
        ev = events[event_id]
        cues = []
        for cue in ev["cues"]:
            evidence = dict(cue["evidence"])
            loose += [evidence.pop(k) for k in CROSS_METER_EVIDENCE if k in evidence]
            cues.append({**cue, "evidence": evidence})
        exact[event_id] = {**ev, "cues": cues}
    return exact, loose


@pytest.mark.slow
def test_micro_batches_give_exactly_the_events_of_one_large_batch(fleet: ReadingBatch) -> None:
    whole = events_of(fleet, len(fleet))
    assert sum(e["theft_likely"] for e in whole.values()) >= 3  # thefts to compare
    whole_exact, whole_loose = split_cross_meter(whole)
    for step in (137, 4_000):
        exact, loose = split_cross_meter(events_of(fleet, step))
        assert exact == whole_exact, f"batches of {step} readings differ"
        assert loose == pytest.approx(whole_loose, rel=0.01), step
