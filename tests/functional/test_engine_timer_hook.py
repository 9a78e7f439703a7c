"""R16 on a simulated fleet: a pump on a nightly timer, hooked before the meter, is found
from its repeated step pairs against the meter's transformer peers, and no clean meter
is accused, not even one whose own metered heater runs on a timer; without gateway ids
there are no peers and no R16. The simulator's feeder puts two transformers on each
gateway, with their own evening and night loads."""

from __future__ import annotations

import dataclasses
from typing import Any

import engine_runs
import numpy as np
import pytest
from engine_runs import DAY, HOUR, cue_alerts, iso_ms, pump_nights

from stream.codecs import ReadingBatch


@pytest.fixture(scope="module")
def pump_fleet(tmp_path_factory: pytest.TempPathFactory) -> tuple[ReadingBatch, dict[str, Any]]:
    batch, labels = engine_runs.pump_fleet(tmp_path_factory.mktemp("timer"))
    return batch.take(np.argsort(batch.ts_ms, kind="stable")), labels


def r16_alerts(batch: ReadingBatch, step: int = 20_000) -> list[dict[str, Any]]:
    return cue_alerts(batch, "R16", step)


def with_metered_timer(batch: ReadingBatch, meter: str) -> ReadingBatch:
    """``meter`` also runs its own 3 kW heater from 23:00 to 05:00 every night, metered:
    its current and power rise 13 A and 3 kW, and its voltage drops 13 A x 0.12 ohm."""
    mine = batch.meter_id == meter
    clock = batch.ts_ms % DAY
    on = mine & ((clock >= 23 * HOUR) | (clock < 5 * HOUR))
    return dataclasses.replace(
        batch,
        i=np.where(on, batch.i + 13.0, batch.i),
        p=np.where(on, batch.p + 3000.0, batch.p),
        v=np.where(on, batch.v - 13.0 * 0.12, batch.v),
        pf=np.where(
            on, np.clip((batch.p + 3000.0) / (batch.v * (batch.i + 13.0)), -1, 1), batch.pf
        ),
    )


@pytest.mark.slow
def test_timers_are_found_against_their_transformer_and_no_one_else(
    pump_fleet: tuple[ReadingBatch, dict[str, Any]],
) -> None:
    batch, labels = pump_fleet
    nights = pump_nights(labels)
    assert len(nights) >= 4
    clean = next(m["meter_id"] for m in labels["meters"] if not m["theft"] and not m["behaviours"])
    alerts = r16_alerts(with_metered_timer(batch, clean))
    assert alerts, "no timer found"
    for alert in alerts:
        assert alert["meter_id"] in nights, f"R16 accused a meter without a pump: {alert}"
        # the event starts at the switch-on of the pair it judged, within a pump night
        start = iso_ms(alert["start"])
        assert any(a - HOUR <= start <= b for a, b in nights[alert["meter_id"]]), alert
        evidence = next(c["evidence"] for c in alert["cues"] if c["id"] == "R16")
        assert evidence["repeats"] >= 1 and evidence["step_v"] >= 0.5, evidence
        assert 2 * 3600 <= evidence["duration_s"] <= 10 * 3600, evidence
        assert alert["est_unbilled_kwh"] > 0
    # two of the six pumps run five nights in the data, three run one (and a piece of a
    # second): one night is no repeat. The sixth runs four nights at a shop whose
    # refrigeration steps its current 2-6 A every quarter hour all night, beyond
    # max_quiet_di_a, so R16 does not judge its steps (R15 may find it)
    found = {a["meter_id"] for a in alerts}
    assert len(found) >= 2, (sorted(found), sorted(nights))
    # the pair repeats a night later: found the morning after the second night
    first = {}
    for alert in alerts:
        first.setdefault(alert["meter_id"], iso_ms(alert["detected_at"]))
    assert any(first[m] - min(a for a, _ in nights[m]) < 2 * DAY for m in first), first


@pytest.mark.slow
def test_without_gateway_ids_there_are_no_peers_and_no_r16(
    pump_fleet: tuple[ReadingBatch, dict[str, Any]],
) -> None:
    batch, _ = pump_fleet
    assert r16_alerts(dataclasses.replace(batch, gateway_id=None)) == []


@pytest.mark.slow
def test_r16_finds_the_same_pumps_in_any_batching(
    pump_fleet: tuple[ReadingBatch, dict[str, Any]],
) -> None:
    batch, _ = pump_fleet
    whole = r16_alerts(batch, len(batch))
    assert whole
    small = r16_alerts(batch, 997)
    assert [(a["meter_id"], a["start"]) for a in small] == [
        (a["meter_id"], a["start"]) for a in whole
    ]


def with_gap_after_switch_off(
    batch: ReadingBatch, meter: str, nights: list[tuple[int, int]]
) -> ReadingBatch:
    """``meter`` falls silent for two hours, 45 minutes after each switch-off of its pump:
    the hour before the gap holds the switch-off step. Other meters keep their readings."""
    gap = np.zeros(len(batch), dtype=bool)
    for _, off in nights:
        gap |= (batch.ts_ms >= off + 45 * 60_000) & (batch.ts_ms < off + 165 * 60_000)
    return batch.take(np.flatnonzero(~(gap & (batch.meter_id == meter))))


@pytest.mark.slow
def test_a_comms_gap_after_the_switch_off_keeps_the_pair(
    pump_fleet: tuple[ReadingBatch, dict[str, Any]],
) -> None:
    # a meter that falls silent keeps the steps of the hour its ring still holds: once, a
    # gap of an hour or more dropped them, and with them the switch-off before it
    batch, labels = pump_fleet
    nights = pump_nights(labels)
    found = {a["meter_id"] for a in r16_alerts(batch)}
    assert found
    gapped = batch
    for meter in found:
        gapped = with_gap_after_switch_off(gapped, meter, nights[meter])
    assert len(batch) - len(gapped) >= 20 * len(found)
    assert {a["meter_id"] for a in r16_alerts(gapped)} == found
