"""Helpers for the integration tier's fixtures and tests (no fixtures here)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import TypeVar

import pytest

BIND_WAIT_S = 60.0

T = TypeVar("T")


def bind_with_patience(bind: Callable[[], T], what: str, timeout_s: float = BIND_WAIT_S) -> T:
    """Call ``bind`` until the port is free or ``timeout_s`` passes.

    The webhook and metrics ports are fixed (Prometheus and Alertmanager point at them),
    so two test runs on one machine take turns instead of failing at once.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return bind()
        except OSError as error:
            if time.monotonic() >= deadline:
                pytest.fail(
                    f"cannot bind the {what} within {timeout_s:.0f}s ({error}): another test "
                    "run or a worker holds it",
                    pytrace=False,
                )
            time.sleep(0.5)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (for private servers)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
