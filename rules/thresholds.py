"""Load the rule thresholds (``rules/thresholds.toml``): one file, every number with its
unit in its key name. The loaded object is immutable and picklable."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

DEFAULT_THRESHOLDS_FILE = Path(__file__).resolve().parent / "thresholds.toml"


class ThresholdError(ValueError):
    """The thresholds file is missing a section or key, or holds a non-number."""


@dataclass(frozen=True)
class Thresholds:
    """Sections of named numbers: ``th.value("bypass_zero", "min_duration_s")``."""

    sections: Mapping[str, Mapping[str, float]]
    source: str = "<literal>"

    def value(self, section: str, key: str) -> float:
        try:
            return self.sections[section][key]
        except KeyError as exc:
            raise ThresholdError(f"{self.source}: missing [{section}] {key}") from exc

    def section(self, name: str) -> Mapping[str, float]:
        try:
            return self.sections[name]
        except KeyError as exc:
            raise ThresholdError(f"{self.source}: missing section [{name}]") from exc

    def __getstate__(self) -> dict[str, object]:
        return {"sections": {k: dict(v) for k, v in self.sections.items()}, "source": self.source}

    def __setstate__(self, state: dict[str, object]) -> None:
        sections = state["sections"]
        assert isinstance(sections, dict)  # noqa: S101 - pickle round-trip of our own state
        object.__setattr__(self, "sections", _freeze(sections))
        object.__setattr__(self, "source", str(state["source"]))


def _freeze(raw: Mapping[str, object]) -> Mapping[str, Mapping[str, float]]:
    out: dict[str, Mapping[str, float]] = {}
    for name, body in raw.items():
        if not isinstance(body, Mapping):
            raise ThresholdError(f"[{name}] must be a table")
        values: dict[str, float] = {}
        for key, val in body.items():
            if isinstance(val, bool) or not isinstance(val, int | float):
                raise ThresholdError(f"[{name}] {key} must be a number, got {val!r}")
            values[str(key)] = float(val)
        out[str(name)] = MappingProxyType(values)
    return MappingProxyType(out)


def load_thresholds(path: str | Path | None = None) -> Thresholds:
    """Read and check a thresholds file (the packaged default when ``path`` is None)."""
    file = Path(path) if path is not None else DEFAULT_THRESHOLDS_FILE
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ThresholdError(f"cannot read thresholds {file}: {exc}") from exc
    return Thresholds(_freeze(raw), str(file))


def thresholds_from_mapping(raw: Mapping[str, Mapping[str, float]]) -> Thresholds:
    """Thresholds from a literal mapping (tests)."""
    return Thresholds(_freeze(raw))
