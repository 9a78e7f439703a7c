"""R15 on a simulated fleet: a night pump hooked before the meter is found against the
meter's gateway peers, and nothing else is; without gateway ids there are no peers and
R15 stays silent. The simulator's feeder puts two transformers on each gateway, with
their own evening and night loads, so the shared sags that R15 must not accuse are there.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import engine_runs
import numpy as np
import pytest
from engine_runs import cue_alerts, iso_ms, pump_nights

from stream.codecs import ReadingBatch


@pytest.fixture(scope="module")
def pump_fleet(tmp_path_factory: pytest.TempPathFactory) -> tuple[ReadingBatch, dict[str, Any]]:
    return engine_runs.pump_fleet(tmp_path_factory.mktemp("peers"))


def r15_alerts(batch: ReadingBatch, step: int = 20_000) -> list[dict[str, Any]]:
    return cue_alerts(batch, "R15", step)


@pytest.mark.slow
def test_pumps_are_found_against_their_peers_and_no_one_else(
    pump_fleet: tuple[ReadingBatch, dict[str, Any]],
) -> None:
    batch, labels = pump_fleet
    nights = pump_nights(labels)
    assert len(nights) >= 4
    alerts = r15_alerts(batch)
    assert alerts, "no pump found"
    for alert in alerts:
        assert alert["meter_id"] in nights, f"R15 accused a meter without a pump: {alert}"
        # the event reaches back to the night whose dip it judged
        start, end = iso_ms(alert["start"]), iso_ms(alert["end"])
        assert any(a - 3_600_000 <= end and start <= b for a, b in nights[alert["meter_id"]])
        evidence = next(c["evidence"] for c in alert["cues"] if c["id"] == "R15")
        # one of R15's four tiers: one night of 1.5 V, two of 1.2 V, four of 0.7 V, or one
        # of 0.7 V with an R16 step pair of 0.5 V in its stretch
        dip = evidence["dip_v"]
        assert (
            dip <= -1.5
            or (dip <= -1.2 and evidence["nights"] >= 2)
            or (dip <= -0.7 and evidence["shallow_nights"] >= 4)
            or (dip <= -0.7 and evidence.get("pair_step_v", 0.0) >= 0.5)
        ), evidence
        assert evidence["unmetered_a"] >= 4.0 and evidence["peers"] >= 8
        assert alert["est_unbilled_kwh"] > 0
    found = {a["meter_id"] for a in alerts}
    assert len(found) >= len(nights) // 2, (sorted(found), sorted(nights))
    # a strong pump is found the morning after its first night, not its second
    first_alert = {}
    for alert in alerts:
        first_alert.setdefault(alert["meter_id"], alert)
    assert any(
        iso_ms(a["detected_at"]) - min(start for start, _ in nights[m]) < 86_400_000
        for m, a in first_alert.items()
    ), [(m, a["detected_at"]) for m, a in first_alert.items()]


@pytest.mark.slow
def test_without_gateway_ids_there_are_no_peers_and_no_r15(
    pump_fleet: tuple[ReadingBatch, dict[str, Any]],
) -> None:
    batch, _ = pump_fleet
    anonymous = dataclasses.replace(batch, gateway_id=None)
    assert r15_alerts(anonymous) == []


@pytest.mark.slow
def test_r15_does_not_depend_on_batching(
    pump_fleet: tuple[ReadingBatch, dict[str, Any]],
) -> None:
    # a peer's day is read when the meter starts its next day: whatever the batching,
    # the peers hold the same hours by then (the gateway's meters report together)
    batch, _ = pump_fleet
    ordered = batch.take(np.argsort(batch.ts_ms, kind="stable"))
    whole, small = r15_alerts(ordered, len(ordered)), r15_alerts(ordered, 997)
    assert whole

    def without_pair(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for alert in alerts:
            cues = [{**c, "evidence": {k: v for k, v in c["evidence"].items()
                                       if k != "pair_step_v"}} for c in alert["cues"]]  # fmt: skip
            out.append({**alert, "cues": cues})
        return out

    assert without_pair(small) == without_pair(whole)
    # the pair tier's step reads R13's transformer reference, which a peer silent right
    # after a reading moves a little between batchings (see the engine's docstring)
    for a, b in zip(small, whole, strict=True):
        pa, pb = (
            next(c["evidence"].get("pair_step_v", 0.0) for c in x["cues"] if c["id"] == "R15")
            for x in (a, b)
        )
        assert pa == pytest.approx(pb, rel=0.01, abs=1e-3)
