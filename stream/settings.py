"""One frozen, typed settings object for every meterwatch process.

Every field maps to an environment variable ``METERWATCH_<FIELD_NAME>`` (upper case),
for example ``METERWATCH_KAFKA_BOOTSTRAP``. The README lists them all. Build a
``Settings`` once at the edge (CLI entry point, test fixture) and pass it in; code
below the edge never reads ``os.environ``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """meterwatch configuration. Environment prefix: ``METERWATCH_``."""

    model_config = SettingsConfigDict(
        env_prefix="METERWATCH_", frozen=True, extra="forbid", validate_default=True
    )

    # --- Kafka -------------------------------------------------------------------
    kafka_bootstrap: str = Field("127.0.0.1:19092", description="Kafka bootstrap servers")
    topic_readings: str = Field("meter.readings", description="Topic gateways publish to")
    topic_dlq: str = Field("meter.readings.dlq", description="Dead-letter topic for bad input")
    topic_events: str = Field("theft.events", description="Event updates, keyed by event_id")
    topic_inspections: str = Field(
        "inspection.outcomes", description="Field inspection outcomes (feedback)"
    )
    readings_partitions: int = Field(4, ge=1, description="Partitions of the readings topic")

    # --- Redis, Alertmanager, Prometheus -----------------------------------------
    redis_url: str = Field("redis://127.0.0.1:16379/0", description="Redis for events and state")
    alertmanager_url: str = Field("http://127.0.0.1:19094", description="Alertmanager base URL")
    prometheus_url: str = Field("http://127.0.0.1:19090", description="Prometheus base URL")
    metrics_port: int = Field(19100, ge=1, le=65535, description="Worker /metrics port")
    local_workers: int = Field(
        1,
        ge=1,
        le=64,
        description="Workers the local stack's Prometheus scrapes, on consecutive ports from "
        "METERWATCH_METRICS_PORT (one per core)",
    )

    # --- Local stack (deploy/local) ----------------------------------------------
    stack_dir: Path = Field(REPO_ROOT / ".stack", description="Data, logs and pids of the stack")
    kafka_port: int = Field(19092, ge=1, le=65535, description="Local Kafka broker port")
    kafka_controller_port: int = Field(19093, ge=1, le=65535, description="KRaft controller port")
    redis_port: int = Field(16379, ge=1, le=65535, description="Local Redis port")
    prometheus_port: int = Field(19090, ge=1, le=65535, description="Local Prometheus port")
    alertmanager_port: int = Field(19094, ge=1, le=65535, description="Local Alertmanager port")
    webhook_port: int = Field(
        19095, ge=1, le=65535, description="Port of the webhook receiver Alertmanager routes to"
    )
    stack_start_timeout_s: float = Field(90.0, gt=0, description="Health-check timeout per server")

    # --- Engine ------------------------------------------------------------------
    window_seconds: int = Field(600, ge=60, description="Window length per meter")
    hop_seconds: int = Field(60, ge=1, description="Window hop (scoring period)")
    allowed_lateness_seconds: int = Field(120, ge=0, description="Late readings reordered within")
    warmup_seconds: int = Field(86_400, ge=0, description="Per-meter warm-up before alerting")
    model_artifact: Path = Field(
        REPO_ROOT / "detectors" / "artifacts" / "autoencoder-v2.npz",
        description="Frozen autoencoder artifact",
    )
    thresholds_file: Path = Field(
        REPO_ROOT / "rules" / "thresholds.toml", description="Rule thresholds (with units)"
    )

    # --- Worker ------------------------------------------------------------------
    app_id: str = Field("meterwatch", description="Faust app id / consumer group")
    batch_size: int = Field(2000, ge=1, description="Messages per micro-batch (take n)")
    batch_within_seconds: float = Field(0.5, gt=0, description="Micro-batch max wait")
    consumer_fetch_max_wait_ms: int = Field(
        100,
        ge=1,
        le=30_000,
        description="Longest the broker may hold a worker's fetch (Faust hard-wires 1500)",
    )
    snapshot_interval_seconds: float = Field(
        60.0, gt=0, description="Engine state checkpoint interval"
    )
    log_level: str = Field("INFO", description="Python log level")

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"unknown log level {value!r}")
        return level

    @field_validator("local_workers")
    @classmethod
    def _worker_ports_exist(cls, workers: int, info: object) -> int:
        port = getattr(info, "data", {}).get("metrics_port")
        if port is not None and port + workers - 1 > 65535:
            raise ValueError(f"{workers} workers from port {port} run past port 65535")
        return workers

    @field_validator("hop_seconds")
    @classmethod
    def _hop_divides_window(cls, hop: int, info: object) -> int:
        window = getattr(info, "data", {}).get("window_seconds")
        if window is not None and window % hop != 0:
            raise ValueError(f"hop_seconds={hop} must divide window_seconds={window}")
        return hop


def env_var_table() -> list[tuple[str, str, str]]:
    """(environment variable, default, description) for every setting, for the README."""
    rows = []
    for name, field in Settings.model_fields.items():
        default = field.default
        if isinstance(default, Path) and default.is_relative_to(REPO_ROOT):
            default = default.relative_to(REPO_ROOT)
        rows.append((f"METERWATCH_{name.upper()}", str(default), field.description or ""))
    return rows
