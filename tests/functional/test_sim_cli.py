"""``meterwatch simulate`` end to end: files and labels on disk, read back by the engine's
own readers (stream.codecs), no servers."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from simulator.cli import parse_cadence
from simulator.fleet import FleetConfig, simulate
from simulator.publish import encode_table
from stream.cli import app
from stream.codecs import decode_message, read_table

runner = CliRunner()

# which engine reason each malformed kind must produce
EXPECTED_REASON = {
    "unparsable": {"unparsable", "bad_timestamp"},
    "nan": {"non_finite", "unparsable"},
    "pf_out_of_range": {"pf_out_of_range"},
    "voltage_non_positive": {"voltage_non_positive"},
    "missing_field": {"missing_field", "bad_type"},
}


@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_simulate_writes_readings_and_labels_the_engine_reads(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"fleet.{suffix}"
    result = runner.invoke(
        app,
        [
            "simulate",
            "--meters",
            "25",
            "--days",
            "3",
            "--cadence",
            "5m",
            "--seed",
            "4",
            "--theft-share",
            "0.3",
            "--malformed-share",
            "0.01",
            "--out",
            str(out),
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    labels = json.loads((tmp_path / "fleet.labels.json").read_text())
    assert labels["schema"] == "meterwatch.labels.v1" and labels["cadence_s"] == 300
    assert len(labels["meters"]) == 25 and any(m["theft"] for m in labels["meters"])
    batch, rejections = read_table(out)
    assert len(batch) + len(rejections) == labels["readings"]
    # each malformed record is rejected by the engine, with a reason its kind explains
    kinds = Counter(
        f["params"]["kind"]
        for m in labels["meters"]
        for f in m["faults"]
        if f["type"] == "malformed"
    )
    assert sum(kinds.values()) > 0
    reasons = Counter(r.reason for r in rejections)
    allowed = set().union(*(EXPECTED_REASON[k] for k in kinds))
    assert set(reasons) <= allowed, reasons
    # duplicates re-send malformed rows too, so rejections >= labelled malformed records
    assert sum(kinds.values()) <= len(rejections) <= 1.5 * sum(kinds.values()) + 2
    if suffix == "parquet":
        schema = pq.read_schema(out)
        assert [f.name for f in schema] == [
            "meter_id",
            "ts",
            "power_w",
            "voltage_v",
            "current_a",
            "pf",
            "gateway_id",
        ]
        assert str(schema.field("ts").type) == "string"


def test_kafka_messages_decode_with_the_engine_codec() -> None:
    table, labels = simulate(
        FleetConfig(meters=10, days=0.05, cadence_s=5, seed=2, malformed_share=0.02)
    )
    for form in ("single", "batch"):
        accepted = 0
        rejected: Counter[str] = Counter()
        for message in encode_table(table, form):
            batch, rejections = decode_message(message.value)
            accepted += len(batch)
            rejected.update(r.reason for r in rejections)
        assert accepted + sum(rejected.values()) == table.num_rows
        assert sum(rejected.values()) > 0 and "unknown_field" not in rejected


def test_same_arguments_give_identical_files(tmp_path: Path) -> None:
    args = [
        "simulate",
        "--meters",
        "12",
        "--days",
        "2.5",
        "--cadence",
        "1m",
        "--seed",
        "9",
        "--no-progress",
    ]
    for name in ("a", "b"):
        result = runner.invoke(app, [*args, "--out", str(tmp_path / name / "f.parquet")])
        assert result.exit_code == 0, result.output
    assert (tmp_path / "a/f.parquet").read_bytes() == (tmp_path / "b/f.parquet").read_bytes()
    assert (tmp_path / "a/f.labels.json").read_bytes() == (
        tmp_path / "b/f.labels.json"
    ).read_bytes()


@pytest.mark.parametrize(
    "args",
    [
        ["--meters", "5"],  # neither --out nor --kafka
        ["--meters", "5", "--out", "x.parquet", "--kafka"],
        ["--meters", "5", "--kafka"],  # --kafka without --labels-out
        ["--meters", "5", "--cadence", "16min", "--out", "x.parquet"],
        ["--meters", "5", "--cadence", "fast", "--out", "x.parquet"],
        ["--meters", "5", "--start", "2026-01-05T00:00:00", "--out", "x.parquet"],
        ["--meters", "5", "--out", "x.json"],
        ["--meters", "0", "--out", "x.parquet"],
    ],
)
def test_bad_arguments_fail_cleanly(tmp_path: Path, args: list[str]) -> None:
    fixed = [str(tmp_path / a) if a.startswith("x.") else a for a in args]
    result = runner.invoke(app, ["simulate", *fixed, "--no-progress"])
    assert result.exit_code != 0
    assert not list(tmp_path.glob("x.*"))


def test_parse_cadence() -> None:
    assert parse_cadence("5s") == 5 and parse_cadence("300") == 300
    assert parse_cadence("5m") == 300 and parse_cadence("15min") == 900
    assert np.all([parse_cadence(x) == 1 for x in ("1", "1s", "1 sec")])
