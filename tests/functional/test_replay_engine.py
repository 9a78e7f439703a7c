"""``meterwatch replay`` end to end on a small CSV (in-process, CliRunner)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
from typer.testing import CliRunner

from stream.cli import app
from stream.codecs import concat_batches
from stream.datasets import write_readings_csv

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "stream" / "schemas" / "event.v1.json").read_text()
)
T0 = 1_767_571_200_000
DAY = 86_400_000


def _fleet_csv(path: Path) -> None:
    from test_engine_functional import household  # same folder: the literal fleet

    meters = [household(f"R{k}", 3, seed=20 + k) for k in range(3)]
    thief = meters[0]
    on = thief.ts >= T0 + 2 * DAY + 18 * 3_600_000
    thief.p[on] = 0.0
    thief.i[on] = 0.0
    batch = concat_batches([m.batch() for m in meters])
    rng = np.random.default_rng(1)
    write_readings_csv(batch.take(rng.permutation(len(batch))), path)  # unsorted rows
    with path.open("a") as fh:
        fh.write("R1,1767571200000,abc,230,1,0.9\n")
        fh.write("R1,1767571260000,1,230,1,1.7\n")


def test_replay_writes_events_rejections_and_summary(tmp_path: Path) -> None:
    src = tmp_path / "fleet.csv"
    _fleet_csv(src)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["replay", str(src), "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    for ev in events:
        jsonschema.validate(ev, SCHEMA)
        assert ev["status"] == "closed"
    thefts = [e for e in events if e["theft_likely"]]
    assert thefts and {e["meter_id"] for e in thefts} == {"R0"}
    assert any(c["name"] == "bypass_zero" for e in thefts for c in e["cues"])
    rejected = [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]
    assert sorted(r["reason"] for r in rejected) == ["bad_type", "pf_out_of_range"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rejected"] == 2 and summary["meters"] == 3
    assert summary["readings_accepted"] == summary["rows_in"] - 2
    assert 0 < summary["bytes_per_meter"] <= 4096
    assert summary["readings_per_second"] > 0
    stages = summary["seconds_by_stage"]
    assert set(stages) == {"admit", "pane_rounds", "models", "events"}
    assert all(v >= 0 for v in stages.values()) and stages["pane_rounds"] > 0, stages
    assert sum(stages.values()) <= summary["seconds_engine"] + 0.005  # rounding of 4 values


def test_replay_exits_non_zero_with_one_line_for_unusable_input(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["replay", str(tmp_path / "nope.csv"), "--out", str(tmp_path)])
    assert res.exit_code == 2
    assert res.output.strip().count("\n") == 0 and "no such file" in res.output
    bad = tmp_path / "cols.csv"
    bad.write_text("meter_id,ts,power_w\nA,1767571200000,1\n")
    res = runner.invoke(app, ["replay", str(bad), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "missing column" in res.output


def test_replay_without_flush_stops_where_a_stream_would_stand(tmp_path: Path) -> None:
    """--no-flush: no end of input, so the theft event stays open and the readings held
    back for the allowed lateness stay pending (a worker's state after the same input)."""
    src = tmp_path / "fleet.csv"
    _fleet_csv(src)
    runs = {}
    for name, flags in (("flushed", []), ("as_stream", ["--no-flush"])):
        out = tmp_path / name
        result = CliRunner().invoke(
            app, ["replay", str(src), "--out", str(out), "--no-progress", *flags]
        )
        assert result.exit_code == 0, result.output
        events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
        runs[name] = (events, json.loads((out / "summary.json").read_text()))
    (flushed, flushed_summary), (as_stream, stream_summary) = runs["flushed"], runs["as_stream"]
    open_thefts = [e for e in as_stream if e["theft_likely"] and e["status"] == "open"]
    assert [e["meter_id"] for e in open_thefts] == ["R0"]
    assert all(e["status"] == "closed" for e in flushed)
    closed = {e["event_id"]: e for e in flushed}
    assert open_thefts[0]["event_id"] in closed  # the same event, closed by the end of input
    assert open_thefts[0]["start"] == closed[open_thefts[0]["event_id"]]["start"]
    assert stream_summary["readings_accepted"] < flushed_summary["readings_accepted"]
    assert stream_summary["rows_in"] == flushed_summary["rows_in"]
