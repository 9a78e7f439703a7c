"""Faust's Kafka transport with the consumer's fetch wait as a setting.

Faust's aiokafka driver builds the worker's consumer with ``fetch_max_wait_ms=1500``
hard-wired (faust-streaming 0.11, ``AIOKafkaConsumerThread._create_worker_consumer``).
That is harmless for an idle agent, but not for one that holds the event loop while it
scores a micro-batch: measured with a paced producer at 1,400 messages/s (50,000
readings/s), the newest message of each micro-batch was already 1.0-1.5 s old when the
agent received it, against 21-24 ms for a no-op agent or with a 50 ms fetch wait. aiokafka
keeps one fetch in flight per broker and sends none while a partition of that broker
still has records the agent has not taken, so a fetch that the broker parks for up to
``fetch_max_wait_ms`` delays the next batch. The wait is therefore a setting
(``METERWATCH_CONSUMER_FETCH_MAX_WAIT_MS``) applied here, and this module is imported
only by :func:`stream.app.build_app` (it imports Faust).
"""

from __future__ import annotations

from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka


class SkipLostPartitionCommits:
    """Consumer-thread mixin: a commit whose offsets are all of partitions that a
    rebalance has just taken away is skipped (returns False, as faust does for a commit
    "already rebalanced"). faust-streaming 0.11 filters those offsets out and hands
    aiokafka the empty dict, which aiokafka rejects with ``ValueError({})``; faust then
    crashes the consumer thread and the worker dies (seen once in a fresh-clone run of
    the two-worker test). Nothing is lost: the partitions' new owner resumes from their
    committed offsets and engine snapshots."""

    async def _commit(self, offsets: Any) -> bool:
        assigned = self.assignment()  # type: ignore[attr-defined]
        if not any(tp in assigned for tp in offsets):
            return False
        return bool(await super()._commit(offsets))  # type: ignore[misc]


def fetch_wait_transport(fetch_max_wait_ms: int) -> type[faust_aiokafka.Transport]:
    """Faust's aiokafka transport whose worker consumer waits at most
    ``fetch_max_wait_ms`` for a fetch the broker cannot fill at once."""
    if fetch_max_wait_ms < 1:
        raise ValueError(f"fetch_max_wait_ms must be at least 1, got {fetch_max_wait_ms}")

    class FetchWaitConsumerThread(  # type: ignore[misc]
        SkipLostPartitionCommits, faust_aiokafka.AIOKafkaConsumerThread
    ):
        def _create_worker_consumer(self, transport: Any) -> Any:
            consumer = super()._create_worker_consumer(transport)
            set_fetch_max_wait(consumer, fetch_max_wait_ms)
            return consumer

    class FetchWaitConsumer(faust_aiokafka.Consumer):  # type: ignore[misc]
        def _new_consumer_thread(self) -> FetchWaitConsumerThread:
            return FetchWaitConsumerThread(self, loop=self.loop, beacon=self.beacon)

    class FetchWaitTransport(faust_aiokafka.Transport):  # type: ignore[misc]
        Consumer = FetchWaitConsumer

    return FetchWaitTransport


def set_fetch_max_wait(consumer: Any, fetch_max_wait_ms: int) -> None:
    """Set an aiokafka consumer's fetch wait before it starts (its fetcher is built in
    ``start()`` from this attribute). Fails loudly if aiokafka renames it, rather than
    silently keeping 1,500 ms."""
    if not hasattr(consumer, "_fetch_max_wait_ms"):
        raise RuntimeError(
            "aiokafka's AIOKafkaConsumer has no _fetch_max_wait_ms: "
            "stream.faust_transport needs updating for this aiokafka version"
        )
    consumer._fetch_max_wait_ms = int(fetch_max_wait_ms)  # noqa: SLF001


class App(faust.App):  # type: ignore[misc]
    """A Faust app whose consumer transport is given (see :func:`fetch_wait_transport`)."""

    def __init__(self, *args: Any, transport_class: type[Any], **kwargs: Any) -> None:
        self._mw_transport_class = transport_class
        super().__init__(*args, **kwargs)

    def _new_transport(self) -> Any:
        return self._mw_transport_class(self.conf.broker_consumer, self)
