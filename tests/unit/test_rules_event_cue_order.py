"""An event lists its cues strongest first: the first is the alert's top cue (the
Alertmanager ``cue`` label and the alerts-by-cue metric)."""

from __future__ import annotations

from rules.events import EventTracker, FlaggedWindow
from rules.thresholds import load_thresholds
from stream.metrics import top_cue_id

TH = load_thresholds()
T0 = 1_767_571_200_000


def _flag(tracker: EventTracker, end_ms: int, cues: dict[str, tuple[str, float, dict]]) -> None:
    tracker.flag(
        FlaggedWindow("MTR-1", "GW-1", end_ms - 600_000, end_ms, 90.0, True, cues, 0.1, ())
    )


def test_cues_are_listed_strongest_first_and_ties_by_id() -> None:
    tracker = EventTracker(TH.sections, "test-1")
    _flag(
        tracker,
        T0,
        {
            "bypass_zero": ("R02", 0.6, {"zero_for_s": 900.0}),
            "register_tamper": ("R04", 0.95, {"resid_rel": 0.4}),
            "sharp_spike": ("R07", 0.6, {"step_w": 5000.0}),
        },
    )
    updates, _ = tracker.drain()
    doc = updates[0].to_json()
    assert [c["id"] for c in doc["cues"]] == ["R04", "R02", "R07"]
    assert top_cue_id(doc) == "R04"
