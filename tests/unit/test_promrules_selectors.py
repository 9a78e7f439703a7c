"""series_selectors: which series a PromQL expression reads (used by the live test)."""

from __future__ import annotations

import pytest

from deploy.grafana.promql import expand_macros, series_selectors


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("meterwatch:readings:rate1m", ["meterwatch:readings:rate1m"]),
        ("sum(rate(meterwatch_readings_total[1m]))", ["meterwatch_readings_total"]),
        (
            "sum by (severity, cue) (rate(meterwatch_alerts_total[5m]))",
            ["meterwatch_alerts_total"],
        ),
        (
            'sum without (instance) (up{job="meterwatch-worker"}) == 0',
            ['up{job="meterwatch-worker"}'],
        ),
        (
            "histogram_quantile(0.95, sum by (le) (rate(x_bucket[5m])))",
            ["x_bucket"],
        ),
        ("a / clamp_min(b + c, 1e-9)", ["a", "b", "c"]),
        ("a > 10000 and b > 0", ["a", "b"]),
        ("a * on (instance) group_left (version) b_info", ["a", "b_info"]),
        ('topk(10, x{cue=~"a|b", sev!="low"}) offset 5m', ['x{cue=~"a|b", sev!="low"}']),
    ],
)
def test_selectors(expr: str, expected: list[str]) -> None:
    assert series_selectors(expr) == expected


def test_a_selector_without_a_name_is_an_error() -> None:
    with pytest.raises(ValueError, match="without a metric name"):
        series_selectors('sum({__name__=~"meterwatch_.*"})')


def test_grafana_macros_expand_longest_first() -> None:
    assert expand_macros("rate(x[$__rate_interval]) + rate(y[$__interval])") == (
        "rate(x[1m]) + rate(y[30s])"
    )
