"""Converters from public meter datasets to the meterwatch reading file format.

AMPds2 (Makonin et al., 2016) minutely sub-meter files carry ``unix_ts, V, I, f, DPF, APF,
P, Pt, Q, Qt, S, St``. The mapping is ``P -> power_w``, ``V -> voltage_v``,
``I -> current_a`` and **APF -> pf**: APF (apparent power factor) is P / S, the true
power factor, so P = V x I x APF holds up to the meter's resolution (S = V x I). DPF is
the displacement power factor (cosine of the fundamental's phase angle only); with the
harmonic currents of electronic loads P != V x I x DPF, which would make a clean meter
look like a register tamper. On the AMPds2 B1E file the median |P - V*I*APF| is within the
0.1 A current resolution (V x 0.1 A ~ 12 W at 120 V), while DPF is 1.0 at zero current.
"""

from __future__ import annotations

import lzma
from pathlib import Path

import numpy as np

from stream.codecs import ReadingBatch, UnusableInputError

AMPDS2_COLUMNS = ("unix_ts", "V", "I", "APF", "P")


def read_ampds2(path: str | Path, meter_id: str = "AMPDS2-B1E") -> ReadingBatch:
    """Read an AMPds2 minutely CSV (optionally .xz) as a ReadingBatch of one meter."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    path = Path(path)
    if not path.is_file():
        raise UnusableInputError(f"no such file: {path}")
    source = lzma.open(path, "rb") if path.suffix == ".xz" else path.open("rb")
    with source as fh:
        try:
            table = pacsv.read_csv(fh)
        except pa.ArrowInvalid as exc:
            raise UnusableInputError(f"cannot read {path}: {exc}") from exc
    missing = [c for c in AMPDS2_COLUMNS if c not in table.column_names]
    if missing:
        raise UnusableInputError(f"{path}: missing AMPds2 column(s) {', '.join(missing)}")

    def col(name: str) -> np.ndarray:
        return table.column(name).to_numpy().astype(np.float64)

    n = table.num_rows
    ts_ms = (table.column("unix_ts").to_numpy().astype(np.int64)) * 1000
    return ReadingBatch.from_columns(
        meter_id=np.full(n, meter_id, dtype=object),
        ts_ms=ts_ms,
        p=col("P"),
        v=col("V"),
        i=col("I"),
        pf=np.clip(col("APF"), -1.0, 1.0),
    )


def write_readings_csv(batch: ReadingBatch, out: str | Path) -> None:
    """Write a batch in the replay file format (epoch-ms ``ts``)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    table = pa.table(
        {
            "meter_id": pa.array(batch.meter_id.astype(str)),
            "ts": pa.array(batch.ts_ms),
            "power_w": pa.array(batch.p),
            "voltage_v": pa.array(batch.v),
            "current_a": pa.array(batch.i),
            "pf": pa.array(batch.pf),
        }
    )
    pacsv.write_csv(table, str(out))
