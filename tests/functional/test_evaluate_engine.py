"""``meterwatch evaluate`` on hand-made labels and events with known answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rules.events import iso_utc
from stream.cli import app
from stream.evaluation import evaluate

H = 3_600_000
T0 = 1_767_571_200_000


def _labels() -> dict:
    def meter(mid: str, theft: list | None = None) -> dict:
        return {
            "meter_id": mid,
            "gateway_id": "GW-1",
            "transformer_id": "TX-1",
            "household": "house",
            "theft": theft or [],
            "behaviours": [],
            "faults": [],
        }

    return {
        "schema": "meterwatch.labels.v1",
        "seed": 1,
        "start_ms": T0,
        "end_ms": T0 + 10 * 24 * H,
        "cadence_s": 300,
        "nominal_voltage_v": 230.0,
        "meters": [
            meter(
                "A",
                [
                    {
                        "type": "full_bypass",
                        "start_ms": T0 + 50 * H,
                        "end_ms": T0 + 54 * H,
                        "params": {},
                    }
                ],
            ),
            meter(
                "B",
                [
                    {
                        "type": "gradual_bypass",
                        "start_ms": T0 + 60 * H,
                        "end_ms": T0 + 200 * H,
                        "params": {},
                    }
                ],
            ),
            meter("C"),
            meter("D"),
        ],
    }


def _event(mid: str, start: int, end: int, detected: int, theft: bool, peak: float) -> dict:
    return {
        "event_id": f"ev-{mid}{start}",
        "version": 3,
        "meter_id": mid,
        "gateway_id": None,
        "start": iso_utc(start),
        "end": iso_utc(end),
        "detected_at": iso_utc(detected),
        "status": "closed",
        "peak_score": peak,
        "mean_score": peak,
        "severity": "low",
        "theft_likely": theft,
        "cues": [],
        "top_features": [],
        "est_unbilled_kwh": 0.0,
        "model_version": "t",
    }


def _events() -> list[dict]:
    return [
        _event("A", T0 + 50 * H, T0 + 53 * H, T0 + 50 * H + 20 * 60_000, True, 95.0),
        _event("A", T0 + 120 * H, T0 + 121 * H, T0 + 120 * H, True, 90.0),  # outside theft
        _event("C", T0 + 30 * H, T0 + 31 * H, T0 + 30 * H, True, 80.0),  # false alarm
        _event("D", T0 + 30 * H, T0 + 31 * H, T0 + 30 * H, False, 99.0),  # anomaly only
    ]


def test_evaluate_computes_the_documented_figures() -> None:
    res = evaluate(_labels(), _events(), ks=(1, 2))
    assert res.alerts == 3 and res.true_alerts == 1
    assert res.precision == pytest.approx(1 / 3)
    assert res.caught == 1 and res.thieves == 2
    assert res.per_type["full_bypass"] == {"thieves": 1, "caught": 1, "median_delay_min": 20.0}
    assert res.per_type["gradual_bypass"]["caught"] == 0
    assert res.false_alarms_clean == 1
    assert res.false_alarms_per_100_meter_days == pytest.approx(100 / 20)
    # risk: A 195, C 180, D 99, B 0 -> thieves A (top) and B (bottom)
    assert res.roc_auc == pytest.approx(0.5)
    assert res.precision_at_k == {1: 1.0, 2: 0.5}
    assert res.median_delay_abrupt_min == 20.0


def test_evaluate_cli_prints_and_writes_json(tmp_path: Path) -> None:
    labels = tmp_path / "l.json"
    labels.write_text(json.dumps(_labels()))
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(json.dumps(e) for e in _events()) + "\n")
    out = tmp_path / "eval.json"
    res = CliRunner().invoke(
        app, ["evaluate", "--labels", str(labels), "--events", str(events), "--json", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert "full_bypass" in res.output and "precision" in res.output
    assert json.loads(out.read_text())["thieves_caught"] == 1
    assert "1d+ 1/2, 2d+ 1/2, 3d+ 1/2" in res.output
    assert "missed (meter, theft type, hours of theft the data holds): B gradual_bypass 180 h" in (
        res.output
    )
    res = CliRunner().invoke(
        app, ["evaluate", "--labels", str(tmp_path / "x.json"), "--events", str(events)]
    )
    assert res.exit_code == 2 and "no such file" in res.output


def test_the_delay_of_a_recurring_theft_runs_from_its_first_interval() -> None:
    labels = _labels()
    evenings = [
        {"type": "full_bypass", "start_ms": T0 + d * 24 * H + 18 * H,
         "end_ms": T0 + d * 24 * H + 22 * H, "params": {}}
        for d in (1, 2, 3)
    ]  # fmt: skip
    labels["meters"][0]["theft"] = evenings
    # missed on the first two evenings, flagged 5 minutes into the third
    third = T0 + 3 * 24 * H + 18 * H
    events = [_event("A", third, third + H, third + 5 * 60_000, True, 95.0)]
    res = evaluate(labels, events, ks=(1,))
    assert res.caught == 1 and res.true_alerts == 1
    assert res.per_type["full_bypass"]["median_delay_min"] == 2 * 24 * 60 + 5
    # the same theft in one interval label form gives the same delay
    labels["meters"][0]["theft"] = [
        {"type": "full_bypass", "intervals": [[e["start_ms"], e["end_ms"]] for e in evenings],
         "params": {}}
    ]  # fmt: skip
    assert evaluate(labels, events, ks=(1,)).median_delay_abrupt_min == 2 * 24 * 60 + 5


def test_caught_is_also_given_by_the_theft_time_the_data_holds() -> None:
    labels = _labels()  # data ends at hour 240; A began at 50 (caught), B at 60 (missed)
    late = {"type": "full_bypass", "start_ms": T0 + 230 * H, "end_ms": T0 + 240 * H}
    labels["meters"][2]["theft"] = [{**late, "params": {}}]  # C: 10 h before the end
    res = evaluate(labels, _events(), ks=(1,))
    # the C alert at hour 30 is now outside C's theft: not a catch
    assert res.caught == 1 and res.thieves == 3
    assert res.caught_by_days_observed == {1: (1, 2), 2: (1, 2), 3: (1, 2)}
    labels["meters"][1]["theft"][0]["start_ms"] = T0 + 190 * H  # B: 50 h before the end
    res = evaluate(labels, _events(), ks=(1,))
    assert res.caught_by_days_observed == {1: (1, 2), 2: (1, 2), 3: (1, 1)}
    assert res.to_json()["caught_by_days_observed"]["3"] == {"caught": 1, "thieves": 1}


def test_the_missed_thieves_are_listed_with_the_theft_time_the_data_holds() -> None:
    labels = _labels()  # data ends at hour 240; A began at 50 (caught), B at 60 (missed)
    res = evaluate(labels, _events(), ks=(1,))
    assert res.missed == [{"meter_id": "B", "type": "gradual_bypass", "theft_hours_held": 180.0}]
    assert res.to_json()["missed_thieves"] == res.missed
    # without events every thief is missed, in the labels' order
    res = evaluate(labels, [], ks=(1,))
    assert [m["meter_id"] for m in res.missed] == ["A", "B"]
