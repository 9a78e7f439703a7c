"""`stack up/status/down` on a private stack (temp state folder, free ports).

Runs real Redis, Prometheus and Alertmanager, leaves the shared stack alone, and
leaves Kafka out on purpose (no jars in the temp folder) to check how a failed start
is reported. Never leaves a process behind: `down` runs in a finalizer.
"""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.local.stack import StackLayout, stack_down, stack_status, stack_up
from stream.settings import Settings

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def private_settings(tmp_path: Path) -> Iterator[Settings]:
    missing = [
        p for p in ("redis-server", "prometheus", "prometheus-alertmanager") if not shutil.which(p)
    ]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: run `make sysdeps`")
    settings = Settings(
        stack_dir=tmp_path / "stack",
        kafka_port=_free_port(),
        kafka_controller_port=_free_port(),
        redis_port=_free_port(),
        prometheus_port=_free_port(),
        alertmanager_port=_free_port(),
        webhook_port=_free_port(),
        metrics_port=_free_port(),
        stack_start_timeout_s=30,
    )
    yield settings
    stack_down(settings, echo=lambda _line: None)


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
