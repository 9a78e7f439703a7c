"""Reading codecs: JSON (both Kafka forms) and files; every reason code; never raise."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.codecs import (
    REASONS,
    ReadingBatch,
    UnusableInputError,
    decode_message,
    encode_reading,
    read_table,
)

READING_SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "stream" / "schemas" / "reading.v1.json").read_text()
)
GOOD = {
    "meter_id": "MTR-000001",
    "ts": 1767571200000,
    "p": 812.5,
    "v": 231.2,
    "i": 3.71,
    "pf": 0.947,
}


def test_single_reading_decodes_to_a_columnar_batch() -> None:
    batch, rej = decode_message(orjson.dumps(GOOD))
    assert rej == [] and len(batch) == 1
    assert batch.meter_id[0] == "MTR-000001" and batch.ts_ms[0] == 1767571200000
    assert batch.p.dtype == np.float64 and batch.p[0] == 812.5
    jsonschema.validate(GOOD, READING_SCHEMA)


def test_gateway_batch_sets_gateway_and_keeps_good_rows_when_some_are_bad() -> None:
    msg = {
        "gateway_id": "GW-0001",
        "readings": [GOOD, {**GOOD, "ts": "2026-01-05T00:01:00+00:00"}, {**GOOD, "pf": 1.5}],
    }
    batch, rej = decode_message(orjson.dumps(msg))
    assert len(batch) == 2 and list(batch.gateway_id) == ["GW-0001", "GW-0001"]
    assert batch.ts_ms[1] == 1767571260000
    assert [r.reason for r in rej] == ["pf_out_of_range"]
    jsonschema.validate(msg["readings"][0], READING_SCHEMA)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "unparsable"),
        (b"[1, 2]", "not_an_object"),
        (orjson.dumps({k: v for k, v in GOOD.items() if k != "v"}), "missing_field"),
        (orjson.dumps({**GOOD, "colour": "red"}), "unknown_field"),
        (orjson.dumps({**GOOD, "p": "812"}), "bad_type"),
        (
            b'{"meter_id": "M1", "ts": 1767571200000, "p": NaN, "v": 1, "i": 1, "pf": 1}',
            "unparsable",
        ),
        (orjson.dumps({**GOOD, "pf": -1.01}), "pf_out_of_range"),
        (orjson.dumps({**GOOD, "v": 0}), "voltage_non_positive"),
        (orjson.dumps({**GOOD, "i": -0.1}), "current_negative"),
        (orjson.dumps({**GOOD, "ts": 946684799999}), "bad_timestamp"),
        (orjson.dumps({**GOOD, "ts": "2026-01-05T00:00:00"}), "bad_timestamp"),
        (orjson.dumps({**GOOD, "meter_id": "has space"}), "bad_meter_id"),
    ],
)
def test_each_malformed_reading_is_rejected_with_its_reason(raw: bytes, reason: str) -> None:
    batch, rej = decode_message(raw)
    assert len(batch) == 0
    assert [r.reason for r in rej] == [reason]
    assert rej[0].reason in REASONS and rej[0].detail
    json.dumps(rej[0].to_json(), default=str)


def test_non_finite_values_and_far_future_timestamps_are_rejected(tmp_path: Path) -> None:
    # JSON has no NaN/inf (orjson refuses them as unparsable); files and hand-built
    # batches can carry them
    path = tmp_path / "nf.csv"
    path.write_text(
        "meter_id,ts,power_w,voltage_v,current_a,pf\n"
        "A,1767571205000,nan,230,0.1,1\nB,1767571205000,1,inf,0.1,1\n"
        "C,1767571205000,1,230,0.1,1\n"
    )
    batch, rej = read_table(path)
    assert list(batch.meter_id) == ["C"] and [r.reason for r in rej] == ["non_finite"] * 2
    _, rej = decode_message(
        orjson.dumps({**GOOD, "ts": GOOD["ts"] + 3 * 86_400_000}), newest_ms=GOOD["ts"]
    )
    assert [r.reason for r in rej] == ["bad_timestamp"]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_decode_never_raises_on_garbage_bytes(raw: bytes) -> None:
    batch, rej = decode_message(raw)
    assert len(batch) + len(rej) >= 1 or raw.strip() == b"" or len(batch) == 0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=8)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_decode_never_raises_on_any_json_document(doc: object) -> None:
    try:
        raw = orjson.dumps(doc)
    except (TypeError, orjson.JSONEncodeError):
        return
    batch, rej = decode_message(raw)
    assert isinstance(batch, ReadingBatch)
    assert all(r.reason in REASONS for r in rej)


@settings(max_examples=100, deadline=None)
@given(
    st.from_regex(r"[A-Za-z0-9_.:\-]{1,64}", fullmatch=True),
    st.integers(min_value=946_684_800_000, max_value=4_000_000_000_000),
    st.floats(-1e6, 1e6),
    st.floats(0.001, 1e4, exclude_min=False),
    st.floats(0, 1e4),
    st.floats(-1, 1),
)
def test_encode_decode_round_trip(
    mid: str, ts: int, p: float, v: float, i: float, pf: float
) -> None:
    batch = ReadingBatch.from_columns([mid], [ts], [p], [v], [i], [pf])
    back, rej = decode_message(encode_reading(batch, 0))
    assert rej == []
    assert back.meter_id[0] == mid and back.ts_ms[0] == ts
    np.testing.assert_array_equal([back.p[0], back.v[0], back.i[0], back.pf[0]], [p, v, i, pf])


def test_read_csv_with_iso_and_epoch_timestamps_and_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text(
        "meter_id,ts,power_w,voltage_v,current_a,pf\n"
        "A,2026-01-05T00:00:05+00:00,100.5,230,0.5,0.9\n"
        "B,2026-01-05T01:00:05+01:00,200,231,1.0,-0.5\n"
        "C,2026-01-05T00:00:05+00:00,abc,230,0.5,0.9\n"
        "D,2026-01-05T00:00:05+00:00,1,230,0.5,1.2\n"
        "E,2026-01-05T00:00:05+00:00,1,230\n"
    )
    batch, rej = read_table(path)
    assert list(batch.meter_id) == ["A", "B"]
    assert batch.ts_ms.tolist() == [1767571205000, 1767571205000]
    assert sorted(r.reason for r in rej) == ["bad_type", "pf_out_of_range", "unparsable"]
    epoch = tmp_path / "e.csv"
    epoch.write_text(
        "meter_id,ts,power_w,voltage_v,current_a,pf,gateway_id\nA,1767571205000,1,230,0.1,1,GW-1\n"
    )
    batch, rej = read_table(epoch)
    assert rej == [] and batch.ts_ms[0] == 1767571205000 and batch.gateway_id[0] == "GW-1"


def test_read_parquet(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "r.parquet"
    pq.write_table(
        pa.table(
            {
                "meter_id": ["A", "A"],
                "ts": [1767571205000, 1767571265000],
                "power_w": [1.0, 2.0],
                "voltage_v": [230.0, -1.0],
                "current_a": [0.1, 0.1],
                "pf": [1.0, 1.0],
            }
        ),
        path,
    )
    batch, rej = read_table(path)
    assert len(batch) == 1 and [r.reason for r in rej] == ["voltage_non_positive"]


def test_unusable_files_raise(tmp_path: Path) -> None:
    with pytest.raises(UnusableInputError, match="no such file"):
        read_table(tmp_path / "missing.csv")
    path = tmp_path / "cols.csv"
    path.write_text("meter_id,ts,power_w\nA,1767571205000,1\n")
    with pytest.raises(UnusableInputError, match="missing column"):
        read_table(path)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 4_102_444_799),  # epoch seconds up to 2099
            st.integers(0, 999),
            st.integers(-14 * 4, 14 * 4),  # offset in quarter hours
            st.sampled_from(["offset", "naive", "garbage", "month13", "hour25", "feb31"]),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_vectorised_iso_timestamps_agree_with_the_row_by_row_parser(
    rows: list[tuple[int, int, int, str]],
) -> None:
    """The whole-column Arrow parse of ISO-8601 strings gives the same epoch ms as
    ``parse_ts``; rows without an offset, garbage and impossible dates are still decided
    row by row, alone or mixed with good rows."""
    import datetime as dt

    import pyarrow as pa

    from stream.codecs import _column_to_ts_ms, parse_ts

    texts = []
    for sec, ms, quarters, kind in rows:
        tz = dt.timezone(dt.timedelta(minutes=15 * quarters))
        stamp = dt.datetime.fromtimestamp(sec, tz=dt.UTC).astimezone(tz)
        text = stamp.replace(microsecond=ms * 1000).isoformat(timespec="milliseconds")
        if kind == "naive":
            text = text[:23]
        elif kind == "garbage":
            text = "NaT?" + text
        elif kind == "month13":
            text = text[:5] + "13" + text[7:]
        elif kind == "hour25":
            text = text[:11] + "25" + text[13:]
        elif kind == "feb31":  # the right shape, refused by the vectorised cast
            text = "2026-02-31" + text[10:]
        texts.append(text)
    got, bad = _column_to_ts_ms(pa.chunked_array([pa.array(texts)]))
    for k, text in enumerate(texts):
        expected = parse_ts(text)
        assert bool(bad[k]) == (expected is None)
        if expected is not None:
            # parse_ts goes through a float of seconds: allow its 1 ms truncation
            assert abs(int(got[k]) - expected) <= 1


def test_all_iso_column_is_cast_in_slices_across_blocks_and_chunks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every row ISO-shaped: blocks are slices of the column (no gather), across Arrow
    chunk boundaries; a block Arrow refuses (31 February) still goes row by row."""
    import pyarrow as pa

    import stream.codecs as codecs

    monkeypatch.setattr(codecs, "TS_CAST_BLOCK", 3)
    texts = [f"2026-01-05T00:{m:02d}:00+01:00" for m in range(10)]
    texts[4] = "2026-02-31T00:04:00+01:00"
    col = pa.chunked_array([pa.array(texts[:4]), pa.array(texts[4:7]), pa.array(texts[7:])])
    got, bad = codecs._column_to_ts_ms(col)
    assert bad.tolist() == [k == 4 for k in range(10)]
    for k, text in enumerate(texts):
        if k != 4:
            assert got[k] == codecs.parse_ts(text) == 1767567600000 + 60_000 * k


def test_read_table_rejects_each_bad_row_once_structural_reasons_first(tmp_path: Path) -> None:
    """Unreadable cells and out-of-range values in one file: one rejection per row, the
    structural ones first, the valid rows kept in file order."""
    path = tmp_path / "mixed.csv"
    path.write_text(
        "meter_id,ts,power_w,voltage_v,current_a,pf\n"
        "A,2026-01-05T00:00:00+00:00,1,230,0.5,0.9\n"
        "B,2026-01-05T00:00:00+00:00,abc,230,0.5,1.5\n"
        "C,2026-01-05T00:00:00+00:00,1,230,0.5,1.5\n"
        "D,2026-01-05T00:05:00+00:00,2,231,0.5,0.9\n"
        "E,not-a-time,1,-1,0.5,0.9\n"
        "F,2026-01-05T00:00:00+00:00,1,230,-0.5,0.9\n"
    )
    batch, rej = read_table(path)
    assert list(batch.meter_id) == ["A", "D"]
    assert batch.p.tolist() == [1.0, 2.0]
    assert [(r.raw["meter_id"], r.reason) for r in rej] == [
        ("E", "bad_timestamp"),
        ("B", "bad_type"),
        ("C", "pf_out_of_range"),
        ("F", "current_negative"),
    ]


def test_arrow_buffers_read_like_to_numpy_with_offsets_chunks_and_nulls() -> None:
    """The buffer readers used instead of ``to_numpy``: sliced arrays (non-zero offset),
    several chunks, nulls (their slots are the caller's to overwrite)."""
    import pyarrow as pa

    from stream.codecs import _bool_to_numpy, _fixed_to_numpy, _is_null

    floats = pa.chunked_array(
        [pa.array([1.5, None, 3.0, 4.0, 5.0]).slice(1), pa.array([], pa.float64()), [7.0, 8.0]]
    )
    values = _fixed_to_numpy(floats, np.float64)
    assert _is_null(floats).tolist() == [True, False, False, False, False, False]
    assert values[1:].tolist() == [3.0, 4.0, 5.0, 7.0, 8.0]
    ints = pa.array(list(range(20)), pa.int32()).slice(3, 11)
    assert _fixed_to_numpy(ints, np.int32).tolist() == list(range(3, 14))
    with pytest.raises(TypeError):
        _fixed_to_numpy(ints, np.int64)
    flags = [k % 3 == 0 if k % 5 else None for k in range(19)]
    sliced = pa.array(flags).slice(2, 15)
    want = [bool(f) for f in flags[2:17]]
    assert _bool_to_numpy(sliced).tolist() == want
    assert _bool_to_numpy(sliced, null_as=True).tolist() == [
        True if f is None else f for f in flags[2:17]
    ]


def test_reading_a_csv_does_not_import_pandas(tmp_path: Path) -> None:
    """pyarrow's ``to_numpy`` and ``pa.array`` import pandas (0.3-0.5 s of CPU); the file
    reader avoids both, also on the row-by-row timestamp path and for Parquet."""
    import subprocess
    import sys

    path = tmp_path / "r.csv"
    path.write_text(
        "meter_id,ts,power_w,voltage_v,current_a,pf\n"
        "A,2026-01-05T00:00:05+00:00,1,230,0.5,0.9\n"
        "B,1767571205000,2,230,0.5,0.9\n"
        "D,2026-01-05T00:00:05+00:00,,230,0.5,0.9\n"
        "C,garbage,1,230,0.5,0.9\n"
    )
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    parquet = tmp_path / "r.parquet"
    pq.write_table(pacsv.read_csv(path), parquet)
    code = (
        "import sys\nfrom stream.codecs import read_table\n"
        f"for name in ({str(path)!r}, {str(parquet)!r}):\n"
        "    batch, rej = read_table(name)\n"
        "    assert len(batch) == 2 and len(rej) == 2, (name, len(batch), rej)\n"
        "print('pandas' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.stdout.strip() == "False"


def test_mixed_column_gives_the_same_times_however_arrow_chunks_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rows not ISO-shaped send the ISO rows through gathered blocks: a column in many
    Arrow chunks (as a CSV arrives) decodes exactly as the same column in one chunk."""
    import pyarrow as pa

    import stream.codecs as codecs

    monkeypatch.setattr(codecs, "TS_CAST_BLOCK", 4)
    texts: list[str | None] = [f"2026-01-05T00:{m:02d}:00.{m:03d}+01:00" for m in range(23)]
    texts[2], texts[9], texts[15] = "1767571200000", None, "garbage"
    texts[12] = "2026-02-31T00:12:00+01:00"  # refused by the cast: its block goes row by row
    one_chunk = codecs._column_to_ts_ms(pa.chunked_array([pa.array(texts)]))
    chunks = [
        pa.array(texts[a:b], type=pa.string()) for a, b in ((0, 5), (5, 6), (6, 17), (17, 23))
    ]
    many_chunks = codecs._column_to_ts_ms(pa.chunked_array(chunks))
    np.testing.assert_array_equal(many_chunks[0], one_chunk[0])
    np.testing.assert_array_equal(many_chunks[1], one_chunk[1])
    assert one_chunk[1].tolist() == [k in (9, 12, 15) for k in range(23)]
    assert one_chunk[0][2] == 1767571200000
