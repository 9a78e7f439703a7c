"""Kafka outputs: event updates to ``theft.events`` (key event_id) and rejections to the DLQ.

Kafka gives at-least-once here: after a crash, updates between the last snapshot
and the crash are published again with the same (event_id, version), so consumers
of ``theft.events`` keep the highest version per event_id (the Redis sink does).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson

from stream.sinks.events import event_json
from stream.sinks.retry import retry_until_done

# send(topic, key, value) -> awaitable that resolves when the broker has the record
Send = Callable[[str, bytes | None, bytes], Awaitable[Any]]


def rejection_record(rejection: Any) -> dict[str, Any]:
    """``{"reason", "detail", "raw"}`` of a rejection; raw bytes become text."""
    if isinstance(rejection, dict):
        reason, detail, raw = rejection["reason"], rejection.get("detail"), rejection.get("raw")
    else:
        reason = rejection.reason
        detail = getattr(rejection, "detail", "")
        raw = getattr(rejection, "raw", None)
    if isinstance(raw, bytes | bytearray | memoryview):
        raw = bytes(raw).decode("utf-8", errors="replace")
    return {"reason": str(reason), "detail": "" if detail is None else str(detail), "raw": raw}


class KafkaOutputSink:
    def __init__(
        self,
        send: Send,
        *,
        events_topic: str,
        dlq_topic: str,
        on_retry: Callable[[str], None],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_delay_s: float = 5.0,
    ) -> None:
        self._send = send
        self.events_topic = events_topic
        self.dlq_topic = dlq_topic
        self._on_retry = on_retry
        self._sleep = sleep
        self._max_delay_s = max_delay_s

    async def publish(self, events: Sequence[dict[str, Any]], rejections: Sequence[Any]) -> None:
        records: list[tuple[str, bytes | None, bytes]] = [
            (self.events_topic, str(e["event_id"]).encode(), event_json(e)) for e in events
        ]
        records += [
            (self.dlq_topic, None, orjson.dumps(rejection_record(r), default=str))
            for r in rejections
        ]
        if not records:
            return

        async def attempt() -> None:
            await asyncio.gather(*(self._send(t, k, v) for t, k, v in records))

        await retry_until_done(
            attempt, sink="kafka", on_retry=self._on_retry, sleep=self._sleep,
            max_delay_s=self._max_delay_s,
        )  # fmt: skip
