"""Shared by the functional tests: feed a batch to an engine in chunks, as a replay or a
gateway stream would, and keep the last update of every event."""

from __future__ import annotations

from rules.events import Event
from stream.codecs import ReadingBatch
from stream.engine import Engine


def final_events(engine: Engine, batch: ReadingBatch, step: int) -> dict[str, Event]:
    """event_id -> the event's last update, after every chunk and the final flush."""
    events: dict[str, Event] = {}
    outputs = [engine.process(batch.slice(a, a + step)) for a in range(0, len(batch), step)]
    for out in [*outputs, engine.flush()]:
        for ev in out.event_updates:
            events[ev.event_id] = ev
    return events
