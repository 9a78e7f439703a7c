"""R16's step pairs (detectors/timer_hook.py) on literal steps and slots, and the engine's
compiled pass (stream.kernels.timer_hook_rows) against them."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.timer_hook import HookState, in_slots, step_hook, unexplained_step
from rules.thresholds import DEFAULT_THRESHOLDS_FILE, ThresholdError, load_thresholds
from stream.engine import Engine
from stream.settings import Settings

T = load_thresholds().section("timer_sag")
DAY = 96  # 15-minute slots


def run(steps: list[tuple[int, float]], state: HookState | None = None) -> list[tuple[bool, bool]]:
    s = state or HookState()
    out = []
    for slot, e in steps:
        s, step = step_hook(s, slot, e, T)
        out.append((step.closed, step.repeated))
    return out


def pump(day: int, on: int = 90, length: int = 24, size: float = 0.9) -> list[tuple[int, float]]:
    """A switch-on seen whole in one half-hour step (and partly in its neighbours) and a
    switch-off ``length`` slots later."""
    a = day * DAY + on
    b = a + length
    return [(a - 1, -0.4 * size), (a, -size), (a + 1, -0.6 * size),
            (b - 1, 0.3 * size), (b, size), (b + 1, 0.7 * size)]  # fmt: skip


def test_a_timer_two_nights_running_repeats() -> None:
    got = run(pump(0) + pump(1))
    assert [c for c, _ in got].count(True) == 2
    assert got[-2:] == [(True, True), (False, False)]


def test_the_pair_keeps_the_deeper_step_of_a_switch() -> None:
    s = HookState()
    for slot, e in pump(0)[:3]:
        s, _ = step_hook(s, slot, e, T)
    assert (s.on_slot, s.on_v) == (90, -0.9)


def test_a_pair_a_week_apart_at_the_same_time_still_repeats() -> None:
    assert run(pump(0) + pump(7))[-2] == (True, True)
    assert run(pump(0) + pump(8))[-2] == (True, False)  # beyond max_apart_days


def test_no_repeat_at_another_time_of_day_or_for_another_length() -> None:
    assert run(pump(0) + pump(1, on=93))[-2] == (True, False)  # 45 minutes later
    assert run(pump(0) + pump(1, length=28))[-2] == (True, False)  # an hour longer
    assert run(pump(0) + pump(1, on=91))[-2] == (True, True)  # within a slot


def test_a_step_up_of_another_size_or_too_soon_or_too_late_closes_nothing() -> None:
    for off_slot, e in ((114, 2.0), (114, 0.4), (95, 0.9), (140, 0.9)):
        s, step = step_hook(HookState(on_slot=90, on_v=-0.9), off_slot, e, T)
        assert not step.closed, (off_slot, e)
    # a switch-off that never came is forgotten after max_len_s
    s, _ = step_hook(HookState(on_slot=90, on_v=-0.9), 131, 0.0, T)
    assert s.on_slot == -1


def test_a_missing_step_changes_nothing() -> None:
    state = HookState(on_slot=90, on_v=-0.9, pair_slot=0, pair_len=24, repeats=1, pair_v=0.9)
    assert step_hook(state, 100, math.nan, T) == (state, (False, False, -1, 0, 0.0))


def test_a_step_the_meters_own_current_explains_is_not_a_hook() -> None:
    # the meter's 7 kW charger: 30 A through 0.1 ohm
    assert math.isnan(unexplained_step(-3.0, 30.0, 0.1, T["max_quiet_di_a"]))
    # a 1 A fridge: the fitted Z takes its 0.1 V off
    assert unexplained_step(-0.1, 1.0, 0.1, T["max_quiet_di_a"]) == 0.0
    # with Z unknown only a still current is judged
    assert math.isnan(unexplained_step(-0.9, 1.0, math.nan, T["max_quiet_di_a"]))
    assert unexplained_step(-0.9, 0.1, math.nan, T["max_quiet_di_a"]) == -0.9
    assert math.isnan(unexplained_step(math.nan, 0.0, 0.1, T["max_quiet_di_a"]))


def test_repeats_reset_when_a_pair_does_not_repeat() -> None:
    s = HookState()
    for slot, e in pump(0) + pump(1) + pump(2, on=60):
        s, _ = step_hook(s, slot, e, T)
    assert s.repeats == 0 and s.pair_slot == 2 * DAY + 60


rows = st.lists(
    st.tuples(
        st.integers(1, 2),  # meter (meter 0 runs a pump, below)
        st.integers(0, 6 * DAY),  # slot
        st.one_of(st.floats(-3.0, 3.0), st.just(math.nan)),  # referenced step
        st.one_of(st.floats(-3.0, 3.0), st.just(math.nan)),  # current step
        st.one_of(st.floats(0.01, 0.5), st.just(math.nan)),  # Z
    ),
    max_size=120,
    unique_by=lambda r: (r[0], r[1]),
)


@settings(max_examples=150, deadline=None)
@given(rows)
def test_the_engines_compiled_pass_follows_the_pure_steps(data: list[tuple]) -> None:
    from stream.kernels import timer_hook_rows

    # pumps mixed in, so that pairs close and repeat
    data = data + [(0, s, e, 0.0, 0.1) for s, e in pump(1) + pump(2)]
    data = list({(m, s): (m, s, y, di, z) for m, s, y, di, z in data}.values())
    g = np.array([r[0] for r in data], dtype=np.int64)
    s = np.array([r[1] for r in data], dtype=np.int64)
    y = np.array([r[2] for r in data])
    di = np.array([r[3] for r in data])
    z = np.array([r[4] for r in data])
    state = {
        "on": np.full(3, -1, dtype=np.int32),
        "on_v": np.zeros(3),
        "pair": np.full(3, -1, dtype=np.int32),
        "pair_len": np.zeros(3, dtype=np.int8),
        "repeat": np.zeros(3, dtype=np.int8),
        "pair_v": np.zeros(3, dtype=np.float32),
    }
    order = np.lexsort((s, g))
    closed, repeated, on_slot, length, size, repeats = timer_hook_rows(
        order, g, s, y, di, z, T["max_quiet_di_a"], T["min_step_v"], T["match_ratio"],
        *in_slots(T, 900),
        T["max_apart_days"], DAY, state["on"], state["on_v"], state["pair"],
        state["pair_len"], state["repeat"], state["pair_v"],
    )  # fmt: skip
    pure = {m: HookState() for m in range(3)}
    for r in order.tolist():
        m = int(g[r])
        e = unexplained_step(float(y[r]), float(di[r]), float(z[r]), T["max_quiet_di_a"])
        pure[m], step = step_hook(pure[m], int(s[r]), e, T)
        assert (bool(closed[r]), bool(repeated[r])) == (step.closed, step.repeated)
        if step.closed:
            assert (int(on_slot[r]), int(length[r])) == (step.on_slot, step.length)
            assert float(size[r]) == step.size_v and int(repeats[r]) == pure[m].repeats
    for m in range(3):
        assert (int(state["on"][m]), float(state["on_v"][m])) == pure[m][:2]
        assert (int(state["pair"][m]), int(state["pair_len"][m])) == pure[m][2:4]
        assert int(state["repeat"][m]) == pure[m].repeats
        # the engine keeps the pair's size in float32
        assert float(state["pair_v"][m]) == float(np.float32(pure[m].pair_v))
    assert closed.sum() >= 2 and repeated.any()


def test_the_engine_refuses_a_pair_longer_than_its_state_can_hold(tmp_path: Path) -> None:
    text = DEFAULT_THRESHOLDS_FILE.read_text(encoding="utf-8")
    assert "max_len_s = 36000.0" in text
    too_long = tmp_path / "thresholds.toml"
    too_long.write_text(text.replace("max_len_s = 36000.0", "max_len_s = 115200.0"))
    with pytest.raises(ThresholdError, match=r"\[timer_sag\] max_len_s"):
        Engine.from_settings(Settings(thresholds_file=too_long), scorer=None)
    at_most = tmp_path / "ok.toml"
    at_most.write_text(text.replace("max_len_s = 36000.0", "max_len_s = 114300.0"))
    Engine.from_settings(Settings(thresholds_file=at_most), scorer=None)
