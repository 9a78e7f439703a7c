"""Alertmanager of the local stack delivers a posted alert to the webhook receiver."""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stream.settings import Settings

pytestmark = pytest.mark.integration

DELIVERY_TIMEOUT_S = 30.0


def _post_alerts(settings: Settings, alerts: list[dict[str, Any]]) -> int:
    request = urllib.request.Request(  # noqa: S310 (settings URL)
        f"{settings.alertmanager_url}/api/v2/alerts",
        data=json.dumps(alerts).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_posted_alert_reaches_the_webhook(stack: Settings, webhook_receiver: Any) -> None:
    alertname = f"MeterwatchStackTest{secrets.token_hex(4)}"
    now = datetime.now(UTC)
    alert = {
        "labels": {"alertname": alertname, "severity": "high", "cue": "bypass_zero"},
        "annotations": {"summary": "stack test alert", "evidence": "p_ratio=0.02"},
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(minutes=5)).isoformat(),
    }
    assert _post_alerts(stack, [alert]) == 200

    def carries_our_alert(body: dict[str, Any]) -> bool:
        return any(a["labels"].get("alertname") == alertname for a in body.get("alerts", []))

    body = webhook_receiver.wait_for(carries_our_alert, timeout_s=DELIVERY_TIMEOUT_S)
    assert body["receiver"] == "meterwatch-webhook"
    assert body["status"] == "firing"
    (delivered,) = [a for a in body["alerts"] if a["labels"]["alertname"] == alertname]
    assert delivered["labels"]["severity"] == "high"
    assert delivered["annotations"]["evidence"] == "p_ratio=0.02"


def test_alertmanager_rejects_an_alert_without_labels(stack: Settings) -> None:
    # 422: the v2 API validates the body against its schema (labels are required)
    assert _post_alerts(stack, [{"annotations": {"summary": "no labels"}}]) in {400, 422}
