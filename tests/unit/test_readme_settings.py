"""The README documents every setting's environment variable, and nothing stale."""

from __future__ import annotations

import re
from pathlib import Path

from stream.settings import Settings, env_var_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_environment_variable_is_in_the_readme() -> None:
    text = README.read_text(encoding="utf-8")
    missing = [var for var, _, _ in env_var_table() if f"`{var}`" not in text]
    assert missing == []


def test_the_readme_names_no_unknown_setting() -> None:
    text = README.read_text(encoding="utf-8")
    known = {f"METERWATCH_{name.upper()}" for name in Settings.model_fields}
    mentioned = set(re.findall(r"METERWATCH_[A-Z0-9_]+", text))
    # REQUIRE_STACK is the test harness's switch, not a setting
    assert mentioned - known - {"METERWATCH_REQUIRE_STACK"} == set()
