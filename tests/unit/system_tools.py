"""Debian-packaged command-line tools the config tests run (promtool, amtool)."""

from __future__ import annotations

import os
import shutil

import pytest


def require_tool(name: str, package: str) -> str:
    """Path of ``name``. Missing: a failure under `make test` (METERWATCH_REQUIRE_STACK set,
    where `make sysdeps` must have installed it), a skip with the reason otherwise."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("METERWATCH_REQUIRE_STACK"):
            pytest.fail(f"{name} is missing: run `make sysdeps` (Debian package {package})")
        pytest.skip(f"{name} not installed (Debian package {package}; `make sysdeps`)")
    return path
