"""The worker's Kafka consumer takes its fetch wait from the settings, not Faust's 1,500 ms
(see ``stream.faust_transport`` for the latency it caused). No broker is contacted: the
aiokafka consumer is built but never started."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_stream_app import build

from stream.faust_transport import (
    SkipLostPartitionCommits,
    fetch_wait_transport,
    set_fetch_max_wait,
)


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


class _FaustThread:
    """Stands in for Faust's consumer thread: records what reaches its commit."""

    def __init__(self, assigned: set[str]) -> None:
        self.assigned = assigned
        self.committed: list[dict[str, int]] = []

    def assignment(self) -> set[str]:
        return self.assigned

    async def _commit(self, offsets: dict[str, int]) -> bool:
        self.committed.append(dict(offsets))
        return True


class _Thread(SkipLostPartitionCommits, _FaustThread):
    pass


def test_a_commit_of_partitions_lost_to_a_rebalance_is_skipped_not_a_crash() -> None:
    thread = _Thread(assigned={"tp-2"})
    # every offset is of a partition this worker no longer holds: nothing reaches aiokafka
    assert asyncio.run(thread._commit({"tp-0": 5, "tp-1": 9})) is False  # noqa: SLF001
    assert thread.committed == []
    # an offset of a partition it holds is committed as before (Faust filters the rest)
    assert asyncio.run(thread._commit({"tp-1": 9, "tp-2": 4})) is True  # noqa: SLF001
    assert thread.committed == [{"tp-1": 9, "tp-2": 4}]


def test_the_worker_consumer_thread_skips_lost_partition_commits(tmp_path: Path) -> None:
    app, _, _ = build(tmp_path)
    assert isinstance(app.consumer._thread, SkipLostPartitionCommits)  # noqa: SLF001
