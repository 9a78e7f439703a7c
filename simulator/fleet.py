"""Library API of the simulator.

    from simulator.fleet import FleetConfig, simulate, write_files
    table, labels = simulate(FleetConfig(meters=50, days=3, cadence_s=300, seed=7))
    write_files(FleetConfig(...), Path("fleet.parquet"))   # + fleet.labels.json

Readings come in the replay file format (contract section 1): columns ``meter_id, ts,
power_w, voltage_v, current_a, pf, gateway_id``; ``ts`` is an ISO-8601 string with
offset. Numeric columns are float64; a missing field is a null, a NaN reading is NaN.
An *unparsable* malformed record has garbage text in ``ts`` (in both CSV and Parquet,
so the numeric columns keep their types). Labels follow ``meterwatch.labels.v1``
(contract section 2); their intervals are half-open ``[start_ms, end_ms)`` in true
event time (before any gateway clock skew). A malformed record is labelled as the
interval ``[t, t + 1)`` of its true time, with ``kind``, ``field`` and reported ``ts_ms``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from simulator.config import HOUSEHOLDS, FleetConfig
from simulator.generate import GARBAGE_TS, NUMERIC_FIELDS, Chunk, FleetGenerator, GenerationLog
from simulator.plan import FleetPlan, build_plan, gateway_members

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "FleetConfig",
    "FleetPlan",
    "build_plan",
    "build_labels",
    "iter_tables",
    "labels_path_for",
    "simulate",
    "write_files",
]

LABELS_SCHEMA = "meterwatch.labels.v1"


def _iso_dictionary(ts_ms: np.ndarray, garbage_ts: np.ndarray) -> Any:
    """``ts`` as a dictionary-encoded array of ISO-8601 strings with offset.

    Times repeat a lot (one per step per meter), so each distinct time is formatted once.
    Unparsable records point at garbage strings appended to the dictionary.
    """
    import pyarrow as pa

    unique, inverse = np.unique(ts_ms, return_inverse=True)
    whole = unique // 1000 * 1000
    text = np.datetime_as_string(whole.astype("datetime64[ms]"), unit="s").astype(object)
    frac = unique - whole
    if np.any(frac):  # sub-second times keep their milliseconds
        text = np.array(
            [t if f == 0 else f"{t}.{f:03d}" for t, f in zip(text, frac, strict=True)], dtype=object
        )
    text = text + "+00:00"
    indices = inverse.astype(np.int32)
    bad = garbage_ts >= 0
    if bad.any():
        indices = np.where(bad, len(text) + garbage_ts.astype(np.int32), indices)
        text = np.concatenate([text, np.asarray(GARBAGE_TS, dtype=object)])
    return pa.DictionaryArray.from_arrays(pa.array(indices), pa.array(text, pa.string()))


def chunk_to_table(plan: FleetPlan, chunk: Chunk) -> pa.Table:
    """The file form of a chunk of readings. String columns are dictionary-encoded (cheap
    to build and to write); ``simulate`` returns them decoded."""
    import pyarrow as pa

    meters = pa.array(plan.meter_ids, pa.string())
    gateways = pa.array(plan.gateway_ids, pa.string())
    columns: dict[str, Any] = {
        "meter_id": pa.DictionaryArray.from_arrays(pa.array(chunk.meter.astype(np.int32)), meters),
        "ts": _iso_dictionary(chunk.ts_ms, chunk.garbage_ts),
    }
    for k, (name, values) in enumerate(
        zip(NUMERIC_FIELDS, (chunk.p, chunk.v, chunk.i, chunk.pf), strict=True)
    ):
        null = chunk.missing == k
        columns[name] = pa.array(values, pa.float64(), mask=null if null.any() else None)
    gw = plan.meter_gw[chunk.meter].astype(np.int32)
    columns["gateway_id"] = pa.DictionaryArray.from_arrays(pa.array(gw), gateways)
    return pa.table(columns)


def decode_strings(table: pa.Table) -> pa.Table:
    """Dictionary-encoded string columns to plain strings."""
    import pyarrow as pa

    fields = [
        pa.field(f.name, pa.string()) if pa.types.is_dictionary(f.type) else f for f in table.schema
    ]
    return table.cast(pa.schema(fields))


def iter_tables(
    config: FleetConfig, plan: FleetPlan | None = None, log_out: list[GenerationLog] | None = None
) -> Iterator[pa.Table]:
    """Readings as a stream of pyarrow tables in arrival order (bounded memory)."""
    plan = plan if plan is not None else build_plan(config)
    gen = FleetGenerator(plan)
    if log_out is not None:
        log_out.append(gen.log)
    for chunk in gen.chunks():
        yield chunk_to_table(plan, chunk)


def build_labels(plan: FleetPlan, log: GenerationLog) -> dict[str, Any]:
    """Ground truth in ``meterwatch.labels.v1``."""
    cfg = plan.config
    per_meter: list[dict[str, Any]] = [
        {
            "meter_id": plan.meter_ids[k],
            "gateway_id": plan.gateway_ids[int(plan.meter_gw[k])],
            "transformer_id": plan.transformer_ids[int(plan.meter_tx[k])],
            "household": HOUSEHOLDS[int(plan.household[k])],
            "theft": [],
            "behaviours": [],
            "faults": [],
        }
        for k in range(plan.n_meters)
    ]
    for inc in plan.thefts:
        for n, (a, b) in enumerate(inc.intervals):
            unbilled = round(log.unbilled_wh.get((inc.meter, n), 0.0) / 1000.0, 3)
            per_meter[inc.meter]["theft"].append(
                {
                    "type": inc.type,
                    "start_ms": a,
                    "end_ms": b,
                    "params": {**inc.params, "unbilled_kwh": unbilled},
                }
            )
    for inc in plan.behaviours:
        for a, b in inc.intervals:
            per_meter[inc.meter]["behaviours"].append(
                {"type": inc.type, "start_ms": a, "end_ms": b, "params": inc.params}
            )
    faults: list[tuple[int, int, dict[str, Any]]] = []
    for k in range(len(plan.gaps)):
        scope = "gateway" if plan.gaps_scope_gateway[k] else "meter"
        faults.append(
            (
                int(plan.gaps.rows[k]),
                int(plan.gaps.start_ms[k]),
                {
                    "type": "comms_gap",
                    "start_ms": int(plan.gaps.start_ms[k]),
                    "end_ms": int(plan.gaps.end_ms[k]),
                    "params": {"scope": scope},
                },
            )
        )
    for iset, kind, key in (
        (plan.duplicates, "duplicates", "retry_delay_s"),
        (plan.late, "late", "delay_s"),
    ):
        for k in range(len(iset)):
            faults.append(
                (
                    int(iset.rows[k]),
                    int(iset.start_ms[k]),
                    {
                        "type": kind,
                        "start_ms": int(iset.start_ms[k]),
                        "end_ms": int(iset.end_ms[k]),
                        "params": {key: float(iset.value[k])},
                    },
                )
            )
    members = gateway_members(plan)
    for k in range(len(plan.skew)):
        gw = int(plan.skew.rows[k])
        for meter in members[gw]:
            faults.append(
                (
                    int(meter),
                    int(plan.skew.start_ms[k]),
                    {
                        "type": "clock_skew",
                        "start_ms": int(plan.skew.start_ms[k]),
                        "end_ms": int(plan.skew.end_ms[k]),
                        "params": {"offset_s": float(plan.skew.value[k])},
                    },
                )
            )
    for rec in log.malformed:
        faults.append(
            (
                rec.meter,
                rec.t_true_ms,
                {
                    "type": "malformed",
                    "start_ms": rec.t_true_ms,
                    "end_ms": rec.t_true_ms + 1,
                    "params": {"kind": rec.kind, "field": rec.field, "ts_ms": rec.ts_ms},
                },
            )
        )
    faults.sort(key=lambda f: (f[0], f[1], f[2]["type"]))
    for meter_index, _, entry in faults:
        per_meter[meter_index]["faults"].append(entry)
    return {
        "schema": LABELS_SCHEMA,
        "seed": cfg.seed,
        "start_ms": cfg.start_ms,
        "end_ms": cfg.end_ms,
        "cadence_s": cfg.cadence_s,
        "nominal_voltage_v": cfg.nominal_voltage_v,
        "readings": log.rows,
        "meters": per_meter,
    }


def simulate(config: FleetConfig) -> tuple[pa.Table, dict[str, Any]]:
    """The whole fleet in memory: (readings table in arrival order, labels)."""
    import pyarrow as pa

    plan = build_plan(config)
    logs: list[GenerationLog] = []
    tables = list(iter_tables(config, plan, logs))
    if not tables:
        tables = [chunk_to_table(plan, _empty_chunk())]
    table = pa.concat_tables([decode_strings(t) for t in tables])
    return table, build_labels(plan, logs[0])


def _empty_chunk() -> Chunk:
    z = np.zeros(0, dtype=np.int64)
    f = np.zeros(0)
    b = np.zeros(0, dtype=np.int8)
    return Chunk(z, z, f, f, f, f, b, b)


def labels_path_for(out: Path) -> Path:
    """``fleet.parquet`` -> ``fleet.labels.json`` (contract section 2)."""
    return out.with_name(out.name.split(".")[0] + ".labels.json")


def write_labels(labels: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(labels, separators=(",", ":")) + "\n", encoding="utf-8")


def write_files(
    config: FleetConfig,
    out: Path,
    labels_out: Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[int, Path]:
    """Write readings to ``out`` (``.parquet`` or ``.csv``, chosen by suffix) and the labels
    next to it. Returns (rows written, labels path). ``progress`` gets rows per chunk."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    suffix = out.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise ValueError(f"output must end in .parquet or .csv, not {out.name!r}")
    plan = build_plan(config)
    logs: list[GenerationLog] = []
    rows = 0
    writer: Any = None
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        for table in iter_tables(config, plan, logs):
            if writer is None:
                if suffix == ".parquet":
                    # store_schema=False: readers get plain strings, not the dictionary type
                    # (no column statistics: replay reads whole files; saves ~20 % of writing)
                    writer = pq.ParquetWriter(
                        out,
                        table.schema,
                        compression="zstd",
                        store_schema=False,
                        write_statistics=False,
                    )
                else:
                    writer = pacsv.CSVWriter(out, table.schema)
            writer.write_table(table)
            rows += table.num_rows
            if progress is not None:
                progress(table.num_rows)
    finally:
        if writer is not None:
            writer.close()
    labels_path = labels_out if labels_out is not None else labels_path_for(out)
    write_labels(build_labels(plan, logs[0]), labels_path)
    return rows, labels_path
