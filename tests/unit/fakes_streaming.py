"""In-memory stand-ins for the streaming worker's unit tests (mocks live only in tests/unit).

``ToyEngine`` follows the engine API of contracts section 3 with a trivial, meter-local
and deterministic rule (a reading with negative power opens an event, the next
non-negative one closes it), so worker behaviour around it can be checked exactly.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import orjson


class ToyEngine:
    def __init__(self, state: dict[str, Any] | None = None) -> None:
        self.state: dict[str, Any] = state or {}

    @property
    def meters_tracked(self) -> int:
        return len(self.state)

    def state_bytes(self) -> int:
        return 100 * len(self.state)

    def fleet_gauges(self) -> dict[str, int]:
        return {"meters_reporting": len(self.state), "gateways_seen": 0, "gateways_silent": 0}

    def process(self, batch: Any) -> SimpleNamespace:
        updates: list[dict[str, Any]] = []
        alerts: list[dict[str, Any]] = []
        order = np.lexsort((batch.ts_ms, batch.meter_id.astype(str)))
        for k in order:
            meter, ts, p = str(batch.meter_id[k]), int(batch.ts_ms[k]), float(batch.p[k])
            m = self.state.setdefault(meter, {"n": 0, "sum_p": 0.0, "open": None})
            m["n"] += 1
            m["sum_p"] += p
            if p < 0 and m["open"] is None:
                m["open"] = {"event_id": f"{meter}:{ts}", "version": 1, "start": ts}
                event = self._event(meter, m["open"], ts, "open")
                updates.append(event)
                alerts.append(event)
            elif p < 0:
                m["open"]["version"] += 1
                updates.append(self._event(meter, m["open"], ts, "open"))
            elif m["open"] is not None:
                m["open"]["version"] += 1
                event = self._event(meter, m["open"], ts, "closed")
                updates.append(event)
                alerts.append(event)
                m["open"] = None
        n = len(batch)
        return SimpleNamespace(
            rejected=[],
            duplicates=0,
            readings_accepted=n,
            windows_scored=n,
            window_end_ms=np.asarray(batch.ts_ms),
            scores={"hybrid": np.full(n, 50.0), "hst": np.full(n, 10.0), "ae": np.zeros(n)},
            event_updates=updates,
            alerts=alerts,
        )

    @staticmethod
    def _event(meter: str, open_: dict[str, Any], ts: int, status: str) -> dict[str, Any]:
        return {
            "event_id": open_["event_id"],
            "version": open_["version"],
            "meter_id": meter,
            "gateway_id": "GW-1",
            "start": open_["start"],
            "end": ts,
            "detected_at": open_["start"],
            "status": status,
            "peak_score": 90.0,
            "mean_score": 80.0,
            "severity": "high",
            "theft_likely": True,
            "cues": [{"id": "reverse_flow", "name": "Reverse flow", "evidence": {"p_w": -5.0}}],
            "top_features": [{"name": "p_mean", "contribution": 0.7}],
            "est_unbilled_kwh": 1.5,
            "model_version": "toy-1",
        }

    def snapshot(self) -> bytes:
        return orjson.dumps(self.state)

    @classmethod
    def restore(cls, blob: bytes) -> ToyEngine:
        return cls(orjson.loads(blob))


class MemorySnapshotStore:
    def __init__(self) -> None:
        self.blobs: dict[int, bytes] = {}
        self.log: list[tuple[str, int]] = []

    async def load(self, partition: int) -> bytes | None:
        return self.blobs.get(partition)

    async def save(self, partition: int, blob: bytes) -> None:
        self.blobs[partition] = blob
        self.log.append(("save", partition))


class MemoryRedisSink:
    """Same contract as RedisSink: one write per (event_id, version), alerts to a stream."""

    def __init__(self, fail_times: int = 0) -> None:
        self.versions: dict[str, int] = {}
        self.alert_stream: list[tuple[str, int]] = []
        self.windows: list[Any] = []
        self.fail_times = fail_times
        self.calls = 0

    async def write_events(
        self, updates: list[dict[str, Any]], alert_keys: set[tuple[str, int]]
    ) -> list[dict[str, Any]]:
        self.calls += 1
        written = []
        for event in updates:
            key = (str(event["event_id"]), int(event["version"]))
            if self.versions.get(key[0], -1) >= key[1]:
                continue
            self.versions[key[0]] = key[1]
            if key in alert_keys:
                self.alert_stream.append(key)
                written.append(event)
        return written

    async def write_windows(self, windows: Any) -> None:
        self.windows.extend(windows.packed())


def reading(meter: str, ts: int, p: float, **extra: Any) -> bytes:
    body = {"meter_id": meter, "ts": ts, "p": p, "v": 230.0, "i": abs(p) / 230.0, "pf": 0.95}
    body.update(extra)
    return orjson.dumps(body)


def gateway_batch(gateway: str, readings: list[bytes]) -> bytes:
    return orjson.dumps({"gateway_id": gateway, "readings": [orjson.loads(r) for r in readings]})
