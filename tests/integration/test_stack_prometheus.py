"""Prometheus of the local stack scrapes the worker's /metrics port."""

from __future__ import annotations

import json
import secrets
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Gauge, start_http_server
from stack_support import bind_with_patience

from stream.settings import Settings

pytestmark = pytest.mark.integration

# scrape interval is 5 s (deploy/prometheus/prometheus.yml.tmpl): a few scrapes
SCRAPE_WAIT_S = 40.0


def _query(settings: Settings, promql: str) -> list[dict[str, Any]]:
    url = f"{settings.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (settings URL)
        payload = json.load(response)
    assert payload["status"] == "success", payload
    result: list[dict[str, Any]] = payload["data"]["result"]
    return result


@pytest.fixture
def metrics_server(stack: Settings) -> Iterator[float]:
    """Serve /metrics on settings.metrics_port with one gauge set to a random token."""
    registry = CollectorRegistry()
    token = float(secrets.randbelow(10**9))
    Gauge("meterwatch_stack_test_token", "set by the stack test", registry=registry).set(token)
    server, thread = bind_with_patience(
        lambda: start_http_server(stack.metrics_port, addr="127.0.0.1", registry=registry),
        f"/metrics server on 127.0.0.1:{stack.metrics_port} (METERWATCH_METRICS_PORT)",
    )
    yield token
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_prometheus_reports_the_worker_target_up(stack: Settings, metrics_server: float) -> None:
    target = f"127.0.0.1:{stack.metrics_port}"
    deadline = time.monotonic() + SCRAPE_WAIT_S
    up: list[dict[str, Any]] = []
    token: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        up = _query(stack, f'up{{job="meterwatch-worker",instance="{target}"}} == 1')
        token = _query(stack, f"meterwatch_stack_test_token == {metrics_server:.0f}")
        if up and token:
            break
        time.sleep(1.0)
    assert up, f"Prometheus never reported {target} up within {SCRAPE_WAIT_S}s"
    # the value scraped is the one this test served, not some other worker's
    assert token, "the target is up but this test's gauge never arrived"
    assert token[0]["metric"]["instance"] == target


def test_prometheus_rejects_a_bad_query(stack: Settings) -> None:
    url = f"{stack.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": "up{"})
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(url, timeout=5)  # noqa: S310 (settings URL)
    assert raised.value.code == 400
