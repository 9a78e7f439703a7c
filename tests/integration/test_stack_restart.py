"""`stack restart SERVER` on a private stack (temp state folder, free ports).

Kafka is left out on purpose (no jars in the temp folder): the cheap servers are enough
to check the pid handling; tests/integration/test_stream_broker_restart.py restarts a
real private broker under a worker. `down` runs in a finalizer.
"""

from __future__ import annotations

import os
import shutil
import signal
import time

import pytest
from stack_support import free_port

from deploy.local.stack import (
    PidRecord,
    StackLayout,
    owned_and_alive,
    redis_health,
    restart_server,
    stack_up,
)
from stream.settings import Settings

pytestmark = pytest.mark.integration


def _record(layout: StackLayout, name: str) -> PidRecord:
    record = PidRecord.read(layout.pid_file(name))
    assert record is not None, f"no pid record for {name}"
    return record


def test_restart_replaces_the_process_and_refuses_what_the_stack_does_not_own(
    private_settings: Settings,
) -> None:
    settings = private_settings
    layout = StackLayout(settings.stack_dir)
    assert stack_up(settings, echo=lambda _line: None) == 1  # no Kafka jars here
    before = _record(layout, "redis")

    lines: list[str] = []
    assert restart_server(settings, "redis", echo=lines.append) == 0
    text = "\n".join(lines)
    assert f"redis: stopping pid {before.pid} (SIGTERM)" in text
    assert "redis: stopped" in text
    after = _record(layout, "redis")
    assert after.pid != before.pid
    assert not owned_and_alive(before)
    assert owned_and_alive(after)
    assert redis_health(settings.redis_port) is None
    assert "stack restart redis: healthy again in" in lines[-1]
    assert f"(pid {before.pid} -> {after.pid})" in lines[-1]
    # the others were not touched
    assert owned_and_alive(_record(layout, "prometheus"))

    # a server that died: the stale record is not signalled, a new process is started
    os.kill(after.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while owned_and_alive(after) and time.monotonic() < deadline:
        time.sleep(0.05)  # the signal is delivered asynchronously
    stale: list[str] = []
    assert restart_server(settings, "redis", echo=stale.append) == 0
    assert any(f"pid {after.pid} is gone" in line for line in stale), stale
    assert not any("SIGTERM" in line for line in stale)
    assert owned_and_alive(_record(layout, "redis"))

    # never started by this stack (Kafka failed to start): nothing is signalled or started
    kafka: list[str] = []
    assert restart_server(settings, "kafka", echo=kafka.append) == 1
    assert kafka[-1].startswith("kafka: not started by this stack")
    assert not layout.pid_file("kafka").exists()

    unknown: list[str] = []
    assert restart_server(settings, "zookeeper", echo=unknown.append) == 2
    assert "one of redis, prometheus, alertmanager, kafka" in unknown[-1]

    # settings moved under a running server: refused, the running one keeps running
    running = _record(layout, "redis")
    moved = settings.model_copy(update={"redis_port": free_port()})
    refused: list[str] = []
    assert restart_server(moved, "redis", echo=refused.append) == 1
    assert f"runs on port {settings.redis_port}" in refused[-1]
    assert owned_and_alive(running)


def test_a_restart_that_cannot_start_again_is_reported(private_settings: Settings) -> None:
    settings = private_settings
    layout = StackLayout(settings.stack_dir)
    assert stack_up(settings, echo=lambda _line: None) == 1  # no Kafka jars here
    before = _record(layout, "prometheus")
    # its data folder became a file: preparing the server fails
    shutil.rmtree(layout.home("prometheus") / "data")
    (layout.home("prometheus") / "data").write_text("not a folder")
    lines: list[str] = []
    assert restart_server(settings, "prometheus", echo=lines.append) == 1
    assert not owned_and_alive(before)
    assert any(line.startswith("prometheus: FAILED to start: ") for line in lines), lines
    assert "File exists" in lines[-1]
