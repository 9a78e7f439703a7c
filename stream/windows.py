"""Vectorised helpers for per-meter sequences held in one sorted array.

The engine keeps the readings of many meters in one array sorted by (meter, ts); a
"segment" is one meter's readings. These helpers compute per-reading quantities that
depend on the previous readings of the same meter (previous value, run lengths) with
no Python loop over readings, carrying state in from the previous batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Segments:
    """Segment layout of a sorted array: first index of each segment and, per element,
    the number of its segment."""

    starts: IntArray
    seg_of: IntArray

    @classmethod
    def from_keys(cls, keys: npt.NDArray[np.integer]) -> Segments:
        """Segments of equal consecutive keys.

        >>> s = Segments.from_keys(np.array([4, 4, 7, 9, 9, 9]))
        >>> s.starts.tolist(), s.seg_of.tolist()
        ([0, 2, 3], [0, 0, 1, 2, 2, 2])
        """
        n = keys.shape[0]
        if n == 0:
            return cls(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64))
        change = np.empty(n, dtype=bool)
        change[0] = True
        np.not_equal(keys[1:], keys[:-1], out=change[1:])
        starts = np.flatnonzero(change).astype(np.int64)
        seg_of = (np.cumsum(change) - 1).astype(np.int64)
        return cls(starts, seg_of)

    @cached_property
    def ends(self) -> IntArray:
        """Last index of each segment (computed once; read it, never write into it)."""
        n = self.seg_of.shape[0]
        return np.append(self.starts[1:], n).astype(np.int64) - 1

    def first_mask(self) -> BoolArray:
        mask = np.zeros(self.seg_of.shape[0], dtype=bool)
        mask[self.starts] = True
        return mask


def shift_in_segments(
    values: npt.NDArray[np.generic], segs: Segments, carry: npt.NDArray[np.generic]
) -> npt.NDArray[np.generic]:
    """Previous element within each segment; the first element of a segment gets the
    segment's carried value.

    >>> s = Segments.from_keys(np.array([1, 1, 2]))
    >>> shift_in_segments(np.array([10.0, 11.0, 20.0]), s, np.array([9.0, 19.0])).tolist()
    [9.0, 10.0, 19.0]
    """
    out = np.empty_like(values)
    if values.shape[0] == 0:
        return out
    out[1:] = values[:-1]
    out[segs.starts] = carry
    return out


def runs_in_segments(
    true: BoolArray,
    reset: BoolArray,
    ts_ms: IntArray,
    segs: Segments,
    carry_n: FloatArray,
    carry_start_ms: IntArray,
) -> tuple[FloatArray, IntArray]:
    """Run counters over a sorted, segmented sequence.

    A run counts the ``true`` elements since the last ``reset`` element; elements that
    are neither leave the run as it is (e.g. a PF reading at no current). Returns per
    element the run count and the timestamp of the run's first true element (-1 when the
    count is 0). ``carry_*`` (per segment) continue a run from the previous batch.

    >>> s = Segments.from_keys(np.array([1, 1, 1, 1]))
    >>> n, st = runs_in_segments(np.array([True, False, True, True]),
    ...     np.array([False, False, False, False]), np.array([0, 10, 20, 30]), s,
    ...     np.array([2.0]), np.array([-50]))
    >>> n.tolist(), st.tolist()
    ([3.0, 3.0, 4.0, 5.0], [-50, -50, -50, -50])
    >>> n, st = runs_in_segments(np.array([True, False, True, True]),
    ...     np.array([False, True, False, False]), np.array([0, 10, 20, 30]), s,
    ...     np.array([0.0]), np.array([-1]))
    >>> n.tolist(), st.tolist()
    ([1.0, 0.0, 1.0, 2.0], [0, -1, 20, 20])
    """
    n = true.shape[0]
    if n == 0:
        return np.empty(0), np.empty(0, dtype=np.int64)
    if n == segs.starts.shape[0]:
        # one element per segment (a coarse cadence): a reset ends the run, anything else
        # continues the carried one; the same numbers as the general case below
        count = np.where(reset, 0.0, true + carry_n)
        own_start = np.where(true & ~reset, ts_ms, -1)
        start = np.where(~reset & (carry_n > 0), carry_start_ms, own_start)
        return count, np.where(count > 0, start, -1).astype(np.int64)
    idx = np.arange(n, dtype=np.int64)
    last_reset = np.maximum.accumulate(np.where(reset, idx, -1))
    seg_first = segs.starts[segs.seg_of]
    has_reset = last_reset >= seg_first
    csum = np.concatenate(([0], np.cumsum(true, dtype=np.int64)))
    base = np.where(has_reset, last_reset + 1, seg_first)
    count = (csum[idx + 1] - csum[base]).astype(np.float64)
    carried = carry_n[segs.seg_of]
    count = np.where(has_reset, count, count + carried)
    # first true element at or after ``base``
    next_true = np.where(true, idx, n)
    next_true = np.minimum.accumulate(next_true[::-1])[::-1]
    first_true = next_true[np.minimum(base, n - 1)]
    first_true = np.where(base <= n - 1, first_true, n)
    own_start = np.where(first_true <= idx, ts_ms[np.minimum(first_true, n - 1)], -1)
    use_carry = ~has_reset & (carried > 0)
    start = np.where(use_carry, carry_start_ms[segs.seg_of], own_start)
    start = np.where(count > 0, start, -1).astype(np.int64)
    return count, start
