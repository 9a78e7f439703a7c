"""Decoding and validation of meter readings (contract ``meterwatch.reading.v1``).

Everything here is columnar: a :class:`ReadingBatch` is a bundle of numpy arrays, and the
numeric checks run vectorised over the whole batch. Kafka JSON is decoded with orjson
(one reading per message, or a gateway batch); files are read with pyarrow (CSV through
``pyarrow.csv``'s multi-threaded reader, Parquet through ``pyarrow.parquet``).

A malformed reading never raises: it becomes a :class:`Rejection` with one of the reason
codes of the contract. Validation is one function, :func:`validate_arrays`, used by the
decoders and again by the engine (a batch built by hand gets the same checks).
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import compress
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

# Reason codes (contract section 1).
REASONS = (
    "unparsable",
    "not_an_object",
    "missing_field",
    "unknown_field",
    "bad_type",
    "non_finite",
    "pf_out_of_range",
    "voltage_non_positive",
    "current_negative",
    "bad_timestamp",
    "bad_meter_id",
)

REQUIRED_FIELDS = ("meter_id", "ts", "p", "v", "i", "pf")
OPTIONAL_FIELDS = ("e_wh", "gateway_id")
ALLOWED_FIELDS = frozenset(REQUIRED_FIELDS + OPTIONAL_FIELDS)

#: file column -> reading field
FILE_COLUMNS = {
    "meter_id": "meter_id",
    "ts": "ts",
    "power_w": "p",
    "voltage_v": "v",
    "current_a": "i",
    "pf": "pf",
}
FILE_OPTIONAL_COLUMNS = {"gateway_id": "gateway_id", "energy_wh": "e_wh"}

#: 2000-01-01T00:00:00Z: anything earlier is an absurd timestamp.
MIN_TS_MS = 946_684_800_000
#: a reading more than this ahead of the newest accepted reading (or the clock) is absurd.
MAX_AHEAD_MS = 86_400_000

_METER_ID_RE = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
ObjArray = npt.NDArray[np.object_]


class UnusableInputError(Exception):
    """The input as a whole cannot be used (missing file, missing columns, not a table)."""


@dataclass(frozen=True, slots=True)
class Rejection:
    """One rejected reading: reason code, human detail and the raw input (JSON-able)."""

    reason: str
    detail: str
    raw: Any

    def to_json(self) -> dict[str, Any]:
        return {"reason": self.reason, "detail": self.detail, "raw": self.raw}


def _f64(values: Any) -> FloatArray:
    return np.asarray(values, dtype=np.float64)


@dataclass(slots=True)
class ReadingBatch:
    """Columnar readings. All arrays have the same length."""

    meter_id: ObjArray
    ts_ms: IntArray
    p: FloatArray
    v: FloatArray
    i: FloatArray
    pf: FloatArray
    gateway_id: ObjArray | None = None
    e_wh: FloatArray | None = None
    # optional dictionary encoding of meter_id (codes into meter_vocab), filled by readers
    meter_codes: npt.NDArray[np.int32] | None = field(default=None, repr=False)
    meter_vocab: list[str] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return int(self.ts_ms.shape[0])

    @classmethod
    def empty(cls) -> ReadingBatch:
        return cls(
            meter_id=np.empty(0, dtype=object),
            ts_ms=np.empty(0, dtype=np.int64),
            p=np.empty(0),
            v=np.empty(0),
            i=np.empty(0),
            pf=np.empty(0),
        )

    @classmethod
    def from_columns(
        cls,
        meter_id: Any,
        ts_ms: Any,
        p: Any,
        v: Any,
        i: Any,
        pf: Any,
        gateway_id: Any = None,
        e_wh: Any = None,
    ) -> ReadingBatch:
        return cls(
            meter_id=np.asarray(meter_id, dtype=object),
            ts_ms=np.asarray(ts_ms, dtype=np.int64),
            p=_f64(p),
            v=_f64(v),
            i=_f64(i),
            pf=_f64(pf),
            gateway_id=None if gateway_id is None else np.asarray(gateway_id, dtype=object),
            e_wh=None if e_wh is None else _f64(e_wh),
        )

    def take(self, idx: npt.NDArray[np.intp] | npt.NDArray[np.bool_]) -> ReadingBatch:
        """A new batch of the selected rows (index array or boolean mask)."""
        codes = None if self.meter_codes is None else self.meter_codes[idx]
        return ReadingBatch(
            meter_id=self.meter_id[idx],
            ts_ms=self.ts_ms[idx],
            p=self.p[idx],
            v=self.v[idx],
            i=self.i[idx],
            pf=self.pf[idx],
            gateway_id=None if self.gateway_id is None else self.gateway_id[idx],
            e_wh=None if self.e_wh is None else self.e_wh[idx],
            meter_codes=codes,
            meter_vocab=self.meter_vocab,
        )

    def slice(self, start: int, stop: int) -> ReadingBatch:
        """Rows start..stop as views (no copy)."""
        sl = slice(start, stop)
        return ReadingBatch(
            meter_id=self.meter_id[sl],
            ts_ms=self.ts_ms[sl],
            p=self.p[sl],
            v=self.v[sl],
            i=self.i[sl],
            pf=self.pf[sl],
            gateway_id=None if self.gateway_id is None else self.gateway_id[sl],
            e_wh=None if self.e_wh is None else self.e_wh[sl],
            meter_codes=None if self.meter_codes is None else self.meter_codes[sl],
            meter_vocab=self.meter_vocab,
        )

    def row(self, k: int) -> dict[str, Any]:
        """One reading as a JSON-able dict (for rejections and debugging)."""
        out: dict[str, Any] = {
            "meter_id": _jsonable(self.meter_id[k]),
            "ts": int(self.ts_ms[k]),
            "p": _jsonable(self.p[k]),
            "v": _jsonable(self.v[k]),
            "i": _jsonable(self.i[k]),
            "pf": _jsonable(self.pf[k]),
        }
        if self.gateway_id is not None:
            out["gateway_id"] = _jsonable(self.gateway_id[k])
        if self.e_wh is not None:
            out["e_wh"] = _jsonable(self.e_wh[k])
        return out

    def meter_categories(self) -> tuple[npt.NDArray[np.int32], list[str]]:
        """Dictionary-encode meter_id: (codes, vocabulary). Hash based (pyarrow), no sort."""
        if self.meter_codes is not None and self.meter_vocab is not None:
            return self.meter_codes, self.meter_vocab
        import pyarrow as pa

        if len(self) == 0:
            return np.empty(0, dtype=np.int32), []
        encoded = pa.array(self.meter_id, type=pa.string()).dictionary_encode()
        codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int32, copy=False)
        vocab = encoded.dictionary.to_pylist()
        self.meter_codes, self.meter_vocab = codes, vocab
        return codes, vocab


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    return value


def concat_batches(batches: list[ReadingBatch]) -> ReadingBatch:
    if not batches:
        return ReadingBatch.empty()
    if len(batches) == 1:
        return batches[0]
    gw = None
    if any(b.gateway_id is not None for b in batches):
        gw = np.concatenate(
            [b.gateway_id if b.gateway_id is not None else np.full(len(b), None) for b in batches]
        )
    ew = None
    if any(b.e_wh is not None for b in batches):
        ew = np.concatenate(
            [b.e_wh if b.e_wh is not None else np.full(len(b), np.nan) for b in batches]
        )
    return ReadingBatch(
        meter_id=np.concatenate([b.meter_id for b in batches]),
        ts_ms=np.concatenate([b.ts_ms for b in batches]),
        p=np.concatenate([b.p for b in batches]),
        v=np.concatenate([b.v for b in batches]),
        i=np.concatenate([b.i for b in batches]),
        pf=np.concatenate([b.pf for b in batches]),
        gateway_id=gw,
        e_wh=ew,
    )


# --------------------------------------------------------------------------- validation


def validate_arrays(
    batch: ReadingBatch, newest_ms: int | None = None
) -> tuple[npt.NDArray[np.bool_], list[tuple[int, str, str]]]:
    """Vectorised checks of a batch. Returns (ok mask, [(row, reason, detail), ...]).

    ``newest_ms`` is the newest accepted event time so far (or the clock); readings more
    than a day ahead of it are absurd. The first failing check of a row gives its reason.
    """
    return _validate(batch, newest_ms, check_ids=True)


def _validate(
    batch: ReadingBatch,
    newest_ms: int | None,
    *,
    check_ids: bool,
    already_bad: npt.NDArray[np.bool_] | None = None,
) -> tuple[npt.NDArray[np.bool_], list[tuple[int, str, str]]]:
    """:func:`validate_arrays`; ``check_ids=False`` when every meter_id is already known
    to match the pattern (the JSON decoder checks ids before building the batch). Rows in
    ``already_bad`` (rejected earlier for another reason) are not ok and get no problem."""
    n = len(batch)
    ok = np.ones(n, dtype=bool) if already_bad is None else ~already_bad
    problems: list[tuple[int, str, str]] = []
    if n == 0:
        return ok, problems

    def flag(mask: npt.NDArray[np.bool_], reason: str, detail: str) -> None:
        hit = mask & ok
        if hit.any():
            for k in np.flatnonzero(hit):
                problems.append((int(k), reason, detail))
            ok[hit] = False

    ids = batch.meter_id
    if not check_ids:
        bad_id = np.zeros(n, dtype=bool)
    elif batch.meter_vocab is not None and batch.meter_codes is not None:
        bad_vocab = np.array(
            [not (isinstance(m, str) and _METER_ID_RE.match(m)) for m in batch.meter_vocab],
            dtype=bool,
        )
        bad_id = bad_vocab[batch.meter_codes] if len(bad_vocab) else np.zeros(n, dtype=bool)
    else:
        # one pass over the joined ids, then the pattern per distinct odd id (a regex
        # match per reading was the largest cost of re-validating a decoded batch)
        in_pattern = _ids_ok(ids.tolist())
        bad_id = np.zeros(n, dtype=bool) if in_pattern is None else ~in_pattern
    flag(bad_id, "bad_meter_id", "meter_id must be 1-64 chars [A-Za-z0-9_.:-]")
    finite = (
        np.isfinite(batch.p) & np.isfinite(batch.v) & np.isfinite(batch.i) & np.isfinite(batch.pf)
    )
    if batch.e_wh is not None:
        # e_wh is optional: NaN means "absent", but inf is garbage
        finite &= ~np.isinf(batch.e_wh)
    flag(~finite, "non_finite", "p, v, i, pf must be finite numbers")
    flag(np.abs(batch.pf) > 1.0, "pf_out_of_range", "|pf| must be <= 1")
    flag(batch.v <= 0.0, "voltage_non_positive", "v must be > 0")
    flag(batch.i < 0.0, "current_negative", "i must be >= 0")
    upper = MAX_AHEAD_MS + (newest_ms if newest_ms is not None else 0)
    bad_ts = batch.ts_ms < MIN_TS_MS
    if newest_ms is not None:
        bad_ts |= batch.ts_ms > upper
    flag(bad_ts, "bad_timestamp", "ts before 2000-01-01 or more than 1 day ahead")
    return ok, problems


def split_valid(
    batch: ReadingBatch, newest_ms: int | None = None
) -> tuple[ReadingBatch, list[Rejection]]:
    """The valid part of ``batch`` and a Rejection for every invalid row."""
    return _split_valid(batch, newest_ms, check_ids=True)


def _split_valid(
    batch: ReadingBatch, newest_ms: int | None, *, check_ids: bool
) -> tuple[ReadingBatch, list[Rejection]]:
    ok, problems = _validate(batch, newest_ms, check_ids=check_ids)
    if not problems:
        return batch, []
    rejections = [Rejection(reason, detail, batch.row(k)) for k, reason, detail in problems]
    return batch.take(ok), rejections


# --------------------------------------------------------------------------- JSON (Kafka)


def parse_ts(value: Any) -> int | None:
    """Epoch ms from an int (ms) or an ISO-8601 string WITH an offset; None when bad."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and np.isfinite(value) and value == int(value):
        return int(value)
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if dt.tzinfo is None or dt.utcoffset() is None:
                return None
            return int(dt.timestamp() * 1000)
        except (ValueError, OverflowError, OSError):
            return None
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_reading(obj: Any, gateway: Any) -> tuple[tuple[Any, ...] | None, str, str]:
    """Structural checks of one JSON reading: (row tuple, "", "") or (None, reason, detail)."""
    if not isinstance(obj, dict):
        return None, "not_an_object", "a reading must be a JSON object"
    keys = obj.keys()
    for name in REQUIRED_FIELDS:
        if name not in keys:
            return None, "missing_field", f"missing field {name!r}"
    extra = [k for k in keys if k not in ALLOWED_FIELDS]
    if extra:
        return None, "unknown_field", f"unknown field {str(extra[0])[:40]!r}"
    meter_id = obj["meter_id"]
    if not isinstance(meter_id, str) or _METER_ID_RE.match(meter_id) is None:
        return None, "bad_meter_id", "meter_id must be 1-64 chars [A-Za-z0-9_.:-]"
    numbers: list[float] = []
    for name in ("p", "v", "i", "pf"):
        value = obj[name]
        if not _is_number(value):
            return None, "bad_type", f"field {name!r} must be a number"
        try:
            numbers.append(float(value))
        except OverflowError:
            return None, "non_finite", f"field {name!r} is out of range"
    e_wh = obj.get("e_wh")
    if e_wh is not None:
        if not _is_number(e_wh):
            return None, "bad_type", "field 'e_wh' must be a number"
        try:
            e_wh = float(e_wh)
        except OverflowError:
            return None, "non_finite", "field 'e_wh' is out of range"
    ts = parse_ts(obj["ts"])
    if ts is None or not (-(2**62) < ts < 2**62):
        return None, "bad_timestamp", "ts must be epoch ms or ISO-8601 with offset"
    gw = obj.get("gateway_id", gateway)
    if gw is not None and not isinstance(gw, str):
        return None, "bad_type", "gateway_id must be a string"
    return (
        (
            meter_id,
            ts,
            *numbers,
            gw,
            np.nan if e_wh is None else e_wh,
        ),
        "",
        "",
    )


def _decode_objects_reference(
    objs: list[Any], gateway: Any = None, newest_ms: int | None = None
) -> tuple[ReadingBatch, list[Rejection]]:
    """Readings from already-parsed JSON objects, one :func:`_check_reading` per object.

    The specification of :func:`decode_objects`, which must give exactly the same result
    (the differential test in ``tests/unit/test_codecs_decode_fast.py`` holds it to that).
    """
    rows: list[tuple[Any, ...]] = []
    rejections: list[Rejection] = []
    for obj in objs:
        row, reason, detail = _check_reading(obj, gateway)
        if row is None:
            rejections.append(Rejection(reason, detail, _raw_json(obj)))
        else:
            rows.append(row)
    if not rows:
        return ReadingBatch.empty(), rejections
    cols = list(zip(*rows, strict=True))
    batch = ReadingBatch(
        meter_id=np.array(cols[0], dtype=object),
        ts_ms=np.array(cols[1], dtype=np.int64),
        p=np.array(cols[2], dtype=np.float64),
        v=np.array(cols[3], dtype=np.float64),
        i=np.array(cols[4], dtype=np.float64),
        pf=np.array(cols[5], dtype=np.float64),
        gateway_id=np.array(cols[6], dtype=object),
        e_wh=np.array(cols[7], dtype=np.float64),
    )
    valid, more = split_valid(batch, newest_ms)
    return valid, rejections + more


_REQUIRED_KEYS = frozenset(REQUIRED_FIELDS)
_NUMBER_TYPES: frozenset[type] = frozenset({int, float})
_OPTIONAL_NUMBER_TYPES: frozenset[type] = frozenset({int, float, type(None)})
_GATEWAY_TYPES: frozenset[type] = frozenset({str, type(None)})
_INT_TYPES: frozenset[type] = frozenset({int})
_STR_TYPES: frozenset[type] = frozenset({str})
_DICT_TYPES: frozenset[type] = frozenset({dict})
_TS_LIMIT = 2**62
_ROW_GETTER = itemgetter("meter_id", "ts", "p", "v", "i", "pf")
#: the characters of the meter_id pattern; a concatenation of ids made only of these, with
#: every id 1-64 long, means every id matches (one regex pass for the whole column)
_METER_ID_CHARS_RE = re.compile(r"[A-Za-z0-9_.:\-]*")


def _types_ok(values: list[Any], allowed: frozenset[type]) -> npt.NDArray[np.bool_] | None:
    """None when every value's exact type is in ``allowed`` (one C-level pass over the
    types), else a per-row mask of the rows whose type is."""
    if set(map(type, values)) <= allowed:
        return None
    return np.fromiter((type(x) in allowed for x in values), dtype=bool, count=len(values))


def _key_shapes(objs: list[Any]) -> tuple[npt.NDArray[np.bool_] | None, set[tuple[str, ...]]]:
    """Which objects are dicts with the contract's keys (None: all are), and their distinct
    key tuples: a gateway batch has one or two shapes, so the key check runs per shape."""
    is_dict = _types_ok(objs, _DICT_TYPES)
    dicts = objs if is_dict is None else list(compress(objs, is_dict))
    shapes = set(map(tuple, dicts))
    good = {s for s in shapes if _REQUIRED_KEYS <= set(s) <= ALLOWED_FIELDS}
    if is_dict is None and len(good) == len(shapes):
        return None, good
    mask = (type(r) is dict and tuple(r) in good for r in objs)
    return np.fromiter(mask, dtype=bool, count=len(objs)), good


def _ids_ok(meter_id: list[Any]) -> npt.NDArray[np.bool_] | None:
    """:func:`_types_ok` for meter_id, plus the pattern (None: every id is a matching str)."""
    mask = _types_ok(meter_id, _STR_TYPES)
    ids: list[str] = meter_id if mask is None else list(compress(meter_id, mask))
    if not ids:
        return mask
    lengths = list(map(len, ids))
    joined = "".join(ids)
    if (
        min(lengths) >= 1
        and max(lengths) <= 64
        and _METER_ID_CHARS_RE.fullmatch(joined) is not None
    ):
        return mask
    # some id is odd: the exact pattern, once per distinct id
    bad = {mid for mid in set(ids) if _METER_ID_RE.match(mid) is None}
    if not bad:
        return mask
    in_pattern = (type(x) is str and x not in bad for x in meter_id)
    return np.fromiter(in_pattern, dtype=bool, count=len(meter_id))


def _fast_columns(
    cand: list[dict[str, Any]], gateway: Any, shapes: set[tuple[str, ...]]
) -> tuple[npt.NDArray[np.bool_] | None, list[list[Any]]]:
    """Columns (meter_id, ts, p, v, i, pf, gateway_id, e_wh) of dicts whose keys are known
    to be right, and a mask of the rows that certainly pass every structural check of
    :func:`_check_reading` (None: all do).

    A row outside the mask is not judged here: the caller gives it to ``_check_reading``,
    so the reason of its rejection (or its acceptance) is the reference's own.
    """
    m = len(cand)
    columns = [list(col) for col in zip(*map(_ROW_GETTER, cand), strict=True)]
    if any("gateway_id" in s for s in shapes):
        gw = [r.get("gateway_id", gateway) for r in cand]
    else:
        gw = [gateway] * m
    e_wh = [r.get("e_wh") for r in cand] if any("e_wh" in s for s in shapes) else [None] * m
    columns.extend((gw, e_wh))
    good: npt.NDArray[np.bool_] | None = None

    def narrow(mask: npt.NDArray[np.bool_] | None) -> None:
        nonlocal good
        if mask is not None:
            good = mask if good is None else good & mask

    narrow(_ids_ok(columns[0]))
    for col in columns[2:6]:
        narrow(_types_ok(col, _NUMBER_TYPES))
    narrow(_types_ok(e_wh, _OPTIONAL_NUMBER_TYPES))
    narrow(_types_ok(gw, _GATEWAY_TYPES))
    # ts: only integer epoch ms inside (-2**62, 2**62) here; floats and ISO strings are
    # parsed by the reference path (orjson's ints go up to 2**64 - 1, beyond int64)
    ts = columns[1]
    ts_types = _types_ok(ts, _INT_TYPES)
    narrow(ts_types)
    ints = ts if ts_types is None else list(compress(ts, ts_types))
    if ints and not (-_TS_LIMIT < min(ints) and max(ints) < _TS_LIMIT):
        in_range = (type(t) is int and -_TS_LIMIT < t < _TS_LIMIT for t in ts)
        narrow(np.fromiter(in_range, dtype=bool, count=m))
    return good, columns


def _plainly_valid(columns: list[list[Any]], newest_ms: int | None) -> bool:
    """True when no row fails a value check of :func:`validate_arrays` (meter_id aside),
    decided on the Python columns with a few C-level reductions (a 20-reading message is
    too small for numpy's per-call cost to pay). Exact where it says True: the values are
    ints and floats, compared exactly; a NaN, an infinity or a float sum that overflows
    only makes it say False, and False sends the batch through the full checks."""
    _, ts, p, v, i, pf, _, e_wh = columns
    try:
        if not math.isfinite(sum(p) + sum(v) + sum(i) + sum(pf)):
            return False
        present = [x for x in e_wh if x is not None]
        if present and not math.isfinite(sum(present)):
            return False
    except OverflowError:  # an int beyond float range (objects not parsed by orjson)
        return False
    if not (min(v) > 0 and min(i) >= 0 and min(pf) >= -1 and max(pf) <= 1):
        return False
    if min(ts) < MIN_TS_MS:
        return False
    return newest_ms is None or max(ts) <= MAX_AHEAD_MS + newest_ms


_PLAIN_ROW_LENGTHS = frozenset({len(REQUIRED_FIELDS)})


def _plain_columns(
    objs: list[Any], gateway: Any, newest_ms: int | None
) -> tuple[tuple[tuple[Any, ...], ...], bool] | None:
    """The checks of :func:`_decode_plain` on the Python values: the six columns (meter_id,
    ts, p, v, i, pf) and whether every value passes the value checks; None when some
    reading is not plain."""
    if {type(r) for r in objs} != _DICT_TYPES or type(gateway) not in _GATEWAY_TYPES:
        return None
    if set(map(len, objs)) != _PLAIN_ROW_LENGTHS:
        return None
    try:
        rows = list(map(_ROW_GETTER, objs))  # six keys, all required: exactly the contract's
    except KeyError:
        return None
    columns = tuple(zip(*rows, strict=True))
    meter_id, ts, p, v, i, pf = columns
    numbers = p + v + i + pf
    if (
        set(map(type, meter_id)) != _STR_TYPES
        or set(map(type, ts)) != _INT_TYPES
        or not set(map(type, numbers)) <= _NUMBER_TYPES
    ):
        return None
    lengths = list(map(len, meter_id))
    if min(lengths) < 1 or max(lengths) > 64:
        return None
    if _METER_ID_CHARS_RE.fullmatch("".join(meter_id)) is None:
        return None
    ts_min, ts_max = min(ts), max(ts)
    if ts_max >= _TS_LIMIT or ts_min <= -_TS_LIMIT:
        return None
    try:
        values_ok = (
            math.isfinite(sum(numbers))
            and min(v) > 0
            and min(i) >= 0
            and min(pf) >= -1
            and max(pf) <= 1
            and ts_min >= MIN_TS_MS
            and (newest_ms is None or ts_max <= MAX_AHEAD_MS + newest_ms)
        )
    except OverflowError:  # an int beyond float range: not from orjson
        return None
    return columns, values_ok


def _batch_of_columns(
    columns: Sequence[Sequence[Any]], gateway_id: npt.NDArray[Any]
) -> ReadingBatch:
    """A batch from the six Python columns (meter_id, ts, p, v, i, pf) of plain readings
    and the gateway of each row. OverflowError for an int beyond float range."""
    meter_id, ts, p, v, i, pf = columns
    m = len(ts)
    p_arr, v_arr, i_arr, pf_arr = np.array((p, v, i, pf), dtype=np.float64).reshape(4, m)
    meter_arr = np.empty(m, dtype=object)
    meter_arr[:] = meter_id
    return ReadingBatch(
        meter_id=meter_arr,
        ts_ms=np.array(ts, dtype=np.int64),
        p=p_arr,
        v=v_arr,
        i=i_arr,
        pf=pf_arr,
        gateway_id=gateway_id,
        e_wh=np.full(m, np.nan),
    )


def _decode_plain(
    objs: list[Any], gateway: Any, newest_ms: int | None
) -> tuple[ReadingBatch, list[Rejection]] | None:
    """The common gateway batch in a handful of C-level passes: every reading a dict with
    exactly the six required keys, a str id of the pattern, int/float numbers and an int
    epoch-ms ts. None when any reading is not like that (:func:`decode_objects` then
    sorts the rows out). Value checks that fail go through :func:`_split_valid`."""
    plain = _plain_columns(objs, gateway, newest_ms)
    if plain is None:
        return None
    columns, values_ok = plain
    try:
        batch = _batch_of_columns(columns, np.full(len(objs), gateway, dtype=object))
    except OverflowError:  # an int beyond float range: not from orjson
        return None
    if values_ok:
        return batch, []
    return _split_valid(batch, newest_ms, check_ids=False)


def decode_objects(
    objs: list[Any], gateway: Any = None, newest_ms: int | None = None
) -> tuple[ReadingBatch, list[Rejection]]:
    """Readings from already-parsed JSON objects: exactly what
    :func:`_decode_objects_reference` gives, computed column-wise.

    Rows whose keys are the contract's and whose values have the plain types (str id
    matching the pattern, int/float numbers, int epoch-ms ts, str/None gateway) are
    decoded as columns; every other row goes through the per-reading checks, and the two
    parts are merged back in input order before the value checks.
    """
    n = len(objs)
    if n == 0:
        return ReadingBatch.empty(), []
    plain = _decode_plain(objs, gateway, newest_ms)
    if plain is not None:
        return plain
    if n == 1:
        # one odd reading: sorting rows into fast and slow would cost more than checking it
        return _decode_objects_reference(objs, gateway, newest_ms)
    keys_ok, shapes = _key_shapes(objs)
    cand_pos = np.arange(n) if keys_ok is None else np.flatnonzero(keys_ok)
    cand: list[dict[str, Any]] = objs if keys_ok is None else list(compress(objs, keys_ok))
    good: npt.NDArray[np.bool_] | None = None
    columns: list[list[Any]] = [[] for _ in range(8)]
    if cand:
        good, columns = _fast_columns(cand, gateway, shapes)
    if good is not None:
        columns = [list(compress(col, good)) for col in columns]
        cand_pos = cand_pos[good]
    fast_rows = len(cand_pos)

    rejections: list[Rejection] = []
    if fast_rows < n:
        fast_pos: list[int] = cand_pos.tolist()
        is_fast = np.zeros(n, dtype=bool)
        is_fast[cand_pos] = True
        rows: list[tuple[Any, ...]] | None = None
        for k in np.flatnonzero(~is_fast).tolist():
            obj = objs[k]
            row, reason, detail = _check_reading(obj, gateway)
            if row is None:
                rejections.append(Rejection(reason, detail, _raw_json(obj)))
                continue
            if rows is None:
                rows = list(zip(*columns, strict=True))
            # its place among the accepted rows: the fast rows before it plus the slow
            # rows already placed (they all came before it)
            rows.insert(bisect_left(fast_pos, k) + len(rows) - fast_rows, row)
        if rows is not None:
            columns = [list(col) for col in zip(*rows, strict=True)]
        elif not fast_rows:
            return ReadingBatch.empty(), rejections
    m = len(columns[0])
    try:
        # the four numeric columns in one conversion; each row of it is a contiguous array
        p, v, i, pf = np.array(columns[2:6], dtype=np.float64).reshape(4, m)
        e_wh = np.array(columns[7], dtype=np.float64)  # None -> NaN, as in the reference
    except OverflowError:
        # an int beyond float range (only from objects not parsed by orjson, whose ints
        # stop at 2**64): the reference words that rejection
        return _decode_objects_reference(objs, gateway, newest_ms)
    batch = ReadingBatch(
        meter_id=np.array(columns[0], dtype=object),
        ts_ms=np.array(columns[1], dtype=np.int64),
        p=p,
        v=v,
        i=i,
        pf=pf,
        gateway_id=np.array(columns[6], dtype=object),
        e_wh=e_wh,
    )
    if _plainly_valid(columns, newest_ms):
        return batch, rejections
    # every meter_id in the batch has passed the pattern (fast columns or _check_reading)
    valid, more = _split_valid(batch, newest_ms, check_ids=False)
    return valid, rejections + more


def _raw_json(obj: Any) -> Any:
    try:
        orjson.dumps(obj)
        return obj
    except (TypeError, orjson.JSONEncodeError):
        return repr(obj)[:500]


_ObjectsDecoder = Callable[[list[Any], Any, "int | None"], tuple[ReadingBatch, list[Rejection]]]


def _decode_message_with(
    value: bytes | str, newest_ms: int | None, decode: _ObjectsDecoder
) -> tuple[ReadingBatch, list[Rejection]]:
    try:
        obj = orjson.loads(value)
    except (orjson.JSONDecodeError, TypeError, ValueError):
        raw = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        return ReadingBatch.empty(), [Rejection("unparsable", "not valid JSON", raw[:500])]
    if isinstance(obj, dict) and "readings" in obj and "meter_id" not in obj:
        readings = obj["readings"]
        extra = [k for k in obj if k not in ("gateway_id", "readings")]
        if extra:
            return ReadingBatch.empty(), [
                Rejection(
                    "unknown_field",
                    f"unknown envelope field {str(extra[0])[:40]!r}",
                    _raw_json(obj),
                )
            ]
        gateway = obj.get("gateway_id")
        if not isinstance(readings, list) or (gateway is not None and not isinstance(gateway, str)):
            return ReadingBatch.empty(), [
                Rejection("bad_type", "batch needs readings: list, gateway_id: str", _raw_json(obj))
            ]
        return decode(readings, gateway, newest_ms)
    return decode([obj], None, newest_ms)


def decode_message(
    value: bytes | str, newest_ms: int | None = None
) -> tuple[ReadingBatch, list[Rejection]]:
    """Decode one Kafka message: a single reading or a gateway batch ``{"gateway_id",
    "readings": [...]}``. Never raises on bad input."""
    return _decode_message_with(value, newest_ms, decode_objects)


def _plain_message(value: bytes | str, newest_ms: int | None) -> tuple[Any, tuple[Any, ...]] | None:
    """(gateway, columns) of a message whose readings are all plain and valid (see
    :func:`_plain_columns`); None for anything else, which :func:`decode_message` decodes."""
    try:
        obj = orjson.loads(value)
    except (orjson.JSONDecodeError, TypeError, ValueError):
        return None
    if type(obj) is not dict:
        return None
    if "readings" in obj and "meter_id" not in obj:
        readings, gateway = obj["readings"], obj.get("gateway_id")
        if type(readings) is not list or any(k not in ("gateway_id", "readings") for k in obj):
            return None
    else:
        readings, gateway = [obj], None
    plain = _plain_columns(readings, gateway, newest_ms)
    if plain is None or not plain[1]:
        return None
    return gateway, plain[0]


class _PlainRun:
    """Columns of consecutive plain messages, turned into arrays once."""

    def __init__(self) -> None:
        self.columns: list[list[Any]] = [[] for _ in range(6)]
        self.gateways: list[Any] = []

    def add(self, gateway: Any, columns: tuple[Any, ...]) -> None:
        for column, values in zip(self.columns, columns, strict=True):
            column.extend(values)
        self.gateways.extend([gateway] * len(columns[0]))

    def batch(self) -> ReadingBatch:
        gateway_id = np.empty(len(self.gateways), dtype=object)
        gateway_id[:] = self.gateways
        # no OverflowError: the values come from orjson, whose ints stop at 2**64
        return _batch_of_columns(self.columns, gateway_id)


def decode_messages(
    values: Sequence[bytes | str], newest_ms: int | None = None
) -> tuple[ReadingBatch, list[Rejection]]:
    """The messages of one micro-batch as one batch: the readings and rejections of
    :func:`decode_message` on each message, concatenated in message order (the same
    values, dtypes and order). Messages whose readings are all plain and valid (the usual
    gateway batch) go into shared Python columns, so the arrays are built once per
    micro-batch rather than once per message (a message holds ~20 readings, and numpy's
    per-call cost was a third of decoding); any other message is decoded on its own."""
    parts: list[ReadingBatch] = []
    rejections: list[Rejection] = []
    run = _PlainRun()
    for value in values:
        plain = _plain_message(value, newest_ms)
        if plain is not None:
            run.add(*plain)
            continue
        if run.gateways:
            parts.append(run.batch())
            run = _PlainRun()
        batch, rejected = decode_message(value, newest_ms)
        rejections.extend(rejected)
        if len(batch):
            parts.append(batch)
    if run.gateways:
        parts.append(run.batch())
    return concat_batches(parts), rejections


def _decode_message_reference(
    value: bytes | str, newest_ms: int | None = None
) -> tuple[ReadingBatch, list[Rejection]]:
    """:func:`decode_message` with the per-reading decoder: the specification the fast
    path is tested against, and the baseline of ``tests/benchmarks/test_bench_codecs.py``."""
    return _decode_message_with(value, newest_ms, _decode_objects_reference)


def encode_reading(batch: ReadingBatch, k: int) -> bytes:
    """One reading as the single-message JSON form (used by tests and publishers)."""
    return orjson.dumps(batch.row(k))


# --------------------------------------------------------------------------- files


# Arrow -> numpy without ``to_numpy``: pyarrow's conversion imports pandas on first use
# (0.3-0.5 s of CPU, a few % of a million-reading replay, which never needs pandas). The
# file columns are fixed-width numbers and booleans, read here from the Arrow buffers.


def _chunks(arr: Any) -> list[Any]:
    return list(arr.chunks) if hasattr(arr, "chunks") else [arr]


def _fixed_to_numpy(arr: Any, dtype: Any) -> npt.NDArray[Any]:
    """Values of an Arrow (chunked) array of a fixed-width type whose values are ``dtype``
    (int32, int64, float64, timestamps as int64), as a new numpy array. Slots of nulls
    hold whatever Arrow left there: the caller overwrites them."""
    itemsize = np.dtype(dtype).itemsize
    if arr.type.bit_width != 8 * itemsize:
        raise TypeError(f"{arr.type} is not {np.dtype(dtype)}")
    parts = [
        np.frombuffer(c.buffers()[1], dtype=dtype, count=len(c), offset=c.offset * itemsize)
        for c in _chunks(arr)
        if len(c)
    ]
    return np.concatenate(parts) if parts else np.empty(0, dtype=dtype)


def _bits(buffer: Any, offset: int, length: int) -> npt.NDArray[np.bool_]:
    packed = np.frombuffer(buffer, dtype=np.uint8)
    return np.unpackbits(packed, bitorder="little")[offset : offset + length].astype(bool)


def _bool_to_numpy(arr: Any, null_as: bool = False) -> npt.NDArray[np.bool_]:
    """An Arrow (chunked) boolean array as numpy, nulls as ``null_as``."""
    parts = []
    for c in _chunks(arr):
        if not len(c):
            continue
        values = _bits(c.buffers()[1], c.offset, len(c))
        if c.null_count:
            valid = _bits(c.buffers()[0], c.offset, len(c))
            values = np.where(valid, values, null_as)
        parts.append(values)
    return np.concatenate(parts) if parts else np.empty(0, dtype=bool)


def _arrow_indices(rows: IntArray) -> Any:
    """Row numbers as an Arrow int64 array over the numpy buffer (``pa.array`` of a numpy
    array also imports pandas)."""
    import pyarrow as pa

    rows = np.ascontiguousarray(rows, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(rows), [None, pa.py_buffer(rows)])


def _is_null(arr: Any) -> npt.NDArray[np.bool_]:
    import pyarrow.compute as pc

    return _bool_to_numpy(pc.is_null(arr))


def _column_to_float(col: Any) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """A pyarrow column as float64 plus a mask of cells that were not numbers."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
        arr = pc.cast(col, pa.float64())
        isnull = _is_null(arr)
        values = _fixed_to_numpy(arr, np.float64)
        values[isnull] = np.nan
        return values, isnull
    strings = pc.cast(col, pa.string()).to_pylist()
    values = np.empty(len(strings), dtype=np.float64)
    bad = np.zeros(len(strings), dtype=bool)
    for k, s in enumerate(strings):
        try:
            values[k] = float(s) if s is not None else np.nan
            bad[k] = s is None
        except (TypeError, ValueError):
            values[k] = np.nan
            bad[k] = True
    return values, bad


#: ISO-8601 date-time with seconds, up to millisecond digits and a zone offset, fields in
#: range: the shape Arrow's timestamp cast parses; anything else is parsed row by row
ISO_WITH_OFFSET = (
    r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[T ]([01]\d|2[0-3]):[0-5]\d:[0-5]\d"
    r"(\.\d{1,3})?(Z|[+-]([01]\d|2[0-3]):?[0-5]\d)$"
)
#: rows per vectorised timestamp cast; a block Arrow refuses (e.g. 31 February) is parsed
#: row by row, so one odd row never sends the whole file down the slow path
TS_CAST_BLOCK = 65_536


def _column_to_ts_ms(col: Any) -> tuple[IntArray, npt.NDArray[np.bool_]]:
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_timestamp(col.type):
        if col.type.tz is None:
            # a timestamp without offset is ambiguous: the contract requires an offset
            n = len(col)
            return np.zeros(n, dtype=np.int64), np.ones(n, dtype=bool)
        ms = pc.cast(col, pa.timestamp("ms", tz="UTC"))
        isnull = _is_null(ms)
        ints = _fixed_to_numpy(pc.cast(ms, pa.int64()), np.int64)
        ints[isnull] = 0
        return ints, isnull
    if pa.types.is_integer(col.type):
        isnull = _is_null(col)
        ints = _fixed_to_numpy(pc.cast(col, pa.int64()), np.int64)
        ints[isnull] = 0
        return ints, isnull
    strings = pc.cast(col, pa.string())
    if isinstance(strings, pa.ChunkedArray) and strings.nbytes < 2**31 - 1:
        # one array (a CSV column comes in ~15k-row chunks): a take from a chunked array
        # resolves the chunk of every index, 5x slower for the block gathers below; the
        # size guard keeps the 32-bit string offsets of the combined array valid
        strings = strings.combine_chunks()
    n = len(strings)
    out = np.zeros(n, dtype=np.int64)
    bad = np.zeros(n, dtype=bool)
    # fast path: the rows that look like plain ISO-8601 with a zone offset go through
    # Arrow's parser in one vectorised cast; everything else (no offset, epoch ms as text,
    # garbage) is decided row by row below, exactly as the JSON path decides it
    iso = _bool_to_numpy(pc.match_substring_regex(strings, ISO_WITH_OFFSET), null_as=False)
    iso_rows = np.flatnonzero(iso)
    all_iso = len(iso_rows) == n
    slow = np.ones(n, dtype=bool)
    for start in range(0, len(iso_rows), TS_CAST_BLOCK):
        rows = iso_rows[start : start + TS_CAST_BLOCK]
        # every row ISO (the usual file): blocks are slices, no gather of the strings
        block = (
            strings.slice(start, len(rows)) if all_iso else pc.take(strings, _arrow_indices(rows))
        )
        try:
            ms = pc.cast(block, pa.timestamp("ms", tz="UTC"))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue  # this block goes row by row
        out[rows] = _fixed_to_numpy(pc.cast(ms, pa.int64()), np.int64)
        slow[rows] = False
    slow_rows = np.flatnonzero(slow)
    if not len(slow_rows):
        return out, bad
    values = pc.take(strings, _arrow_indices(slow_rows)).to_pylist()
    for k, s in zip(slow_rows.tolist(), values, strict=True):
        parsed: int | None = None
        if s is not None:
            parsed = int(s) if s.strip().lstrip("-").isdigit() else parse_ts(s)
        if parsed is None or not (-(2**62) < parsed < 2**62):
            bad[k] = True
        else:
            out[k] = parsed
    return out, bad


def _read_arrow_table(path: Path) -> tuple[Any, list[Rejection]]:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    suffixes = "".join(path.suffixes).lower()
    bad_rows: list[Rejection] = []
    if suffixes.endswith(".parquet") or suffixes.endswith(".pq"):
        import pyarrow.parquet as pq

        try:
            # ParquetFile, not pq.read_table: the dataset layer behind read_table imports
            # pandas (see _fixed_to_numpy); one file reads the same either way
            return pq.ParquetFile(path).read(), bad_rows
        except (pa.ArrowInvalid, OSError) as exc:
            raise UnusableInputError(f"cannot read Parquet {path}: {exc}") from exc

    def on_invalid(row: Any) -> str:
        bad_rows.append(Rejection("unparsable", "wrong number of CSV columns", str(row.text)[:500]))
        return "skip"

    try:
        table = pacsv.read_csv(
            path,
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(
                column_types={"meter_id": pa.string(), "gateway_id": pa.string()},
                # only an empty cell is missing; "nan"/"inf" parse as numbers and are then
                # rejected as non_finite
                null_values=[""],
                strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
        raise UnusableInputError(f"cannot read CSV {path}: {str(exc).splitlines()[0]}") from exc
    return table, bad_rows


def read_table(path: str | Path) -> tuple[ReadingBatch, list[Rejection]]:
    """Read a CSV or Parquet file of readings (columns: contract section 1).

    Raises :class:`UnusableInputError` for a missing file or missing columns; bad rows
    become rejections.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    path = Path(path)
    if not path.is_file():
        raise UnusableInputError(f"no such file: {path}")
    table, rejections = _read_arrow_table(path)
    missing = [c for c in FILE_COLUMNS if c not in table.column_names]
    if missing:
        raise UnusableInputError(f"{path}: missing column(s) {', '.join(missing)}")
    n = table.num_rows
    bad = np.zeros(n, dtype=bool)
    reasons: list[tuple[npt.NDArray[np.bool_], str, str]] = []

    mid_col = table.column("meter_id")
    if not pa.types.is_string(mid_col.type):
        mid_col = pc.cast(mid_col, pa.string())
    encoded = mid_col.combine_chunks().dictionary_encode()
    codes = _fixed_to_numpy(encoded.indices, np.int32)
    codes[_is_null(encoded.indices)] = -1
    vocab: list[str] = encoded.dictionary.to_pylist()
    null_id = codes < 0
    if null_id.any():
        vocab = [*vocab, ""]
        codes = np.where(null_id, len(vocab) - 1, codes).astype(np.int32)
    vocab_arr = np.array(vocab, dtype=object)
    meter_id = vocab_arr[codes] if n else np.empty(0, dtype=object)

    ts_ms, bad_ts = _column_to_ts_ms(table.column("ts"))
    reasons.append((bad_ts, "bad_timestamp", "ts must be epoch ms or ISO-8601 with offset"))
    nums: dict[str, FloatArray] = {}
    for col_name, fld in (("power_w", "p"), ("voltage_v", "v"), ("current_a", "i"), ("pf", "pf")):
        column = table.column(col_name)
        values, bad_num = _column_to_float(column)
        missing = _is_null(column)
        nums[fld] = values
        reasons.append((missing, "missing_field", f"{col_name} is empty"))
        reasons.append((bad_num, "bad_type", f"{col_name} must be a number"))
    gateway = None
    if "gateway_id" in table.column_names:
        # dictionary-encode: a few thousand gateways, not a million Python strings
        gw = pc.cast(table.column("gateway_id"), pa.string()).combine_chunks().dictionary_encode()
        gw_codes = _fixed_to_numpy(gw.indices, np.int32).astype(np.int64)
        gw_codes[_is_null(gw.indices)] = -1
        gw_vocab = np.array([*gw.dictionary.to_pylist(), None], dtype=object)
        gateway = gw_vocab[np.where(gw_codes < 0, len(gw_vocab) - 1, gw_codes)]
    e_wh = None
    if "energy_wh" in table.column_names:
        e_wh, _ = _column_to_float(table.column("energy_wh"))

    batch = ReadingBatch(
        meter_id=meter_id,
        ts_ms=ts_ms,
        p=nums["p"],
        v=nums["v"],
        i=nums["i"],
        pf=nums["pf"],
        gateway_id=gateway,
        e_wh=e_wh,
        meter_codes=codes,
        meter_vocab=vocab,
    )
    structural: list[tuple[int, str, str]] = []
    for mask, reason, detail in reasons:
        hit = mask & ~bad
        for k in np.flatnonzero(hit):
            structural.append((int(k), reason, detail))
        bad |= hit
    rejections.extend(Rejection(r, d, batch.row(k)) for k, r, d in structural)
    n_fine = n - int(bad.sum())
    newest = int(batch.ts_ms[~bad].max()) if n_fine else None
    # "ahead of the newest accepted reading": in a file, the newest is the file's own
    # maximum, so only the lower bound can bite here; the engine re-checks against its clock.
    # The checks run on the whole table with the structurally bad rows excluded, so the
    # table is copied once (one take of the valid rows) rather than twice.
    ok, problems = _validate(batch, newest, check_ids=True, already_bad=bad)
    rejections.extend(Rejection(r, d, batch.row(k)) for k, r, d in problems)
    if not ok.all():
        batch = batch.take(ok)
    return batch, rejections
