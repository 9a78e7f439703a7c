"""``meterwatch train-ae`` on a saved feature matrix: reproducible, verified, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from detectors.autoencoder import load_artifact
from detectors.cli import train_ae_command

NAMES = ("ratio", "step", "flat", "zero_share")


@pytest.fixture()
def app() -> typer.Typer:
    application = typer.Typer()
    application.command()(train_ae_command)
    return application


@pytest.fixture()
def features_file(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    load = rng.lognormal(0, 0.3, 900)
    matrix = np.column_stack(
        [load, 0.3 * load + rng.normal(0, 0.02, 900), rng.random(900) * 0.1, np.zeros(900)]
    )
    path = tmp_path / "normal.npz"
    meters = np.array([f"MTR-{i % 30:03d}" for i in range(900)])
    np.savez(path, features=matrix, feature_names=np.array(NAMES), meter_ids=meters)
    return path


def test_training_twice_reproduces_the_content_hash(
    app: typer.Typer, features_file: Path, tmp_path: Path
) -> None:
    hashes = []
    for name in ("one.npz", "two.npz"):
        out = tmp_path / name
        result = CliRunner().invoke(
            app, ["--features", str(features_file), "--out", str(out), "--epochs", "3"]
        )
        assert result.exit_code == 0, result.output
        assert "content_hash=" in result.output
        payload = load_artifact(out)
        assert payload["recipe"]["inputs"][0]["name"] == "normal.npz"
        assert payload["recipe"]["epochs"] == 3
        hashes.append(payload["content_hash"])
    assert hashes[0] == hashes[1]
    assert (tmp_path / "one.npz").read_bytes() == (tmp_path / "two.npz").read_bytes()


def test_input_errors_exit_2_with_one_line(app: typer.Typer, tmp_path: Path) -> None:
    runner = CliRunner()
    neither = runner.invoke(app, ["--out", str(tmp_path / "x.npz")])
    assert neither.exit_code == 2 and "either --data" in neither.output
    missing = runner.invoke(app, ["--features", str(tmp_path / "nope.npz")])
    assert missing.exit_code == 2 and "no such file" in missing.output
    tiny = tmp_path / "tiny.npz"
    np.savez(tiny, features=np.zeros((10, 2)), feature_names=np.array(["a", "b"]))
    refused = runner.invoke(app, ["--features", str(tiny), "--out", str(tmp_path / "t.npz")])
    assert refused.exit_code == 2 and "too few normal windows" in refused.output
    assert not (tmp_path / "t.npz").exists()


def test_unusable_inputs_exit_2(app: typer.Typer, tmp_path: Path) -> None:
    runner = CliRunner()
    not_npz = tmp_path / "bad.npz"
    not_npz.write_bytes(b"not a zip")
    bad = runner.invoke(app, ["--features", str(not_npz), "--out", str(tmp_path / "a.npz")])
    assert bad.exit_code == 2 and "unusable training input" in bad.output
    no_key = tmp_path / "nokey.npz"
    np.savez(no_key, something=np.zeros(3))
    missing = runner.invoke(app, ["--features", str(no_key), "--out", str(tmp_path / "b.npz")])
    assert missing.exit_code == 2 and "unusable training input" in missing.output
    readings = tmp_path / "readings.csv"
    readings.write_text("meter_id,ts\nM1,1767571200000\n")
    no_columns = runner.invoke(app, ["--data", str(readings), "--out", str(tmp_path / "c.npz")])
    assert no_columns.exit_code == 2 and "unusable training input" in no_columns.output
