"""Shared by the functional tests: their time constants, a fixed wall clock for the engine,
and feeding a batch to an engine in chunks, as a replay or a gateway stream would, keeping
the last update of every event."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from rules.events import Event
from simulator.fleet import FleetConfig, write_files
from stream.codecs import ReadingBatch, read_table
from stream.engine import Engine
from stream.settings import Settings

T0 = 1_767_571_200_000  # 2026-01-05T00:00Z, in ms
MIN = 60_000
HOUR = 3_600_000
DAY = 86_400_000


class FixedClock:
    """The engine's wall clock, fixed (a little after the data): tests never sleep."""

    def __init__(self, now_ms: int = T0 + 30 * DAY) -> None:
        self.now = now_ms / 1000.0

    def __call__(self) -> float:
        return self.now


def final_events(engine: Engine, batch: ReadingBatch, step: int) -> dict[str, Event]:
    """event_id -> the event's last update, after every chunk and the final flush."""
    events: dict[str, Event] = {}
    outputs = [engine.process(batch.slice(a, a + step)) for a in range(0, len(batch), step)]
    for out in [*outputs, engine.flush()]:
        for ev in out.event_updates:
            events[ev.event_id] = ev
    return events


def pump_fleet(folder: Path) -> tuple[ReadingBatch, dict[str, Any]]:
    """A simulated fleet whose only thieves hook a night pump before the meter (120
    meters, 10 days at 5 minutes, two transformers per gateway), and its labels."""
    path = folder / "fleet.parquet"
    config = FleetConfig(
        meters=120, days=10, cadence_s=300, seed=11, theft_share=0.05,
        theft_types=("night_pump_hook",),
    )  # fmt: skip
    write_files(config, path)
    labels = json.loads(path.with_suffix(".labels.json").read_text(encoding="utf-8"))
    batch, _ = read_table(path)
    return batch, labels


def pump_nights(labels: dict[str, Any]) -> dict[str, list[tuple[int, int]]]:
    """meter id -> its labelled theft intervals (one per pump night)."""
    nights: dict[str, list[tuple[int, int]]] = {}
    for meter in labels["meters"]:
        for theft in meter["theft"]:
            nights.setdefault(meter["meter_id"], []).append((theft["start_ms"], theft["end_ms"]))
    return nights


def cue_alerts(batch: ReadingBatch, cue_id: str, step: int = 20_000) -> list[dict[str, Any]]:
    """The theft alerts (last JSON, without its version) with ``cue_id`` among their cues,
    of a rules-only engine fed ``batch`` in chunks of ``step``."""
    engine = Engine.from_settings(Settings(), scorer=None, clock=lambda: 2e9)
    alerts = [ev.to_json() for ev in final_events(engine, batch, step).values() if ev.theft_likely]
    return sorted(
        ({k: v for k, v in a.items() if k != "version"} for a in alerts
         if any(c["id"] == cue_id for c in a["cues"])),
        key=lambda a: (a["meter_id"], a["start"]),
    )  # fmt: skip


def iso_ms(iso: str) -> int:
    """Epoch ms of an event's ISO-8601 UTC time."""
    return int(np.datetime64(iso.replace("Z", ""), "ms").astype(np.int64))
