"""The Prometheus rules: `promtool check rules` and the rules' own unit tests.

promtool comes with Debian's `prometheus` package (`make sysdeps`). Outside
`make test` (METERWATCH_REQUIRE_STACK unset) a missing promtool skips these tests;
under `make test` it fails them.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml
from system_tools import require_tool

from deploy.grafana.promql import RULES_DIR, rule_queries, series_selectors

PROMETHEUS_DIR = RULES_DIR.parent
RULE_FILES = sorted(RULES_DIR.glob("*.yml"))


def _promtool() -> str:
    return require_tool("promtool", "prometheus")


def test_promtool_check_rules_passes() -> None:
    assert RULE_FILES, "no rule files"
    result = subprocess.run(
        [_promtool(), "check", "rules", *map(str, RULE_FILES)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_rejects_a_broken_rule(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "groups:\n  - name: x\n    rules:\n      - record: a:b\n        expr: sum(rate(x[5m])\n"
    )
    result = subprocess.run(
        [_promtool(), "check", "rules", str(broken)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0


def test_rule_unit_tests_pass() -> None:
    """deploy/prometheus/tests: each alert fires on a bad input and not on a healthy one."""
    result = subprocess.run(
        [_promtool(), "test", "rules", "meterwatch-rules.test.yml"],
        cwd=PROMETHEUS_DIR / "tests",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_rule_unit_tests_cover_every_alert() -> None:
    document = yaml.safe_load((PROMETHEUS_DIR / "tests" / "meterwatch-rules.test.yml").read_text())
    tested = {
        case["alertname"] for test in document["tests"] for case in test.get("alert_rule_test", [])
    }
    alerts = {q.where for q in rule_queries() if q.origin == "alert rule"}
    assert alerts == tested


def test_every_alert_has_a_runbook_severity_and_category() -> None:
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" not in rule:
                    continue
                assert rule["annotations"].get("runbook", "").strip(), rule["alert"]
                assert rule["annotations"].get("summary"), rule["alert"]
                assert rule["labels"]["category"] == "detector_health", rule["alert"]
                assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]


def test_the_self_watching_alerts_exist() -> None:
    """The six of the issue, plus the outage alert that inhibits theft alerts."""
    alerts = {q.where for q in rule_queries() if q.origin == "alert rule"}
    assert alerts == {
        "MeterwatchWorkerDown",
        "MeterwatchConsumerLagGrowing",
        "MeterwatchHighDeadLetterRate",
        "MeterwatchGatewaySilent",
        "MeterwatchGatewayOutage",
        "MeterwatchScoringLatencyHigh",
        "MeterwatchModelArtifactMissing",
    }


def test_rules_read_only_contract_metrics_and_never_a_per_meter_label() -> None:
    contract = (
        Path(__file__).resolve().parents[2] / "stream" / "schemas" / "README.md"
    ).read_text()
    recorded = {q.where for q in rule_queries() if q.origin == "recording rule"}
    for query in rule_queries():
        assert "meter_id" not in query.expr
        for selector in series_selectors(query.expr):
            name = selector.split("{")[0]
            base = re.sub(r"_(bucket|count|sum|info)$", "", name)
            assert name in recorded or name == "up" or f"`{base}`" in contract, (query.where, name)
