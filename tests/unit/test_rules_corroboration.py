"""Which windows are theft: cues that accuse alone, and the voltage-only pair (R09, R11)
that accuses only together (``rules.cues.theft_windows``), on literal arrays."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from rules.cues import CUES, PARTNER_IDS, theft_windows

IDS = [c.id for c in CUES]
WINDOW = {"partner_window_s": 7200.0}
HOUR_MS = 3_600_000
T = 1_767_571_200_000  # 2026-01-05T00:00Z


def fired_with(*ids: str, rows: int = 1) -> np.ndarray:
    fired = np.zeros((rows, len(CUES)), dtype=bool)
    for cue_id in ids:
        fired[:, IDS.index(cue_id)] = True
    return fired


def never(rows: int = 1) -> np.ndarray:
    return np.full((rows, len(PARTNER_IDS)), -1, dtype=np.int64)


def test_the_voltage_only_cues_are_partners_of_each_other() -> None:
    partners = {c.id: c.partner for c in CUES if c.partner}
    assert partners == {"R09": "R11", "R11": "R09"}
    assert set(PARTNER_IDS) == {"R09", "R11"}


def test_a_cue_without_partner_accuses_alone_and_a_descriptive_cue_never() -> None:
    for cue in CUES:
        theft, _ = theft_windows(fired_with(cue.id), np.array([T]), never(), WINDOW)
        assert bool(theft[0]) == (cue.physical and cue.partner is None), cue.id


def test_sustained_sag_alone_or_recurring_sag_alone_is_not_theft() -> None:
    for cue_id in ("R09", "R11"):
        theft, last = theft_windows(fired_with(cue_id), np.array([T]), never(), WINDOW)
        assert not theft[0]
        assert last[0, PARTNER_IDS.index(cue_id)] == T  # remembered for its partner


def test_both_in_one_window_is_theft() -> None:
    theft, _ = theft_windows(fired_with("R09", "R11"), np.array([T]), never(), WINDOW)
    assert theft[0]


def test_sag_held_an_hour_after_a_recurring_onset_is_theft_but_not_three_hours_after() -> None:
    last = never(2)
    last[:, PARTNER_IDS.index("R11")] = T  # the onset
    ends = np.array([T + 1 * HOUR_MS, T + 3 * HOUR_MS])
    theft, _ = theft_windows(fired_with("R09", rows=2), ends, last, WINDOW)
    assert theft.tolist() == [True, False]


def test_state_carries_across_calls_and_input_is_not_mutated() -> None:
    last = never()
    _, last = theft_windows(fired_with("R11"), np.array([T]), last, WINDOW)
    before = last.copy()
    theft, after = theft_windows(fired_with("R09"), np.array([T + HOUR_MS]), last, WINDOW)
    assert theft[0]
    np.testing.assert_array_equal(last, before)
    assert after[0, PARTNER_IDS.index("R09")] == T + HOUR_MS


@given(
    st.lists(st.lists(st.booleans(), min_size=len(CUES), max_size=len(CUES)), min_size=1),
    st.integers(min_value=0, max_value=10 * HOUR_MS),
)
def test_theft_needs_a_physical_cue_and_every_solo_physical_cue_is_theft(
    rows: list[list[bool]], gap_ms: int
) -> None:
    fired = np.array(rows, dtype=bool)
    k = len(fired)
    last = np.full((k, len(PARTNER_IDS)), T - gap_ms, dtype=np.int64)
    theft, _ = theft_windows(fired, np.full(k, T, dtype=np.int64), last, WINDOW)
    physical = np.array([c.physical for c in CUES])
    solo = physical & np.array([c.partner is None for c in CUES])
    assert not (theft & ~fired[:, physical].any(axis=1)).any()
    assert theft[fired[:, solo].any(axis=1)].all()
