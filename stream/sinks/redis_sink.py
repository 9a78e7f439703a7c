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
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from stream.sinks.events import event_json
from stream.sinks.retry import retry_until_done

ALERTS_STREAM = "mw:alerts"
WINDOW_SCORES = ("hybrid", "hst", "ae")
WINDOW_MEANS = ("p", "v", "i", "pf")
WINDOW_CHUNK = 2000
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


# Keys are built inside the script (standalone Redis; not for Redis Cluster). A window
# already in the stream (same or older ID: a replay) is skipped, not an error.
_WRITE_WINDOWS = """
local maxlen, ttl = ARGV[1], ARGV[2]
for k = 3, #ARGV do
  local f = {}
  for part in string.gmatch(ARGV[k], '([^\t]*)\t?') do f[#f + 1] = part end
  local meter, gateway, ts = f[1], f[2], f[3]
  local key = 'mw:meter:' .. meter .. ':windows'
  local ok = pcall(redis.call, 'XADD', key, 'MAXLEN', '~', maxlen, ts .. '-1',
    'ts_ms', ts, 'hybrid', f[4], 'hst', f[5], 'ae', f[6],
    'p', f[7], 'v', f[8], 'i', f[9], 'pf', f[10])
  if ok then
    redis.call('EXPIRE', key, ttl)
    redis.call('HSET', 'mw:meter:' .. meter, 'meter_id', meter, 'gateway_id', gateway,
      'last_window_end_ms', ts, 'last_hybrid', f[4])
  end
end
return #ARGV - 2
"""


@dataclass(frozen=True)
class WindowBatch:
    """Scored windows as columns (one entry per window), for drill-down."""

    meter_id: Sequence[Any]
    end_ms: Sequence[int]
    scores: dict[str, Sequence[float]]
    means: dict[str, Sequence[float]] = field(default_factory=dict)
    gateway_id: Sequence[Any] | None = None

    def __len__(self) -> int:
        return len(self.end_ms)

    def packed(self) -> list[str]:
        """One tab-separated string per window, in the field order of the Lua script."""
        n = len(self)
        columns: list[list[str]] = [
            [str(m) for m in _as_list(self.meter_id)],
            [("" if g is None else str(g)) for g in _as_list(self.gateway_id)]
            if self.gateway_id is not None
            else [""] * n,
            [str(int(t)) for t in _as_list(self.end_ms)],
        ]
        for name in WINDOW_SCORES:
            values = self.scores.get(name)
            columns.append([f"{v:.2f}" for v in _as_list(values)] if values is not None
                           else ["nan"] * n)  # fmt: skip
        for name in WINDOW_MEANS:
            values = self.means.get(name)
            columns.append([f"{v:.4g}" for v in _as_list(values)] if values is not None
                           else ["nan"] * n)  # fmt: skip
        return ["\t".join(fields) for fields in zip(*columns, strict=True)]


def _as_list(values: Any) -> list[Any]:
    return values.tolist() if hasattr(values, "tolist") else list(values)


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
        self._windows_script = client.register_script(_WRITE_WINDOWS)

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

    async def write_windows(self, windows: WindowBatch) -> None:
        """Recent windows per meter; replays are rejected by Redis (ID = window end ms).

        One scored window per meter and hop is a lot of small writes, so windows go in
        chunks to a Lua script, one tab-separated argument per window: the Python cost is
        per window, not per field and command.
        """
        packed = windows.packed() if len(windows) else []
        for start in range(0, len(packed), WINDOW_CHUNK):
            chunk = packed[start : start + WINDOW_CHUNK]

            async def attempt(chunk: list[str] = chunk) -> None:
                await self._windows_script(
                    keys=[], args=[self._meter_stream_maxlen, self._meter_ttl_s, *chunk]
                )

            await retry_until_done(
                attempt, sink="redis", on_retry=self._on_retry, sleep=self._sleep,
                max_delay_s=self._max_delay_s,
            )  # fmt: skip
