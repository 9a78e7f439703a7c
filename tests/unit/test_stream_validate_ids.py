"""Meter-id validation of whole batches (the engine re-validates every batch it gets):
the joined-string check must reject exactly what the per-reading pattern rejects."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.codecs import ReadingBatch, validate_arrays

PATTERN = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")
ids = st.one_of(
    st.from_regex(r"[A-Za-z0-9_.:\-]{1,64}", fullmatch=True),
    st.text(max_size=70),
    st.sampled_from(["", "x" * 64, "x" * 65, "MTR-1\n", "MTR 1", "MTR-ü"]),
    st.none(),
    st.integers(),
)


def batch_of(meter_ids: list[Any]) -> ReadingBatch:
    n = len(meter_ids)
    column = np.empty(n, dtype=object)
    column[:] = meter_ids
    return ReadingBatch(
        meter_id=column,
        ts_ms=np.full(n, 1_767_571_200_000, dtype=np.int64),
        p=np.full(n, 100.0),
        v=np.full(n, 230.0),
        i=np.full(n, 0.5),
        pf=np.full(n, 0.9),
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(ids, min_size=1, max_size=40))
def test_batch_id_check_equals_the_per_reading_pattern(meter_ids: list[Any]) -> None:
    ok, problems = validate_arrays(batch_of(meter_ids))
    expected_bad = [
        k for k, m in enumerate(meter_ids) if not (isinstance(m, str) and PATTERN.match(m))
    ]
    assert [k for k, reason, _ in problems if reason == "bad_meter_id"] == expected_bad
    assert ok.tolist() == [k not in expected_bad for k in range(len(meter_ids))]
