"""Fleet configuration: every knob of the simulator in one frozen object.

The same ``FleetConfig`` (and seed) always gives the same readings and labels,
byte for byte.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

THEFT_TYPES: tuple[str, ...] = (
    "full_bypass",
    "partial_bypass",
    "register_tamper",
    "meter_freeze",
    "reverse_meter",
    "pf_tamper",
    "gradual_bypass",
    "night_pump_hook",
)
BEHAVIOUR_TYPES: tuple[str, ...] = ("vacancy", "new_ev", "new_heat_pump", "appliance_fault")
FAULT_TYPES: tuple[str, ...] = ("comms_gap", "duplicates", "late", "clock_skew", "malformed")
HOUSEHOLDS: tuple[str, ...] = ("flat", "house", "house_ev", "shop")
MALFORMED_KINDS: tuple[str, ...] = (
    "unparsable",
    "nan",
    "pf_out_of_range",
    "voltage_non_positive",
    "missing_field",
)

# Monday, so the first two days (the engine's warm-up and then some) are working days.
DEFAULT_START = datetime(2026, 1, 5, tzinfo=UTC)
# Public holidays the routines treat like a Sunday (a generic European calendar for 2026).
DEFAULT_HOLIDAYS: tuple[date, ...] = (
    date(2026, 1, 1),
    date(2026, 1, 6),
    date(2026, 4, 3),
    date(2026, 4, 6),
    date(2026, 5, 1),
    date(2026, 5, 14),
    date(2026, 5, 25),
    date(2026, 12, 25),
    date(2026, 12, 26),
)
# Theft never starts before start + this (the contract; the engine warms up for 1 day).
THEFT_EARLIEST_S = 2 * 86_400

# Measurement resolution of the simulated meters (what a real meter's registers report).
RESOLUTION_V = 0.1
RESOLUTION_I = 0.01
RESOLUTION_P = 0.1
RESOLUTION_PF = 0.001


def identity_tolerance_w(voltage_v: float, current_a: float) -> float:
    """Largest |P - V*I*PF| that rounding alone can cause on an honest reading.

    Each channel is rounded to half its resolution; the product's error is the
    first-order sum of those, plus a small margin for second-order terms.
    """
    v, i = abs(voltage_v), abs(current_a)
    return (
        0.5 * RESOLUTION_P
        + 0.5 * RESOLUTION_V * i
        + 0.5 * RESOLUTION_I * v
        + 0.5 * RESOLUTION_PF * v * i
        + 1e-3 * (1.0 + v * i * 1e-3)
    )


@dataclass(frozen=True)
class FleetConfig:
    """What fleet to simulate. Defaults match ``meterwatch simulate`` without options."""

    meters: int = 100
    days: float = 14.0
    cadence_s: int = 5
    seed: int = 0
    start: datetime = DEFAULT_START
    theft_share: float = 0.05
    behaviour_share: float = 0.05
    malformed_share: float = 0.001
    nominal_voltage_v: float = 230.0
    transport_faults: bool = True
    theft_types: tuple[str, ...] = THEFT_TYPES
    behaviour_types: tuple[str, ...] = BEHAVIOUR_TYPES
    household_mix: tuple[float, float, float, float] = (0.40, 0.35, 0.15, 0.10)
    meters_per_transformer: int = 20
    transformers_per_gateway: int = 2
    latitude_deg: float = 52.0
    utc_offset_h: float = 0.0
    holidays: tuple[date, ...] = field(default=DEFAULT_HOLIDAYS)
    # Late readings are delayed by at most this (the engine's default allowed lateness) ...
    max_lateness_s: int = 120
    # ... except this share of late intervals, which arrive 3-15 minutes late.
    beyond_lateness_share: float = 0.1

    def __post_init__(self) -> None:
        if self.meters < 1:
            raise ValueError("meters must be >= 1")
        if not (self.days > 0):
            raise ValueError("days must be > 0")
        if not (1 <= self.cadence_s <= 900):
            raise ValueError("cadence_s must be between 1 and 900 seconds")
        if self.start.tzinfo is None or self.start.utcoffset() is None:
            raise ValueError("start must be timezone-aware")
        if self.start.microsecond != 0:
            raise ValueError("start must be a whole second")
        for name in ("theft_share", "behaviour_share", "malformed_share", "beyond_lateness_share"):
            value = getattr(self, name)
            if not (0.0 <= value <= 1.0) or math.isnan(value):
                raise ValueError(f"{name} must be in [0, 1]")
        if self.theft_share + self.behaviour_share > 1.0:
            raise ValueError("theft_share + behaviour_share must be <= 1")
        if self.nominal_voltage_v <= 0:
            raise ValueError("nominal_voltage_v must be > 0")
        unknown = set(self.theft_types) - set(THEFT_TYPES)
        if unknown:
            raise ValueError(f"unknown theft types: {sorted(unknown)}")
        unknown = set(self.behaviour_types) - set(BEHAVIOUR_TYPES)
        if unknown:
            raise ValueError(f"unknown behaviour types: {sorted(unknown)}")
        if len(self.household_mix) != 4 or min(self.household_mix) < 0:
            raise ValueError("household_mix needs 4 non-negative shares")
        if sum(self.household_mix) <= 0:
            raise ValueError("household_mix must not be all zero")
        if self.meters_per_transformer < 1 or self.transformers_per_gateway < 1:
            raise ValueError("meters_per_transformer and transformers_per_gateway must be >= 1")
        if self.max_lateness_s < 0:
            raise ValueError("max_lateness_s must be >= 0")

    @property
    def start_ms(self) -> int:
        return int(self.start.timestamp()) * 1000

    @property
    def steps(self) -> int:
        """Readings per meter (before transport faults)."""
        return max(1, int(self.days * 86_400) // self.cadence_s)

    @property
    def end_ms(self) -> int:
        return self.start_ms + self.steps * self.cadence_s * 1000
