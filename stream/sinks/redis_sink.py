"""Redis sink: alert stream, event hashes, risk ranking, latest meter state, windows.

Layout (contracts section 7, README "Redis layout"):

- ``mw:event:{event_id}``          hash, the latest version of the event (fields below + ``event``)
- ``mw:alerts``                     stream, one entry per alert raise / update / resolve
- ``mw:meter:{meter_id}:events``    stream, one entry per event update of that meter (EXPIRE)
- ``mw:risk``                       sorted set meter_id -> risk 0-100 (highest peak score seen)
- ``mw:meter:{meter_id}``           hash: meter_id, gateway_id, risk, last_ts_ms, last_event_id, ...
- ``mw:meter:{meter_id}:windows``   stream, one entry per scored window (ID = window end ms; EXPIRE)

Idempotency: every event update runs one Lua script that compares its ``version``
with the one stored in ``mw:event:{event_id}`` and writes nothing when it is not
newer, so the hash, both streams and the ranking are written exactly once per
(event_id, version) even when a restarted worker replays outputs. Window entries
use the window end as the stream ID, so a replayed window is rejected by Redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stream.sinks.events import event_json
from stream.sinks.retry import retry_until_done

ALERTS_STREAM = "mw:alerts"
RISK_ZSET = "mw:risk"

_UPSERT_EVENT = """
local current = redis.call('HGET', KEYS[1], 'version')
if current and tonumber(current) >= tonumber(ARGV[1]) then
  return 0
end
local fields = {}
for i = 9, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*', unpack(fields))
redis.call('EXPIRE', KEYS[2], ARGV[7])
redis.call('ZADD', KEYS[3], 'GT', ARGV[3], ARGV[4])
local risk = redis.call('ZSCORE', KEYS[3], ARGV[4])
local last = tonumber(redis.call('HGET', KEYS[4], 'last_ts_ms') or '0')
local ts = tonumber(ARGV[8])
if ts > last then last = ts end
redis.call('HSET', KEYS[4], 'meter_id', ARGV[4], 'gateway_id', ARGV[5], 'risk', risk,
  'last_ts_ms', string.format('%d', last), 'last_event_id', fields[2])
if ARGV[2] == '1' then
  return redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[6], '*', unpack(fields))
end
return 1
"""


@dataclass(frozen=True)
class WindowRow:
    """One scored window of one meter, for drill-down."""

    meter_id: str
    gateway_id: str
    end_ms: int
    scores: dict[str, float]
    means: dict[str, float]


def iso_to_ms(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, int | float):
        return int(value)
    return int(datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp() * 1000)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def stream_fields(event: dict[str, Any]) -> list[str]:
    """Flat field/value list of an event for the hash and the streams (strings only)."""
    cue_ids = ",".join(str(cue.get("id", "")) for cue in event.get("cues") or [])
    return [
        "event_id", str(event["event_id"]),
        "version", str(int(event["version"])),
        "meter_id", str(event["meter_id"]),
        "gateway_id", str(event.get("gateway_id") or ""),
        "severity", str(event.get("severity", "")),
        "status", str(event.get("status", "")),
        "detected_at", _text(event.get("detected_at")),
        "theft_likely", "1" if event.get("theft_likely") else "0",
        "peak_score", f"{float(event.get('peak_score') or 0.0):.3f}",
        "est_unbilled_kwh", f"{float(event.get('est_unbilled_kwh') or 0.0):.3f}",
        "cues", cue_ids,
        "event", event_json(event).decode(),
    ]  # fmt: skip


class RedisSink:
    """Idempotent writer of event updates and windows to Redis (``redis.asyncio`` client)."""

    def __init__(
        self,
        client: Any,
        *,
        on_retry: Callable[[str], None],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        alerts_maxlen: int = 100_000,
        meter_stream_maxlen: int = 200,
        meter_ttl_s: int = 14 * 86_400,
        max_delay_s: float = 2.0,
    ) -> None:
        self._client = client
        self._on_retry = on_retry
        self._sleep = sleep
        self._alerts_maxlen = alerts_maxlen
        self._meter_stream_maxlen = meter_stream_maxlen
        self._meter_ttl_s = meter_ttl_s
        self._max_delay_s = max_delay_s
        self._script = client.register_script(_UPSERT_EVENT)

    async def write_events(
        self, updates: Sequence[dict[str, Any]], alert_keys: set[tuple[str, int]]
    ) -> list[dict[str, Any]]:
        """Write event updates; return the alerts that were newly added to ``mw:alerts``."""
        if not updates:
            return []

        async def attempt() -> list[Any]:
            pipe = self._client.pipeline(transaction=False)
            for event in updates:
                await self._queue_upsert(pipe, event, alert_keys)
            result: list[Any] = await pipe.execute()
            return result

        results = await retry_until_done(
            attempt, sink="redis", on_retry=self._on_retry, sleep=self._sleep,
            max_delay_s=self._max_delay_s,
        )  # fmt: skip
        written = []
        for event, result in zip(updates, results, strict=True):
            if (str(event["event_id"]), int(event["version"])) in alert_keys and result not in (
                0,
                1,
            ):
                written.append(event)
        return written

    async def _queue_upsert(
        self, pipe: Any, event: dict[str, Any], alert_keys: set[tuple[str, int]]
    ) -> None:
        event_id = str(event["event_id"])
        version = int(event["version"])
        meter_id = str(event["meter_id"])
        is_alert = (event_id, version) in alert_keys
        risk = float(event.get("peak_score") or 0.0)
        # With a pipeline as client, awaiting the script only queues its EVALSHA.
        await self._script(
            keys=[
                f"mw:event:{event_id}",
                f"mw:meter:{meter_id}:events",
                RISK_ZSET,
                f"mw:meter:{meter_id}",
                ALERTS_STREAM,
            ],
            args=[
                version,
                "1" if is_alert else "0",
                risk,
                meter_id,
                str(event.get("gateway_id") or ""),
                self._alerts_maxlen if is_alert else self._meter_stream_maxlen,
                self._meter_ttl_s,
                iso_to_ms(event.get("end") or event.get("start")),
                *stream_fields(event),
            ],
            client=pipe,
        )

    async def write_windows(self, rows: Iterable[WindowRow]) -> None:
        """Recent windows per meter; replays are rejected by Redis (ID = window end ms)."""
        rows = list(rows)
        if not rows:
            return

        async def attempt() -> None:
            pipe = self._client.pipeline(transaction=False)
            for row in rows:
                key = f"mw:meter:{row.meter_id}:windows"
                fields: dict[str, str] = {"ts_ms": str(row.end_ms)}
                fields.update({k: f"{v:.3f}" for k, v in row.scores.items()})
                fields.update({k: f"{v:.4f}" for k, v in row.means.items()})
                pipe.xadd(
                    key, fields, id=f"{row.end_ms}-1", maxlen=self._meter_stream_maxlen,
                    approximate=True,
                )  # fmt: skip
                pipe.expire(key, self._meter_ttl_s)
                pipe.hset(
                    f"mw:meter:{row.meter_id}",
                    mapping={
                        "meter_id": row.meter_id,
                        "gateway_id": row.gateway_id,
                        "last_window_end_ms": str(row.end_ms),
                        "last_hybrid": f"{row.scores.get('hybrid', 0.0):.3f}",
                    },
                )
            results = await pipe.execute(raise_on_error=False)
            for result in results:
                # "equal or smaller than the target stream top item" = replayed window: fine.
                if isinstance(result, Exception) and "smaller" not in str(result):
                    raise result

        await retry_until_done(
            attempt, sink="redis", on_retry=self._on_retry, sleep=self._sleep,
            max_delay_s=self._max_delay_s,
        )  # fmt: skip
