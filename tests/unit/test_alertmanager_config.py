"""Alertmanager routing: the rendered template passes amtool and routes as designed.

amtool comes with Debian's `prometheus-alertmanager` package (`make sysdeps`).
Outside `make test` (METERWATCH_REQUIRE_STACK unset) a missing amtool skips these
tests; under `make test` it fails them.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from system_tools import require_tool

from deploy.local.stack import alertmanager_config
from stream.settings import Settings


def _amtool() -> str:
    return require_tool("amtool", "prometheus-alertmanager")


@pytest.fixture
def rendered(tmp_path: Path) -> Path:
    path = tmp_path / "alertmanager.yml"
    path.write_text(alertmanager_config(Settings(webhook_port=19095)))
    return path


def _receiver_for(config: Path, *labels: str) -> str:
    result = subprocess.run(
        [_amtool(), "config", "routes", "test", f"--config.file={config}", *labels],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


def test_amtool_check_config_passes(rendered: Path) -> None:
    result = subprocess.run(
        [_amtool(), "check-config", str(rendered)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_amtool_rejects_a_broken_config(rendered: Path) -> None:
    broken = rendered.read_text().replace("receiver: oncall", "receiver: nobody")
    rendered.write_text(broken)
    result = subprocess.run(
        [_amtool(), "check-config", str(rendered)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0


def test_theft_alerts_go_to_revenue_protection(rendered: Path) -> None:
    labels = (
        "alertname=ElectricityTheftLikely",
        "severity=high",
        "cue=bypass_zero",
        "gateway=GW-1",
    )
    assert _receiver_for(rendered, *labels) == "revenue-protection"


@pytest.mark.parametrize(
    "alertname",
    ["MeterwatchWorkerDown", "MeterwatchGatewaySilent", "MeterwatchModelArtifactMissing"],
)
def test_detector_health_goes_to_oncall(rendered: Path, alertname: str) -> None:
    labels = (f"alertname={alertname}", "category=detector_health", "severity=critical")
    assert _receiver_for(rendered, *labels) == "oncall"


def test_anything_else_goes_to_the_default_webhook(rendered: Path) -> None:
    assert _receiver_for(rendered, "alertname=SomethingElse") == "meterwatch-webhook"


def test_grouping_and_receivers_keep_the_stack_placeholders(rendered: Path) -> None:
    config = yaml.safe_load(rendered.read_text())
    routes = {route["receiver"]: route for route in config["route"]["routes"]}
    assert "gateway" in routes["revenue-protection"]["group_by"]
    assert "feeder" in routes["revenue-protection"]["group_by"]
    urls = {r["name"]: r["webhook_configs"][0]["url"] for r in config["receivers"]}
    assert urls == {
        "meterwatch-webhook": "http://127.0.0.1:19095/alertmanager",
        "revenue-protection": "http://127.0.0.1:19095/alertmanager/revenue-protection",
        "oncall": "http://127.0.0.1:19095/alertmanager/oncall",
    }
    assert config["route"]["receiver"] == "meterwatch-webhook"


def test_an_outage_inhibits_every_theft_alert_a_gateway_only_its_own(rendered: Path) -> None:
    rules = yaml.safe_load(rendered.read_text())["inhibit_rules"]
    theft = ['alertname="ElectricityTheftLikely"']
    on_theft = [rule for rule in rules if rule["target_matchers"] == theft]
    fleet_wide = [rule for rule in on_theft if not rule.get("equal")]
    assert [rule["source_matchers"] for rule in fleet_wide] == [
        ['alertname="MeterwatchGatewayOutage"']
    ]
    assert sorted(tuple(rule["equal"]) for rule in on_theft if rule.get("equal")) == [
        ("feeder",),
        ("gateway",),
    ]
    # a worker down never holds back theft alerts (other workers keep raising them)
    assert not any("MeterwatchWorkerDown" in " ".join(rule["source_matchers"]) for rule in on_theft)
