"""The local stack's first Kafka start formats the KRaft storage with a random cluster id.
One id in 64 starts with "-" (URL-safe base64), which the storage tool's parser read as an
option: that stack never started. Formatted here with the real tool and such an id."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.local.stack import StackLayout, build_servers
from stream.settings import Settings

pytestmark = pytest.mark.integration


def test_a_cluster_id_that_starts_with_a_dash_formats_the_storage(tmp_path: Path) -> None:
    shared_libs = StackLayout(Settings().stack_dir).kafka_libs
    if not any(shared_libs.glob("kafka_2.13-*.jar")):
        pytest.skip(f"no Kafka jars in {shared_libs}: run `make sysdeps`")
    settings = Settings(stack_dir=tmp_path / "stack")
    layout = StackLayout(settings.stack_dir)
    layout.kafka_libs.parent.mkdir(parents=True)
    layout.logs.mkdir(parents=True)  # stack up makes it before preparing the servers
    layout.kafka_libs.symlink_to(shared_libs, target_is_directory=True)
    cluster_id = "-cX8z4wGmVForZY1ZyyPOg"  # the id a fresh clone drew on 2026-11-23
    (layout.home("kafka") / "cluster.id").write_text(cluster_id + "\n", encoding="ascii")
    (kafka,) = [server for server in build_servers(settings) if server.name == "kafka"]
    kafka.prepare()
    meta = (layout.home("kafka") / "data" / "meta.properties").read_text(encoding="utf-8")
    assert f"cluster.id={cluster_id}" in meta
