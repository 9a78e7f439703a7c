"""Fleet gauges of the engine (meters reporting, gateways seen and silent), on literal
readings with literal timestamps, in event time."""

from __future__ import annotations

import orjson

from stream.codecs import decode_message
from stream.engine import Engine
from stream.settings import Settings

T0_MS = 1_767_571_200_000  # 2026-01-05T00:00:00Z
MINUTE_MS = 60_000


def _feed(engine: Engine, gateway: str, meters: list[str], minute: int) -> None:
    readings = [
        {
            "meter_id": m,
            "ts": T0_MS + minute * MINUTE_MS,
            "p": 460.0,
            "v": 230.0,
            "i": 2.0,
            "pf": 1.0,
        }
        for m in meters
    ]
    batch, rejected = decode_message(orjson.dumps({"gateway_id": gateway, "readings": readings}))
    assert rejected == []
    engine.process(batch)


def test_empty_engine_reports_nothing() -> None:
    engine = Engine.from_settings(Settings())
    assert (engine.meters_reporting(), engine.gateways_seen(), engine.gateways_silent()) == (
        0,
        0,
        0,
    )


def test_a_gateway_that_stops_is_silent_and_its_meters_stop_reporting() -> None:
    engine = Engine.from_settings(Settings())
    for minute in range(2):
        _feed(engine, "GW-B", ["B-1", "B-2"], minute)
    for minute in range(60):
        _feed(engine, "GW-A", ["A-1", "A-2", "A-3"], minute)
    # newest reading at minute 59: GW-B's last one (minute 1) is 58 min old, beyond the
    # 30-minute floor; its two meters have not reported within the 10-minute window
    assert engine.meters_tracked == 5
    assert engine.meters_reporting() == 3
    assert engine.gateways_seen() == 2
    assert engine.gateways_silent() == 1


def test_a_gateway_within_the_silence_limit_is_not_silent() -> None:
    engine = Engine.from_settings(Settings())
    _feed(engine, "GW-B", ["B-1"], 0)
    for minute in range(20):
        _feed(engine, "GW-A", ["A-1"], minute)
    assert engine.gateways_silent() == 0
    assert engine.meters_reporting() == 1
