"""A load switched on a timer before the meter: the step pairs behind R16.

A load hooked before the meter (a pump, a heater) draws current the meter never
measures, but that current still flows through the meter's own service drop: the
voltage the meter reads steps down by Z x I_hook when the load switches on and back up
by as much when it switches off, while the current it measures does not move. A
neighbour's load steps every meter of the transformer alike, so each step is taken
against the transformer's (the meter's step less the median step of its peers,
:mod:`detectors.peer_impedance`), and a load the meter does measure moves its current
too (its own Z x dI is taken off, and a step with a large current step is not judged).

One such pair can be chance: a clean meter's referenced voltage steps half a volt a few
times a week. A timer repeats it: the same pair, switched on at the same time of day
(within ``clock_tol_s``) and lasting as long (within ``len_tol_s``) on another day of
the last ``max_apart_days``. That repeat is what R16 accuses.

The steps are the engine's 15-minute slots (``stream.engine.PZ_SLOT_MS``) taken two
slots apart, so a switch anywhere inside a slot shows whole in one of them. This module
is the pure part, one meter and one slot at a time; the engine runs the same steps as
one compiled pass (``stream.kernels.timer_hook_rows``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

# the engine's 15-minute slots (stream.engine.PZ_SLOT_MS)
SLOT_S = 900


class HookState(NamedTuple):
    """One meter's pending switch-on and newest matched pair (slots are 15-minute slot
    numbers since the epoch; -1: none; ``pair_v`` its size, which R15 reads)."""

    on_slot: int = -1
    on_v: float = 0.0
    pair_slot: int = -1
    pair_len: int = 0
    repeats: int = 0
    pair_v: float = 0.0


class HookStep(NamedTuple):
    """What one slot did: a pair closed (its switch-on slot, length in slots and size
    in volts) and whether it repeated an earlier one at the same time of day."""

    closed: bool = False
    repeated: bool = False
    on_slot: int = -1
    length: int = 0
    size_v: float = 0.0


def unexplained_step(dv_ref: float, di: float, z_ohm: float, max_di_a: float) -> float:
    """The voltage step against the peers that the meter's own current does not explain
    (``dv_ref + Z * di``), or NaN: where the meter's current moved more than
    ``max_di_a`` (a load it measures switched, and a small error in Z would look like a
    step), where the step is unknown, or where Z is unknown and the current moved at all
    beyond a tenth of ``max_di_a``.

    >>> round(unexplained_step(-0.95, 0.1, 0.1, 2.0), 6)
    -0.94
    >>> unexplained_step(-3.0, 30.0, 0.1, 2.0)  # the meter's own 7 kW charger
    nan
    >>> unexplained_step(-0.9, 0.0, math.nan, 2.0)
    -0.9
    """
    if not (math.isfinite(dv_ref) and math.isfinite(di)) or abs(di) > max_di_a:
        return math.nan
    if not math.isfinite(z_ohm):
        return dv_ref if abs(di) <= 0.1 * max_di_a else math.nan
    return dv_ref + z_ohm * di


def in_slots(t: Mapping[str, float], slot_s: int = SLOT_S) -> tuple[float, float, float, float]:
    """``min_len_s``, ``max_len_s``, ``clock_tol_s`` and ``len_tol_s`` in slots of
    ``slot_s`` seconds (the engine's compiled pass takes them so, as :func:`step_hook`).

    >>> in_slots({"min_len_s": 7200.0, "max_len_s": 36000.0, "clock_tol_s": 900.0,
    ...           "len_tol_s": 900.0})
    (8.0, 40.0, 1.0, 1.0)
    """
    return (
        t["min_len_s"] / slot_s,
        t["max_len_s"] / slot_s,
        t["clock_tol_s"] / slot_s,
        t["len_tol_s"] / slot_s,
    )


def step_hook(
    state: HookState, slot: int, e: float, t: Mapping[str, float], slot_s: int = SLOT_S
) -> tuple[HookState, HookStep]:
    """Advance one meter by one slot's unexplained step ``e`` (volts, NaN: none); slots
    are ``slot_s`` seconds long.

    A step down of at least ``min_step_v`` is a switch-on (within two slots of the
    pending one, the deeper of the two: a switch inside a slot shows partly in the
    neighbouring steps). A step up of at least ``min_step_v``, ``min_len_s`` to
    ``max_len_s`` after a pending switch-on and of the same size (within ``match_ratio``
    of the larger), closes a pair. A closed pair repeats the newest earlier pair if it
    switched on a whole number of days later (within ``clock_tol_s``, at most
    ``max_apart_days``) and lasted as long (within ``len_tol_s``).

    A pump on from 22:30 to 04:30 two nights running (slot 90 of day 0 is 22:30):

    >>> t = {"min_step_v": 0.5, "match_ratio": 0.35, "min_len_s": 7200.0,
    ...      "max_len_s": 36000.0, "clock_tol_s": 900.0, "len_tol_s": 900.0,
    ...      "max_apart_days": 7.0}
    >>> s = HookState()
    >>> for slot, e in [(90, -0.9), (114, 0.85), (186, -0.95), (210, 0.9)]:
    ...     s, step = step_hook(s, slot, e, t)
    ...     print(slot, step.closed, step.repeated, s.repeats)
    90 False False 0
    114 True False 0
    186 False False 0
    210 True True 1

    A step up of another size closes nothing (a different load):

    >>> step_hook(HookState(on_slot=90, on_v=-0.9), 114, 2.0, t)[1].closed
    False
    """
    on_slot, on_v, pair_slot, pair_len, repeats, pair_v = state
    min_len, max_len, clock_tol, len_tol = in_slots(t, slot_s)
    slots_per_day = 86_400 // slot_s
    if on_slot >= 0 and slot - on_slot > max_len:
        on_slot, on_v = -1, 0.0  # its switch-off never came
    kept = HookState(on_slot, on_v, pair_slot, pair_len, repeats, pair_v)
    if not math.isfinite(e):
        return kept, HookStep()
    if e <= -t["min_step_v"]:
        if not (on_slot >= 0 and slot - on_slot <= 2 and e >= on_v):
            on_slot, on_v = slot, e
        return HookState(on_slot, on_v, pair_slot, pair_len, repeats, pair_v), HookStep()
    if e < t["min_step_v"] or on_slot < 0:
        return kept, HookStep()
    length = slot - on_slot
    size = max(e, -on_v)
    if not (min_len <= length <= max_len and abs(e + on_v) <= t["match_ratio"] * size):
        return kept, HookStep()
    apart = on_slot - pair_slot
    half = slots_per_day // 2
    off_clock = abs((apart + half) % slots_per_day - half)
    repeated = (
        pair_slot >= 0
        and slots_per_day - clock_tol <= apart
        and apart <= t["max_apart_days"] * slots_per_day + clock_tol
        and off_clock <= clock_tol
        and abs(length - pair_len) <= len_tol
    )
    repeats = min(repeats + 1, 100) if repeated else 0
    step = HookStep(True, repeated, on_slot, length, 0.5 * (e - on_v))
    return HookState(-1, 0.0, on_slot, length, repeats, step.size_v), step
