"""The worker's Kafka consumer takes its fetch wait from the settings, not Faust's 1,500 ms
(see ``stream.faust_transport`` for the latency it caused). No broker is contacted: the
aiokafka consumer is built but never started."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_stream_app import build

from stream.faust_transport import fetch_wait_transport, set_fetch_max_wait


def test_the_worker_consumer_waits_at_most_the_configured_fetch_wait(tmp_path: Path) -> None:
    app, _, _ = build(tmp_path, consumer_fetch_max_wait_ms=37)

    async def built_consumer_wait() -> int:
        thread = app.consumer._thread  # noqa: SLF001 - the thread Faust builds it in
        consumer = thread._create_worker_consumer(app.transport)  # noqa: SLF001
        try:
            return int(consumer._fetch_max_wait_ms)  # noqa: SLF001
        finally:
            await consumer.stop()

    assert asyncio.run(built_consumer_wait()) == 37


def test_the_default_fetch_wait_is_far_below_fausts(tmp_path: Path) -> None:
    app, _, _ = build(tmp_path)
    assert app.conf.broker_consumer  # the transport is the configured broker's
    assert 1 <= app.mw_worker.settings.consumer_fetch_max_wait_ms <= 250


def test_a_fetch_wait_below_one_millisecond_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        fetch_wait_transport(0)


def test_an_aiokafka_without_the_attribute_fails_loudly() -> None:
    with pytest.raises(RuntimeError, match="_fetch_max_wait_ms"):
        set_fetch_max_wait(SimpleNamespace(), 50)
    consumer = SimpleNamespace(_fetch_max_wait_ms=1500)
    set_fetch_max_wait(consumer, 80)
    assert consumer._fetch_max_wait_ms == 80  # noqa: SLF001
