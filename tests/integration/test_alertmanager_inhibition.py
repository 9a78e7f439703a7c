"""Routing and inhibition on the stack's real Alertmanager (deploy/alertmanager).

Every alert posted here carries a random ``test_run`` label and gateway names of its
own, and is resolved (``endsAt`` = now) when the test ends, so tests sharing the
stack are not disturbed. The fleet-wide outage alert holds back every theft alert
while it fires, so it is posted last and resolved at once.
"""

from __future__ import annotations

import secrets
import time
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from live_controlroom import ensure_current_configs, http_json

from stream.settings import Settings

pytestmark = pytest.mark.integration

THEFT = "ElectricityTheftLikely"
SETTLE_TIMEOUT_S = 20.0


class AlertPoster:
    def __init__(self, settings: Settings, run: str) -> None:
        self.settings = settings
        self.run = run
        self.posted: list[dict[str, Any]] = []

    def post(self, labels: dict[str, str], minutes: int = 5) -> dict[str, Any]:
        now = datetime.now(UTC)
        alert = {
            "labels": {**labels, "test_run": self.run},
            "annotations": {"summary": "control-room inhibition test"},
            "startsAt": now.isoformat(),
            "endsAt": (now + timedelta(minutes=minutes)).isoformat(),
        }
        http_json(f"{self.settings.alertmanager_url}/api/v2/alerts", method="POST", body=[alert])
        self.posted.append(alert)
        return alert

    def resolve(self, alerts: list[dict[str, Any]]) -> None:
        if not alerts:
            return
        now = datetime.now(UTC).isoformat()
        ended = [{**alert, "endsAt": now} for alert in alerts]
        http_json(f"{self.settings.alertmanager_url}/api/v2/alerts", method="POST", body=ended)

    def listed(self) -> dict[str, dict[str, Any]]:
        """Our alerts as Alertmanager lists them, keyed by their ``name`` label."""
        query = urllib.parse.urlencode({"filter": f'test_run="{self.run}"'})
        alerts = http_json(f"{self.settings.alertmanager_url}/api/v2/alerts?{query}")
        return {alert["labels"]["name"]: alert for alert in alerts}


@pytest.fixture
def poster(stack: Settings) -> Iterator[AlertPoster]:
    ensure_current_configs(stack)
    poster = AlertPoster(stack, secrets.token_hex(4))
    yield poster
    poster.resolve(poster.posted)


def _wait_for_states(poster: AlertPoster, expected: dict[str, bool]) -> dict[str, Any]:
    """Wait until each named alert is listed and is (True) or is not (False) inhibited."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        listed = poster.listed()
        states = {
            name: bool(listed[name]["status"]["inhibitedBy"]) for name in expected if name in listed
        }
        if states == expected:
            return listed
        if time.monotonic() > deadline:
            pytest.fail(f"inhibition states {states}, expected {expected}", pytrace=False)
        time.sleep(0.3)


def test_a_silent_gateway_holds_back_only_its_own_theft_alerts(poster: AlertPoster) -> None:
    quiet, busy = f"GW-{poster.run}-A", f"GW-{poster.run}-B"
    poster.post({"alertname": "GatewaySilent", "gateway": quiet, "name": "silent"})
    for name, gateway in (("theft-quiet", quiet), ("theft-busy", busy)):
        poster.post(
            {
                "alertname": THEFT,
                "name": name,
                "gateway": gateway,
                "severity": "high",
                "cue": "bypass_zero",
                "meter_id": f"MTR-{poster.run}-{name}",
                "event_id": f"E-{poster.run}-{name}",
            }
        )
    listed = _wait_for_states(poster, {"silent": False, "theft-quiet": True, "theft-busy": False})
    assert listed["theft-quiet"]["status"]["state"] == "suppressed"
    assert {r["name"] for r in listed["theft-busy"]["receivers"]} == {"revenue-protection"}


def test_a_fleet_outage_holds_back_every_theft_alert(poster: AlertPoster) -> None:
    theft = poster.post(
        {
            "alertname": THEFT,
            "name": "theft",
            "gateway": f"GW-{poster.run}-C",
            "severity": "critical",
            "cue": "meter_freeze",
            "meter_id": f"MTR-{poster.run}",
            "event_id": f"E-{poster.run}",
        }
    )
    _wait_for_states(poster, {"theft": False})
    outage = poster.post(
        {"alertname": "MeterwatchGatewayOutage", "category": "detector_health", "name": "outage"},
        minutes=1,
    )
    try:
        listed = _wait_for_states(poster, {"outage": False, "theft": True})
        assert {r["name"] for r in listed["outage"]["receivers"]} == {"oncall"}
    finally:
        poster.resolve([outage])
    poster.resolve([theft])


def test_a_worker_down_does_not_hold_back_theft_alerts(poster: AlertPoster) -> None:
    poster.post(
        {"alertname": "MeterwatchWorkerDown", "category": "detector_health", "name": "down"},
        minutes=1,
    )
    poster.post(
        {"alertname": "MeterwatchConsumerLagGrowing", "category": "detector_health", "name": "lag"},
        minutes=1,
    )
    poster.post(
        {
            "alertname": THEFT,
            "name": "theft",
            "gateway": f"GW-{poster.run}-D",
            "severity": "low",
            "cue": "pf_abnormal",
            "meter_id": f"MTR-{poster.run}",
            "event_id": f"E-{poster.run}",
        }
    )
    _wait_for_states(poster, {"down": False, "lag": True, "theft": False})
