"""The one frozen Settings object: defaults, environment overrides, clear errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from stream.settings import REPO_ROOT, Settings, env_var_table


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sees no METERWATCH_ variable unless it sets one (make test sets some)."""
    for name in list(os.environ):
        if name.startswith("METERWATCH_"):
            monkeypatch.delenv(name)


def test_defaults_match_the_contract_ports() -> None:
    settings = Settings()
    assert settings.kafka_bootstrap == "127.0.0.1:19092"
    assert settings.kafka_port == 19092
    assert settings.kafka_controller_port == 19093
    assert settings.redis_url == "redis://127.0.0.1:16379/0"
    assert settings.redis_port == 16379
    assert settings.prometheus_url == "http://127.0.0.1:19090"
    assert settings.prometheus_port == 19090
    assert settings.alertmanager_url == "http://127.0.0.1:19094"
    assert settings.alertmanager_port == 19094
    assert settings.webhook_port == 19095
    assert settings.metrics_port == 19100
    assert settings.topic_readings == "meter.readings"
    assert settings.stack_dir == REPO_ROOT / ".stack"
    assert settings.window_seconds % settings.hop_seconds == 0


def test_environment_overrides_with_type_conversion(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METERWATCH_KAFKA_BOOTSTRAP", "kafka-1:9092,kafka-2:9092")
    monkeypatch.setenv("METERWATCH_METRICS_PORT", "29100")
    monkeypatch.setenv("METERWATCH_STACK_DIR", "/tmp/mw-stack")
    monkeypatch.setenv("METERWATCH_STACK_START_TIMEOUT_S", "12.5")
    monkeypatch.setenv("METERWATCH_LOG_LEVEL", "debug")
    settings = Settings()
    assert settings.kafka_bootstrap == "kafka-1:9092,kafka-2:9092"
    assert settings.metrics_port == 29100
    assert settings.stack_dir == Path("/tmp/mw-stack")
    assert settings.stack_start_timeout_s == 12.5
    assert settings.log_level == "DEBUG"  # normalised
    # untouched fields keep their defaults
    assert settings.redis_port == 16379


@pytest.mark.parametrize(
    ("variable", "value", "field"),
    [
        ("METERWATCH_METRICS_PORT", "70000", "metrics_port"),
        ("METERWATCH_REDIS_PORT", "not-a-port", "redis_port"),
        ("METERWATCH_STACK_START_TIMEOUT_S", "0", "stack_start_timeout_s"),
        ("METERWATCH_LOG_LEVEL", "chatty", "log_level"),
        ("METERWATCH_READINGS_PARTITIONS", "0", "readings_partitions"),
    ],
)
def test_invalid_value_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, field: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as raised:
        Settings()
    message = str(raised.value)
    assert field in message  # names the setting ...
    assert value in message  # ... and the offending value
    assert [error["loc"] for error in raised.value.errors()] == [(field,)]


def test_hop_must_divide_the_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METERWATCH_WINDOW_SECONDS", "600")
    monkeypatch.setenv("METERWATCH_HOP_SECONDS", "70")
    with pytest.raises(ValidationError, match="hop_seconds=70 must divide window_seconds=600"):
        Settings()


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.metrics_port = 1  # type: ignore[misc]
    assert settings.metrics_port == 19100


def test_unknown_field_is_refused() -> None:
    with pytest.raises(ValidationError, match="metrics_prot"):
        Settings(metrics_prot=1)  # type: ignore[call-arg]


def test_env_var_table_documents_every_field() -> None:
    rows = env_var_table()
    assert {name for name, _, _ in rows} == {
        f"METERWATCH_{field.upper()}" for field in Settings.model_fields
    }
    assert all(description for _, _, description in rows)
