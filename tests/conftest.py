"""Suite-wide test configuration.

Hypothesis runs with a fixed profile: ``ci`` (derandomised, so CI is repeatable)
when ``CI`` is set, ``dev`` otherwise. Both keep example counts small enough for a
2-core machine.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=60,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
