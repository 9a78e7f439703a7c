"""`stack up/status/down` on a private stack (temp state folder, free ports).

Runs real Redis, Prometheus and Alertmanager, leaves the shared stack alone, and
leaves Kafka out on purpose (no jars in the temp folder) to check how a failed start
is reported. Never leaves a process behind: `down` runs in a finalizer.
"""

from __future__ import annotations

import json
import socket
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from stack_support import free_port

from deploy.local.stack import StackLayout, http_reload, stack_down, stack_status, stack_up
from stream.settings import Settings

pytestmark = pytest.mark.integration


def _alertmanager_config_loaded(base_url: str) -> str:
    with urllib.request.urlopen(f"{base_url}/api/v2/status", timeout=10) as response:  # noqa: S310
        return str(json.load(response)["config"]["original"])


def test_up_is_idempotent_reports_the_failed_server_and_down_stops_all(
    private_settings: Settings,
) -> None:
    settings = private_settings
    layout = StackLayout(settings.stack_dir)

    first: list[str] = []
    assert stack_up(settings, echo=first.append) == 1  # Kafka has no jars here
    text = "\n".join(first)
    assert "kafka: FAILED to start: Kafka jars missing" in text
    assert "make sysdeps" in text
    for server in ("redis", "prometheus", "alertmanager"):
        assert f"{server}: starting on 127.0.0.1:" in text
        assert f"{server}: healthy at" in text, text
        assert layout.log_file(server).exists()
        assert layout.pid_file(server).exists()

    status: list[str] = []
    assert stack_status(settings, echo=status.append) == 1
    assert "stack: 3/4 healthy" in status[-1]

    second: list[str] = []
    assert stack_up(settings, echo=second.append) == 1
    for server in ("redis", "prometheus", "alertmanager"):
        assert any(line.startswith(f"{server}: already healthy") for line in second), second
    assert not any("starting on" in line for line in second), "up started a second copy"

    # a running Alertmanager on a stale config is brought back to the template by `up`
    rendered = layout.home("alertmanager") / "alertmanager.yml"
    current = rendered.read_text()
    rendered.write_text(current.replace("meterwatch-webhook", "stale-receiver"))
    am_url = f"http://127.0.0.1:{settings.alertmanager_port}"
    assert http_reload(f"{am_url}/-/reload") is None
    assert "stale-receiver" in _alertmanager_config_loaded(am_url)
    third: list[str] = []
    assert stack_up(settings, echo=third.append) == 1  # still no Kafka
    assert any("alertmanager: already healthy" in line and "reloaded" in line for line in third)
    assert rendered.read_text() == current
    loaded = _alertmanager_config_loaded(am_url)
    assert "stale-receiver" not in loaded
    assert "meterwatch-webhook" in loaded

    # settings changed under a running stack: `up` says so instead of waiting in vain
    moved = settings.model_copy(update={"redis_port": free_port()})
    fourth: list[str] = []
    assert stack_up(moved, echo=fourth.append) == 1
    assert any(
        line.startswith("redis: FAILED: the stack's redis")
        and f"runs on port {settings.redis_port}, the settings now say {moved.redis_port}" in line
        for line in fourth
    ), fourth
    assert not any(line.startswith("redis: starting") for line in fourth)

    stopped: list[str] = []
    assert stack_down(settings, echo=stopped.append) == 0
    for server in ("redis", "prometheus", "alertmanager"):
        assert f"{server}: stopped" in stopped
        assert not layout.pid_file(server).exists()
    final: list[str] = []
    assert stack_status(settings, echo=final.append) == 1
    assert final[-1].startswith("stack: not running (0/4 healthy)")


def test_a_server_that_dies_is_named_with_its_log(private_settings: Settings) -> None:
    settings = private_settings
    layout = StackLayout(settings.stack_dir)
    # someone else holds Prometheus's port: it cannot bind and exits
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", settings.prometheus_port))
        squatter.listen()
        lines: list[str] = []
        assert stack_up(settings, echo=lines.append) == 1
    text = "\n".join(lines)
    assert f"prometheus: FAILED: the process exited. Log: {layout.log_file('prometheus')}" in text
    assert "address already in use" in layout.log_file("prometheus").read_text()
    assert "redis: healthy at" in text  # the others still came up


def test_a_refused_reload_is_reported_with_the_servers_reason() -> None:
    class RefusingHandler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the http.server API)
            self.send_response(500)
            self.end_headers()
            self.wfile.write(b"failed to reload config: yaml: line 3: bad indentation")

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    server = HTTPServer(("127.0.0.1", 0), RefusingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        problem = http_reload(f"http://127.0.0.1:{port}/-/reload")
    finally:
        server.shutdown()
        server.server_close()
    assert problem == "HTTP 500: failed to reload config: yaml: line 3: bad indentation"
    with pytest.raises(ValueError, match="only go to 127.0.0.1"):
        http_reload("http://example.com/-/reload")
