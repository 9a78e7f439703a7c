"""The real Prometheus of the local stack loads meterwatch's rules and runs every query.

No worker needed here: this checks that each PromQL expression of the dashboards and
the rules parses and executes (``/api/v1/query`` answers ``success``) and that
Prometheus's own rule engine evaluates every rule without error. Whether they return
data after a real streaming run is tests/integration/test_grafana_promql_live.py.
"""

from __future__ import annotations

import time

import pytest
from live_controlroom import RULE_GROUPS, ensure_current_configs, http_json, prometheus_query

from deploy.grafana.dashboards import DASHBOARDS
from deploy.grafana.promql import dashboard_queries, expand_macros, rule_queries
from stream.settings import Settings

pytestmark = pytest.mark.integration

RULE_EVALUATION_TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def prometheus(stack: Settings) -> Settings:
    ensure_current_configs(stack)
    return stack


def _all_queries():
    boards = {name: build() for name, build in DASHBOARDS.items()}
    return dashboard_queries(boards) + rule_queries()


def test_every_expression_parses_and_executes(prometheus: Settings) -> None:
    queries = _all_queries()
    assert len(queries) > 50
    failures = []
    for query in queries:
        answer = prometheus_query(prometheus, expand_macros(query.expr))
        if answer.get("status") != "success":
            failures.append(f"{query.origin} {query.where}: {answer.get('error')}")
    assert failures == []


def test_a_broken_expression_is_reported_as_an_error(prometheus: Settings) -> None:
    answer = prometheus_query(prometheus, "sum by (le (rate(meterwatch_readings_total[5m]))")
    assert answer["status"] == "error"


def test_prometheus_evaluates_every_rule_without_error(prometheus: Settings) -> None:
    expected = {q.where for q in rule_queries()}
    deadline = time.monotonic() + RULE_EVALUATION_TIMEOUT_S
    while True:
        groups = http_json(f"{prometheus.prometheus_url}/api/v1/rules")["data"]["groups"]
        ours = [group for group in groups if group["name"] in RULE_GROUPS]
        rules = {rule["name"]: rule for group in ours for rule in group["rules"]}
        errors = {
            name: rule.get("lastError") for name, rule in rules.items() if rule["health"] == "err"
        }
        assert errors == {}
        if set(rules) == expected and all(rule["health"] == "ok" for rule in rules.values()):
            break
        if time.monotonic() > deadline:
            pending = sorted(name for name, rule in rules.items() if rule["health"] != "ok")
            pytest.fail(f"rules not evaluated within {RULE_EVALUATION_TIMEOUT_S}s: {pending}")
        time.sleep(1.0)
