"""The engine's verdicts do not depend on how its input is batched: a replay (one large
batch), a worker's micro-batches and anything between give the same events.

Every state a reading's facts read (previous reading, runs, measurement resolution,
cadence, baselines, the zero level, the service impedance) is taken as of the meter's
previous pane, so this holds exactly: every field of every event but ``version`` (which
counts the updates emitted, one per call)."""

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


def events_of(batch: ReadingBatch, step: int) -> dict[str, dict[str, Any]]:
    engine = Engine.from_settings(Settings(), scorer=None, clock=lambda: 2e9)
    return {
        event_id: {k: v for k, v in ev.to_json().items() if k != "version"}
        for event_id, ev in final_events(engine, batch, step).items()
    }


@pytest.mark.slow
def test_micro_batches_give_exactly_the_events_of_one_large_batch(fleet: ReadingBatch) -> None:
    whole = events_of(fleet, len(fleet))
    assert sum(e["theft_likely"] for e in whole.values()) >= 3  # thefts to compare
    for step in (137, 4_000):
        assert events_of(fleet, step) == whole, f"batches of {step} readings differ"
