"""The column-wise JSON decoder gives exactly what the per-reading reference gives.

``decode_message`` (fast: columns, one type pass per column, checks per distinct key shape)
is compared with ``_decode_message_reference`` (one ``_check_reading`` per reading) on
generated messages: clean gateway batches, batches with every kind of corruption, single
readings, arbitrary JSON and garbage bytes. Same accepted rows (values, dtypes, order), same
rejections (reason, detail, raw, order).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream.codecs import (
    MIN_TS_MS,
    ReadingBatch,
    Rejection,
    _decode_message_reference,
    _decode_objects_reference,
    concat_batches,
    decode_message,
    decode_messages,
    decode_objects,
)

COLUMNS = ("meter_id", "ts_ms", "p", "v", "i", "pf", "gateway_id", "e_wh")
REQUIRED = ("meter_id", "ts", "p", "v", "i", "pf")
TS0 = 1_767_571_200_000


def assert_same_decoding(
    got: tuple[ReadingBatch, list[Rejection]], want: tuple[ReadingBatch, list[Rejection]]
) -> None:
    batch, rejections = got
    ref_batch, ref_rejections = want
    assert rejections == ref_rejections
    assert len(batch) == len(ref_batch)
    for name in COLUMNS:
        col, ref = getattr(batch, name), getattr(ref_batch, name)
        if ref is None:
            assert col is None, name
            continue
        assert col is not None, name
        assert col.dtype == ref.dtype and col.shape == ref.shape, name
        if ref.dtype == object:
            assert [(type(x), x) for x in col] == [(type(x), x) for x in ref], name
        else:
            # bitwise: -0.0 vs 0.0 and NaN payloads count as differences
            assert col.tobytes() == ref.tobytes(), name
    assert batch.meter_codes is None and batch.meter_vocab is None


# --------------------------------------------------------------------------- strategies

meter_ids = st.one_of(
    st.from_regex(r"\A[A-Za-z0-9_.:\-]{1,64}\Z"),
    st.sampled_from(["MTR-000001", "MTR-000002", "GW:7.a_b", "x" * 64, "x" * 65, "", "a b"]),
    st.sampled_from(["MTR-1\n", "MTR\n1", "é", "MTR/1", "\x00"]),
    st.text(max_size=70),
)
finite = st.floats(allow_nan=False, allow_infinity=False)
numbers = st.one_of(
    finite,
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.sampled_from([0, -0.0, 0.0, 1, -1, 1.0, -1.0, 1.0000001, 1e308, -1e308, 5e-324]),
)
timestamps = st.one_of(
    st.integers(min_value=MIN_TS_MS - 10, max_value=TS0 + 10**9),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.sampled_from([2**62 - 1, 2**62, -(2**62) + 1, -(2**62), MIN_TS_MS, MIN_TS_MS - 1]),
    st.sampled_from(
        [
            "2026-01-05T00:01:00+00:00",
            "2026-01-05T00:01:00Z",
            "2026-01-05T00:01:00",
            "1999-12-31T23:59:59+01:00",
            "not a time",
            "1767571200000",
        ]
    ),
    st.sampled_from([float(TS0), TS0 + 0.5, 1e300, True, False, None]),
)
json_scalars = st.one_of(
    st.none(), st.booleans(), numbers, st.text(max_size=20), meter_ids, timestamps
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def valid_readings(draw: st.DrawFn) -> dict[str, Any]:
    reading: dict[str, Any] = {
        "meter_id": draw(st.sampled_from(["MTR-000001", "MTR-000002", "MTR-000003"]))
        if draw(st.booleans())
        else draw(st.from_regex(r"\A[A-Za-z0-9_.:\-]{1,64}\Z")),
        "ts": draw(st.integers(min_value=MIN_TS_MS, max_value=TS0 + 10**9)),
        "p": draw(st.one_of(st.floats(-1e5, 1e5), st.integers(-(10**5), 10**5))),
        "v": draw(st.one_of(st.floats(1.0, 400.0), st.integers(1, 400))),
        "i": draw(st.one_of(st.floats(0.0, 100.0), st.integers(0, 100))),
        "pf": draw(st.one_of(st.floats(-1.0, 1.0), st.sampled_from([-1, 0, 1]))),
    }
    if draw(st.booleans()):
        reading["e_wh"] = draw(st.one_of(st.none(), st.floats(0, 1e9), st.integers(0, 10**9)))
    if draw(st.integers(0, 4)) == 0:
        reading["gateway_id"] = draw(st.one_of(st.none(), st.just("GW-0002")))
    # contract keys in any order
    keys = draw(st.permutations(list(reading)))
    return {k: reading[k] for k in keys}


CORRUPTIONS = (
    "none",
    "drop_field",
    "unknown_field",
    "bad_value",
    "out_of_range",
    "not_an_object",
)


@st.composite
def readings(draw: st.DrawFn) -> Any:
    reading = draw(valid_readings())
    kind = draw(st.sampled_from(CORRUPTIONS))
    if kind == "drop_field":
        del reading[draw(st.sampled_from(REQUIRED))]
    elif kind == "unknown_field":
        reading[draw(st.sampled_from(["power", "P", "", "readings", "x" * 50]))] = 1
    elif kind == "bad_value":
        field = draw(st.sampled_from([*REQUIRED, "e_wh", "gateway_id"]))
        reading[field] = draw(json_values)
    elif kind == "out_of_range":
        field, value = draw(
            st.sampled_from(
                [
                    ("pf", 1.5),
                    ("pf", -1.0000001),
                    ("v", 0),
                    ("v", -230.0),
                    ("i", -0.1),
                    ("ts", MIN_TS_MS - 1),
                    ("ts", TS0 + 10 * 86_400_000),
                    ("ts", 0),
                ]
            )
        )
        reading[field] = value
    elif kind == "not_an_object":
        return draw(json_values.filter(lambda x: not isinstance(x, dict)))
    return reading


gateway_batches = st.builds(
    lambda gw, rows, gw_present: (
        {"gateway_id": gw, "readings": rows} if gw_present else {"readings": rows}
    ),
    st.one_of(st.just("GW-0001"), st.none(), json_values),
    st.lists(readings(), max_size=25),
    st.booleans(),
)
clean_batches = st.builds(
    lambda gw, rows: {"gateway_id": gw, "readings": rows},
    st.just("GW-0001"),
    st.lists(valid_readings(), min_size=1, max_size=40),
)


@st.composite
def plain_batches(draw: st.DrawFn) -> dict[str, Any]:
    """Only the six required keys, plain types: the shortest path, with some rows whose
    values the checks reject (and ids near the pattern's edges)."""
    rows = []
    for _ in range(draw(st.integers(1, 30))):
        row = {k: v for k, v in draw(valid_readings()).items() if k in REQUIRED}
        if draw(st.integers(0, 5)) == 0:
            field, value = draw(
                st.sampled_from(
                    [
                        ("pf", 1.0000001),
                        ("pf", -2),
                        ("v", 0.0),
                        ("v", -1),
                        ("i", -1e-300),
                        ("ts", MIN_TS_MS - 1),
                        ("ts", TS0 + 3 * 86_400_000),
                        ("meter_id", "x" * 64),
                        ("meter_id", "x" * 65),
                        ("meter_id", "MTR-1\n"),
                        ("p", 2**64 - 1),
                        ("ts", 2**62),
                    ]
                )
            )
            row[field] = value
        rows.append(row)
    gateway = draw(st.sampled_from(["GW-0001", None]))
    return {"gateway_id": gateway, "readings": rows}


newest = st.one_of(st.none(), st.integers(MIN_TS_MS, TS0 + 10**9))


def both(raw: bytes, newest_ms: int | None) -> None:
    assert_same_decoding(decode_message(raw, newest_ms), _decode_message_reference(raw, newest_ms))


# --------------------------------------------------------------------------- properties


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clean_batches, newest)
def test_clean_gateway_batches_decode_like_the_reference(
    msg: dict[str, Any], newest_ms: int | None
) -> None:
    both(orjson.dumps(msg), newest_ms)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plain_batches(), newest)
def test_plain_batches_with_rejected_values_decode_like_the_reference(
    msg: dict[str, Any], newest_ms: int | None
) -> None:
    both(orjson.dumps(msg), newest_ms)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(gateway_batches, newest)
def test_corrupted_gateway_batches_decode_like_the_reference(
    msg: dict[str, Any], newest_ms: int | None
) -> None:
    both(orjson.dumps(msg), newest_ms)


@settings(max_examples=300, deadline=None)
@given(readings(), newest)
def test_single_readings_decode_like_the_reference(reading: Any, newest_ms: int | None) -> None:
    both(orjson.dumps(reading), newest_ms)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200), json_values.map(orjson.dumps)), newest)
def test_garbage_and_arbitrary_json_decode_like_the_reference(
    raw: bytes, newest_ms: int | None
) -> None:
    both(raw, newest_ms)


python_numbers = st.one_of(
    numbers,
    st.sampled_from([float("nan"), float("inf"), -float("inf"), 2**1100, -(2**1100), 2**70]),
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            readings(),
            st.builds(
                lambda r, field, value: {**r, field: value},
                valid_readings(),
                st.sampled_from(["p", "v", "i", "pf", "e_wh", "ts"]),
                python_numbers,
            ),
        ),
        max_size=20,
    ),
    st.one_of(st.none(), st.just("GW-0001"), st.just(7)),
    newest,
)
def test_objects_not_from_json_decode_like_the_reference(
    objs: list[Any], gateway: Any, newest_ms: int | None
) -> None:
    """decode_objects is public: objects that JSON cannot carry (NaN, inf, ints beyond
    float range, a non-str gateway) are judged like the reference too."""
    assert_same_decoding(
        decode_objects(objs, gateway, newest_ms),
        _decode_objects_reference(objs, gateway, newest_ms),
    )


# --------------------------------------------------------------------------- examples


def good(k: int, **changes: Any) -> dict[str, Any]:
    row = {"meter_id": f"MTR-{k:06d}", "ts": TS0 + k, "p": 800.0, "v": 230.0, "i": 3.5}
    return {**row, "pf": 0.95, **changes}


def test_fast_and_slow_rows_are_merged_back_in_input_order() -> None:
    """ISO timestamps take the per-reading path; their rows must sit where they were."""
    rows = [
        good(0),
        good(1, ts="2026-01-05T00:01:00+00:00"),
        good(2, pf=2.0),
        good(3, meter_id="bad id"),
        good(4, ts=float(TS0)),
        good(5),
    ]
    raw = orjson.dumps({"gateway_id": "GW-0001", "readings": rows})
    batch, rejections = decode_message(raw)
    assert list(batch.meter_id) == ["MTR-000000", "MTR-000001", "MTR-000004", "MTR-000005"]
    assert list(batch.ts_ms) == [TS0, 1_767_571_260_000, TS0, TS0 + 5]
    assert [r.reason for r in rejections] == ["bad_meter_id", "pf_out_of_range"]
    assert_same_decoding((batch, rejections), _decode_message_reference(raw))


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"p": "812.5"}, "bad_type"),
        ({"v": True}, "bad_type"),
        ({"e_wh": "1"}, "bad_type"),
        ({"gateway_id": 5}, "bad_type"),
        ({"meter_id": "MTR-1\n"}, None),  # the pattern's `$` accepts one trailing newline
        ({"meter_id": "x" * 65}, "bad_meter_id"),
        ({"ts": 2**62}, "bad_timestamp"),
        ({"ts": 2**64 - 1}, "bad_timestamp"),
        ({"ts": "2026-01-05T00:01:00"}, "bad_timestamp"),
        ({"i": -1}, "current_negative"),
        ({"v": 0}, "voltage_non_positive"),
    ],
)
def test_each_fast_path_escape_gives_the_reference_reason(
    changes: dict[str, Any], reason: str | None
) -> None:
    raw = orjson.dumps({"gateway_id": "GW-0001", "readings": [good(0), good(1, **changes)]})
    batch, rejections = decode_message(raw)
    assert [r.reason for r in rejections] == ([] if reason is None else [reason])
    assert len(batch) == (2 if reason is None else 1)
    assert_same_decoding((batch, rejections), _decode_message_reference(raw))


def test_the_comparison_itself_notices_a_difference() -> None:
    """Guard against a vacuous differential test: a changed value or dtype must fail it."""
    raw = orjson.dumps({"gateway_id": "GW-0001", "readings": [good(0), good(1)]})
    batch, rejections = decode_message(raw)
    altered = batch.take(np.arange(2))
    altered.p = altered.p.copy()
    altered.p[1] = -0.0 if altered.p[1] == 0.0 else 0.0
    with pytest.raises(AssertionError):
        assert_same_decoding((altered, rejections), _decode_message_reference(raw))
    retyped = batch.take(np.arange(2))
    retyped.ts_ms = retyped.ts_ms.astype(np.float64)
    with pytest.raises(AssertionError):
        assert_same_decoding((retyped, rejections), _decode_message_reference(raw))


# --------------------------------------------------------------------------- micro-batches

any_message = st.one_of(
    clean_batches.map(orjson.dumps),
    plain_batches().map(orjson.dumps),
    gateway_batches.map(orjson.dumps),
    readings().map(orjson.dumps),
    st.binary(max_size=60),
)


def one_by_one(values: list[bytes], newest_ms: int | None) -> tuple[ReadingBatch, list[Rejection]]:
    batches, rejections = [], []
    for value in values:
        batch, rejected = decode_message(value, newest_ms)
        rejections.extend(rejected)
        if len(batch):
            batches.append(batch)
    return concat_batches(batches), rejections


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(any_message, max_size=12), newest)
def test_a_micro_batch_decodes_like_its_messages_one_by_one(
    values: list[bytes], newest_ms: int | None
) -> None:
    """decode_messages (plain messages share columns) == decode_message per message,
    concatenated: same rows, dtypes and order, same rejections in message order."""
    assert_same_decoding(decode_messages(values, newest_ms), one_by_one(values, newest_ms))


def test_plain_runs_around_odd_messages_keep_message_order() -> None:
    plain = [
        orjson.dumps({"gateway_id": f"GW-{g}", "readings": [good(3 * g + k) for k in range(3)]})
        for g in range(4)
    ]
    bad_value = orjson.dumps({"readings": [good(90, pf=1.5), good(91)]})  # no gateway_id
    single = orjson.dumps(good(92))
    values = [plain[0], bad_value, plain[1], plain[2], b"{", single, plain[3]]
    batch, rejections = decode_messages(values, None)
    assert [r.reason for r in rejections] == ["pf_out_of_range", "unparsable"]
    order = [0, 1, 2, 91, 3, 4, 5, 6, 7, 8, 92, 9, 10, 11]
    assert list(batch.meter_id) == [f"MTR-{k:06d}" for k in order]
    gateways = [None if k > 90 else f"GW-{k // 3}" for k in order]
    assert list(batch.gateway_id) == gateways
    assert_same_decoding((batch, rejections), one_by_one(values, None))
