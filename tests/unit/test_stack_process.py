"""Pid ownership and `stack down`/`stack status` without any server running.

These use real, harmless processes (``sleep``) and free ports, no mocks: `down` must
kill what the stack started and nothing else, whatever a pid file says.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deploy.local.cli import stack_app
from deploy.local.stack import (
    PidRecord,
    StackLayout,
    _proc_stat,
    owned_and_alive,
    stack_down,
)
from stream.settings import Settings


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_exec(pid: int, program: bytes, budget_s: float = 10.0) -> None:
    """Wait until /proc/<pid>/cmdline names the new program.

    Popen returns once exec has closed the child's close-on-exec pipe, but the kernel
    fills the new image's argument area a moment later; in between, cmdline reads
    empty, which `owned_and_alive` rightly treats as no mismatch (CI once caught that
    window and saw a `sleep` pass for `redis-server`). The tests below are about a
    process that is already running its program, so they start from there.
    """
    deadline = time.monotonic() + budget_s
    while program not in Path(f"/proc/{pid}/cmdline").read_bytes():
        assert time.monotonic() < deadline, f"pid {pid} never showed {program!r}"
        os.sched_yield()


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(["sleep", "60"])
    _wait_for_exec(process.pid, b"sleep")
    yield process
    process.kill()
    process.wait(timeout=5)


def _record_of(process: subprocess.Popen[bytes], program: str = "sleep") -> PidRecord:
    stat = _proc_stat(process.pid)
    assert stat is not None
    return PidRecord(process.pid, stat[1], program)


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        stack_dir=tmp_path / "stack",
        kafka_port=_free_port(),
        kafka_controller_port=_free_port(),
        redis_port=_free_port(),
        prometheus_port=_free_port(),
        alertmanager_port=_free_port(),
    )


def test_ownership_needs_same_pid_start_time_and_program(
    sleeper: subprocess.Popen[bytes],
) -> None:
    record = _record_of(sleeper)
    assert owned_and_alive(record)
    assert not owned_and_alive(PidRecord(record.pid, record.start_ticks + 1, "sleep"))
    assert not owned_and_alive(PidRecord(record.pid, record.start_ticks, "redis-server"))
    sleeper.kill()
    sleeper.wait(timeout=5)
    assert not owned_and_alive(record)


def test_pid_record_round_trip_and_garbage(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text(PidRecord(42, 7, "prometheus", 19090).to_json())
    assert PidRecord.read(path) == PidRecord(42, 7, "prometheus", 19090)
    path.write_text('{"pid": 42, "start_ticks": 7, "program": "redis-server"}')  # no port
    assert PidRecord.read(path) == PidRecord(42, 7, "redis-server", 0)
    path.write_text("[1, 2]")
    assert PidRecord.read(path) is None
    path.write_text("not json")
    assert PidRecord.read(path) is None
    assert PidRecord.read(tmp_path / "missing.json") is None


def test_down_never_kills_a_process_it_did_not_start(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    settings = _settings(tmp_path)
    layout = StackLayout(settings.stack_dir)
    layout.pids.mkdir(parents=True)
    # a pid record whose pid is now someone else's process (a reused pid)
    reused = PidRecord(sleeper.pid, _record_of(sleeper).start_ticks - 1, "sleep")
    layout.pid_file("redis").write_text(reused.to_json())
    lines: list[str] = []
    assert stack_down(settings, echo=lines.append) == 0
    assert sleeper.poll() is None, "stack down killed a process it did not start"
    assert not layout.pid_file("redis").exists(), "stale pid record left behind"
    assert any("not killing" in line for line in lines), lines


def test_down_stops_what_the_stack_started(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    settings = _settings(tmp_path)
    layout = StackLayout(settings.stack_dir)
    layout.pids.mkdir(parents=True)
    layout.pid_file("prometheus").write_text(_record_of(sleeper).to_json())
    lines: list[str] = []
    assert stack_down(settings, echo=lines.append, timeout_s=10) == 0
    assert sleeper.wait(timeout=10) is not None
    assert not layout.pid_file("prometheus").exists()
    assert "prometheus: stopped" in lines


def test_status_of_a_stopped_stack_says_so_and_fails(tmp_path: Path) -> None:
    env = {
        "METERWATCH_STACK_DIR": str(tmp_path / "stack"),
        "METERWATCH_KAFKA_PORT": str(_free_port()),
        "METERWATCH_KAFKA_CONTROLLER_PORT": str(_free_port()),
        "METERWATCH_REDIS_PORT": str(_free_port()),
        "METERWATCH_PROMETHEUS_PORT": str(_free_port()),
        "METERWATCH_ALERTMANAGER_PORT": str(_free_port()),
    }
    result = CliRunner().invoke(stack_app, ["status"], env=env)
    assert result.exit_code == 1, result.output
    for server in ("kafka", "redis", "prometheus", "alertmanager"):
        line = next(line for line in result.output.splitlines() if line.startswith(server))
        assert "stopped" in line
        assert env[f"METERWATCH_{server.upper()}_PORT"] in line
    assert "stack: not running (0/4 healthy)" in result.output


def test_cli_reports_an_invalid_setting(tmp_path: Path) -> None:
    result = CliRunner().invoke(stack_app, ["status"], env={"METERWATCH_REDIS_PORT": "-1"})
    assert result.exit_code == 2
    assert "redis_port" in result.output


def test_up_and_down_wait_for_each_other(tmp_path: Path) -> None:
    import fcntl
    import threading

    settings = _settings(tmp_path)
    layout = StackLayout(settings.stack_dir)
    layout.root.mkdir(parents=True)
    lines: list[str] = []
    with (layout.root / ".stack.lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as if another `stack up` were running
        worker = threading.Thread(target=stack_down, args=(settings, lines.append))
        worker.start()
        worker.join(timeout=1.0)
        assert worker.is_alive(), "stack down did not wait for the lock"
        assert lines == ["another `stack up` or `stack down` is running here: waiting for it"]
        fcntl.flock(held, fcntl.LOCK_UN)
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert "kafka: not started by this stack, nothing to stop" in lines
