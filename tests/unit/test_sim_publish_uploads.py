"""Gateways that upload on a schedule (``encode_table(..., upload_every_s=...)``)."""

from __future__ import annotations

from typing import Any

import orjson
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.config import FleetConfig
from simulator.fleet import simulate
from simulator.publish import encode_table

T0 = 1_767_571_200_000  # 2026-01-05T00:00:00Z in ms


def table_of(rows: list[tuple[str, str, int]]) -> pa.Table:
    """(gateway_id, meter_id, ts_ms) rows in arrival order, with made-up readings."""
    return pa.table(
        {
            "meter_id": [m for _, m, _ in rows],
            "gateway_id": [g for g, _, _ in rows],
            "ts": pa.array([t for _, _, t in rows], pa.int64()),
            "power_w": [100.0 + k for k in range(len(rows))],
            "voltage_v": [230.0] * len(rows),
            "current_a": [0.5] * len(rows),
            "pf": [0.9] * len(rows),
        }
    )


def bodies(messages: list[Any]) -> list[dict[str, Any]]:
    return [orjson.loads(m.value) for m in messages]


def test_readings_of_one_gateway_arriving_between_other_gateways_share_one_upload() -> None:
    rows = [
        ("GW-1", "M-1", T0),
        ("GW-2", "M-3", T0),
        ("GW-1", "M-2", T0),  # late: after GW-2's reading, but before the clock moves on
        ("GW-2", "M-4", T0 + 30_000),
        ("GW-1", "M-1", T0 + 60_000),
    ]
    unscheduled = list(encode_table(table_of(rows), "batch"))
    assert [m.readings for m in unscheduled] == [1, 1, 1, 1, 1]

    sent = list(encode_table(table_of(rows), "batch", upload_every_s=0))
    got = [(b["gateway_id"], [r["meter_id"] for r in b["readings"]]) for b in bodies(sent)]
    # the clock advances at the 4th row: both open buffers are due and go out in the
    # order they opened; the rest leave at the end
    assert got == [("GW-1", ["M-1", "M-2"]), ("GW-2", ["M-3"]), ("GW-2", ["M-4"]),
                   ("GW-1", ["M-1"])]  # fmt: skip
    assert [m.event_ms for m in sent] == [T0, T0, T0 + 30_000, T0 + 60_000]
    assert all(m.key == b["gateway_id"].encode() for m, b in zip(sent, bodies(sent), strict=True))


def test_an_upload_waits_for_its_period_on_the_arrival_clock() -> None:
    rows = [("GW-1", "M-1", T0), ("GW-1", "M-1", T0 + 20_000), ("GW-1", "M-1", T0 + 45_000)]
    sent = list(encode_table(table_of(rows), "batch", upload_every_s=40))
    # opened at T0; due at T0 + 40 s, which the third row's clock reaches: it flushes
    # the first two, then opens a new buffer for itself
    assert [m.readings for m in sent] == [2, 1]
    assert [m.event_ms for m in sent] == [T0 + 20_000, T0 + 45_000]


def test_a_full_buffer_goes_out_at_once_and_its_reopened_buffer_keeps_its_own_period() -> None:
    rows = [("GW-1", f"M-{k}", T0) for k in range(5)] + [("GW-1", "M-9", T0 + 10_000)]
    sent = list(encode_table(table_of(rows), "batch", max_batch=2, upload_every_s=60))
    assert [m.readings for m in sent] == [2, 2, 2]


def test_odd_rows_still_go_out_on_their_own() -> None:
    table = table_of([("GW-1", "M-1", T0), ("GW-1", "M-2", T0), ("GW-1", "M-3", T0)])
    power = table.column("power_w").to_pylist()
    power[1] = float("nan")
    table = table.set_column(3, "power_w", pa.array(power))
    sent = list(encode_table(table, "batch", upload_every_s=0))
    assert b"NaN" in sent[0].value and sent[0].readings == 1
    assert [r["meter_id"] for r in orjson.loads(sent[1].value)["readings"]] == ["M-1", "M-3"]


def test_a_negative_period_is_refused() -> None:
    with pytest.raises(ValueError, match="upload_every_s"):
        list(encode_table(table_of([("GW-1", "M-1", T0)]), "batch", upload_every_s=-1))


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 5), st.integers(-90, 90)),
        min_size=1,
        max_size=60,
    ),
    period_s=st.sampled_from([0, 15, 60, 600]),
    max_batch=st.integers(1, 8),
)
def test_every_reading_goes_out_once_in_its_gateways_order(
    steps: list[tuple[int, int, int]], period_s: int, max_batch: int
) -> None:
    rows = []
    clock = T0
    for gw, meter, jump_s in steps:
        clock = max(T0, clock + jump_s * 1000)  # arrival order, with late rows
        rows.append((f"GW-{gw}", f"M-{gw}-{meter}", clock))
    sent = bodies(list(encode_table(table_of(rows), "batch", max_batch, period_s)))
    assert all(1 <= len(b["readings"]) <= max_batch for b in sent)
    for gw in {g for g, _, _ in rows}:
        expected = [(m, t) for g, m, t in rows if g == gw]
        got = [(r["meter_id"], r["ts"]) for b in sent if b["gateway_id"] == gw
               for r in b["readings"]]  # fmt: skip
        assert got == expected


def test_a_simulated_fleet_needs_fewer_messages_with_the_same_readings() -> None:
    table, _ = simulate(FleetConfig(meters=120, days=0.2, cadence_s=900, seed=4))
    plain = list(encode_table(table, "batch"))
    scheduled = list(encode_table(table, "batch", upload_every_s=60))
    assert sum(m.readings for m in scheduled) == sum(m.readings for m in plain)
    assert len(scheduled) < len(plain)
