"""Helpers of the control-room integration tests (Prometheus and Alertmanager of the stack).

Not a test module. ``ensure_current_configs`` makes the running stack use this
checkout's rules and Alertmanager template: `meterwatch stack up` renders them only
when it starts a server, so a stack started before the last edit runs stale ones.
It writes exactly what `stack up` would write and asks each server to reload.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from deploy.local.stack import StackLayout, alertmanager_config
from stream.settings import Settings

RULE_GROUPS = {"meterwatch-fleet", "meterwatch-detector-health", "meterwatch-self"}


def http_json(
    url: str, *, method: str = "GET", body: object = None, timeout_s: float = 10.0
) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 (local stack URL)
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
        raw = response.read()
    return json.loads(raw) if raw.strip() else None


def prometheus_query(settings: Settings, expr: str) -> dict[str, Any]:
    """``/api/v1/query``; returns the decoded answer, error answers included."""
    url = f"{settings.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        return dict(http_json(url))
    except urllib.error.HTTPError as error:  # 400/422 carry a JSON error body
        return dict(json.loads(error.read()))


def ensure_current_configs(settings: Settings, timeout_s: float = 30.0) -> None:
    """Reload Prometheus (rules) and Alertmanager (template) of the running stack."""
    rendered = alertmanager_config(settings)
    on_disk = StackLayout(settings.stack_dir).home("alertmanager") / "alertmanager.yml"
    if not on_disk.exists() or on_disk.read_text(encoding="utf-8") != rendered:
        on_disk.parent.mkdir(parents=True, exist_ok=True)
        on_disk.write_text(rendered, encoding="utf-8")
    http_json(f"{settings.alertmanager_url}/-/reload", method="POST")
    http_json(f"{settings.prometheus_url}/-/reload", method="POST")
    deadline = time.monotonic() + timeout_s
    while True:
        groups = http_json(f"{settings.prometheus_url}/api/v1/rules")["data"]["groups"]
        status = http_json(f"{settings.alertmanager_url}/api/v2/status")
        loaded = {group["name"] for group in groups} >= RULE_GROUPS
        if loaded and "revenue-protection" in status["config"]["original"]:
            return
        if time.monotonic() > deadline:
            names = sorted(group["name"] for group in groups)
            raise AssertionError(f"stack did not load the current configs: rule groups {names}")
        time.sleep(0.5)
