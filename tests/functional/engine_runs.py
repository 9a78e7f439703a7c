"""Shared by the functional tests: their time constants, a fixed wall clock for the engine,
and feeding a batch to an engine in chunks, as a replay or a gateway stream would, keeping
the last update of every event."""

from __future__ import annotations

from rules.events import Event
from stream.codecs import ReadingBatch
from stream.engine import Engine

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
