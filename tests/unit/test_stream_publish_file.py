"""Publishing a readings file: the stream gets exactly the rows `meterwatch replay` reads."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from simulator.config import FleetConfig
from simulator.fleet import simulate, write_files
from simulator.publish import encode_table, publish_file, read_readings_file
from stream.settings import Settings


class RecordingProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []

    def send(self, topic: str, key: bytes, value: bytes) -> None:
        self.sent.append((topic, key, value))

    def flush(self) -> None:
        pass


def readings_of(values: list[bytes]) -> list[tuple[str, int, float]]:
    out = []
    for value in values:
        body = orjson.loads(value)
        for r in body.get("readings", [body]):
            out.append((r["meter_id"], r["ts"], r["p"]))
    return out


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_a_written_fleet_file_publishes_the_simulators_rows_in_order(
    tmp_path: Path, suffix: str
) -> None:
    config = FleetConfig(meters=6, days=0.05, cadence_s=60, seed=3, malformed_share=0.0)
    path = tmp_path / f"fleet{suffix}"
    rows, _ = write_files(config, path)
    producer = RecordingProducer()
    settings = Settings(topic_readings="readings.test")
    stats = publish_file(settings, path, max_batch=50, producer=producer)

    table, _ = simulate(config)
    expected = [m.value for m in encode_table(table, "batch", 50)]
    assert stats.readings == rows == table.num_rows
    assert {topic for topic, _, _ in producer.sent} == {"readings.test"}
    assert readings_of([v for _, _, v in producer.sent]) == readings_of(expected)


def test_a_file_of_another_kind_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "fleet.json"
    path.write_text("[]", encoding="utf-8")
    with pytest.raises(ValueError, match=r"\.parquet or \.csv"):
        read_readings_file(path)
