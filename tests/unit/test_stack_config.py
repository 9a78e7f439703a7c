"""Rendering of the local stack's configs (deploy/local/stack.py), no servers."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from deploy.local.stack import (
    StackError,
    alertmanager_config,
    client_settings_elsewhere,
    kafka_properties,
    new_kafka_cluster_id,
    prometheus_config,
    render_template,
    webhook_url,
)
from stream.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        stack_dir=tmp_path / "stack",
        metrics_port=21100,
        prometheus_port=21090,
        alertmanager_port=21094,
        webhook_port=21095,
        kafka_port=21092,
        kafka_controller_port=21093,
    )


def test_prometheus_scrapes_the_worker_port_and_loads_the_rules(settings: Settings) -> None:
    config = yaml.safe_load(prometheus_config(settings, rules_dir=Path("/rules")))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["meterwatch-worker"]["static_configs"] == [{"targets": ["127.0.0.1:21100"]}]
    assert config["global"]["scrape_interval"] == "5s"
    assert config["rule_files"] == ["/rules/*.yml"]
    (alerting,) = config["alerting"]["alertmanagers"]
    assert alerting["static_configs"] == [{"targets": ["127.0.0.1:21094"]}]


def test_prometheus_scrapes_one_port_per_local_worker(settings: Settings) -> None:
    two = settings.model_copy(update={"local_workers": 2})
    config = yaml.safe_load(prometheus_config(two, rules_dir=Path("/rules")))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["meterwatch-worker"]["static_configs"] == [
        {"targets": ["127.0.0.1:21100", "127.0.0.1:21101"]}
    ]
    with pytest.raises(ValueError, match="past port 65535"):
        Settings(metrics_port=65535, local_workers=2)


def test_alertmanager_routes_to_the_webhook(settings: Settings) -> None:
    config = yaml.safe_load(alertmanager_config(settings))
    assert config["route"]["receiver"] == "meterwatch-webhook"
    assert config["route"]["group_wait"] == "1s"
    (receiver,) = [r for r in config["receivers"] if r["name"] == "meterwatch-webhook"]
    assert receiver["webhook_configs"][0]["url"] == webhook_url(settings)
    assert webhook_url(settings) == "http://127.0.0.1:21095/alertmanager"


def test_rendered_files_say_where_they_come_from_and_keep_no_placeholder(
    settings: Settings,
) -> None:
    for rendered in (prometheus_config(settings), alertmanager_config(settings)):
        assert rendered.startswith("# rendered from ")
        assert "${" not in rendered


def test_bad_placeholder_is_an_error(tmp_path: Path) -> None:
    template = tmp_path / "t.yml.tmpl"
    template.write_text("# doc: ${documented} is fine in the header\nport: ${port}\n")
    assert render_template(template, {"port": "1"}).endswith("port: 1\n")
    with pytest.raises(StackError, match="bad placeholder"):
        render_template(template, {})
    template.write_text("cost: $5\n")
    with pytest.raises(StackError, match="bad placeholder"):
        render_template(template, {})


def test_kafka_is_one_kraft_node_on_loopback(settings: Settings, tmp_path: Path) -> None:
    lines = kafka_properties(settings, tmp_path / "data").splitlines()
    props = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:21093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:21092,CONTROLLER://127.0.0.1:21093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:21092"
    assert props["log.dirs"] == str(tmp_path / "data")
    assert props["offsets.topic.replication.factor"] == "1"


def test_cluster_ids_are_kraft_shaped_and_random() -> None:
    ids = {new_kafka_cluster_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{22}", cluster_id) for cluster_id in ids)


@pytest.mark.parametrize(
    ("tool", "args", "render"),
    [
        ("promtool", ["check", "config", "--syntax-only"], prometheus_config),
        ("amtool", ["check-config"], alertmanager_config),
    ],
)
def test_rendered_configs_pass_the_official_checker(
    settings: Settings, tmp_path: Path, tool: str, args: list[str], render: object
) -> None:
    binary = shutil.which(tool)
    if binary is None:
        pytest.skip(f"{tool} not installed: run `make sysdeps`")
    path = tmp_path / f"{tool}.yml"
    path.write_text(render(settings))  # type: ignore[operator]
    checked = subprocess.run(
        [binary, *args, str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_client_settings_that_miss_the_stack_are_named(tmp_path: Path) -> None:
    defaults = Settings(stack_dir=tmp_path)
    assert client_settings_elsewhere(defaults) == []
    moved_port = Settings(stack_dir=tmp_path, kafka_port=29092, redis_port=26379)
    assert client_settings_elsewhere(moved_port) == [
        "METERWATCH_KAFKA_BOOTSTRAP=127.0.0.1:19092 (stack: 127.0.0.1:29092)",
        "METERWATCH_REDIS_URL=redis://127.0.0.1:16379/0 (stack: 127.0.0.1:26379)",
    ]
    consistent = Settings(
        stack_dir=tmp_path,
        kafka_port=29092,
        kafka_bootstrap="localhost:29092",
        prometheus_port=29090,
        prometheus_url="http://localhost:29090",
    )
    assert client_settings_elsewhere(consistent) == []
    existing = Settings(stack_dir=tmp_path, alertmanager_url="http://am.example:9093")
    assert client_settings_elsewhere(existing) == [
        "METERWATCH_ALERTMANAGER_URL=http://am.example:9093 (stack: 127.0.0.1:19094)"
    ]
