"""Drained event updates are independent snapshots: later flags never change them."""

from __future__ import annotations

import copy
import dataclasses

from hypothesis import given
from hypothesis import strategies as st

from rules.events import MUTABLE_EVENT_FIELDS, Event, EventTracker, FlaggedWindow, event_copy
from rules.thresholds import load_thresholds

TH = load_thresholds()
T0 = 1_767_571_200_000
CUES = {
    "bypass_zero": ("R02", 0.6),
    "register_tamper": ("R04", 0.95),
    "sharp_spike": ("R07", 0.6),
}


def test_every_mutable_event_field_is_copied() -> None:
    """A new list/dict field of Event must be added to event_copy (else drained updates
    would share it with the live event)."""
    containers = {
        f.name for f in dataclasses.fields(Event) if f.default_factory is not dataclasses.MISSING
    }
    assert containers == set(MUTABLE_EVENT_FIELDS)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(sorted(CUES)),
            st.floats(-1e6, 1e6),
            st.booleans(),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_drained_updates_equal_a_deep_copy_and_do_not_change_later(
    flags: list[tuple[str, float, bool]],
) -> None:
    tracker = EventTracker(TH.sections, "test-1")
    snapshots: list[tuple[Event, Event]] = []
    for k, (cue, value, theft) in enumerate(flags):
        end_ms = T0 + k * 60_000
        cue_id, conf = CUES[cue]
        tracker.flag(
            FlaggedWindow(
                "MTR-1",
                "GW-1",
                end_ms - 600_000,
                end_ms,
                50.0 + k,
                theft,
                {cue: (cue_id, conf, {"x": value})},
                0.1,
                (("p_ratio_baseline", value),),
            )
        )
        for live in tracker.open.values():
            snapshots.append((event_copy(live), copy.deepcopy(live)))
        updates, _ = tracker.drain()
        snapshots.extend((u, copy.deepcopy(u)) for u in updates)
    for fast, deep in snapshots:
        assert fast == deep
        assert fast.to_json() == deep.to_json()
