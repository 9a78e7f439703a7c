"""Alertmanager v2 API client for theft alerts.

Each ``theft_likely`` event becomes one Alertmanager alert identified by its
labels (``alertname``, ``event_id``, ``meter_id``, ``severity``, ``cue``,
``gateway``); annotations carry the evidence. Alertmanager expires an alert that
is not re-sent within its ``resolve_timeout`` (5 min by default), so open alerts
are re-posted every ``repost_interval_s``; when the event closes the alert is sent
once more with ``endsAt`` = now, which resolves it.

``startsAt``/``endsAt`` are wall-clock times of the worker (Alertmanager compares
them with its own clock); the event's own times (event time) are annotations.

Two things Alertmanager does that shape this sink:

- It never notifies a group it first sees with resolved alerts only (its dedup stage
  needs a firing alert before a resolved one is news). An event that opens and closes
  within seconds of wall time (a backlog being caught up, a short theft) would then never
  reach on-call. So a resolve is held until the alert has been firing for at least
  ``min_firing_s`` (default one repost interval, longer than any sane ``group_wait``);
  until then the closed event is re-posted as firing, and :meth:`repost_open` resolves it.
  A held resolve is an open alert with a closed event, so it rides in the snapshot too.
- An alert's identity is its label set, and ``severity`` and ``cue`` are labels. When an
  update changes them, the previous label set is resolved in the same post; otherwise it
  would stay firing until Alertmanager's ``resolve_timeout`` and then resolve on its own
  while the event is still open.
"""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from stream.metrics import top_cue_id
from stream.sinks.retry import retry_until_done

ALERT_NAME = "ElectricityTheftLikely"
Post = Callable[[str, bytes], Awaitable[None]]


@dataclass
class OpenAlert:
    event: dict[str, Any]  # the latest version; a closed one is a resolve being held
    partition: int
    starts_at: str  # ISO-8601 wall clock of the first raise


def urllib_post(timeout_s: float = 5.0) -> Post:
    """POST JSON with the standard library, in a thread (keeps the event loop free)."""

    def _post_blocking(url: str, body: bytes) -> None:
        request = urllib.request.Request(  # noqa: S310 - URL is the configured Alertmanager
            url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
            if response.status >= 300:
                raise OSError(f"alertmanager answered HTTP {response.status}")

    async def post(url: str, body: bytes) -> None:
        await asyncio.to_thread(_post_blocking, url, body)

    return post


def alert_payload(
    event: dict[str, Any],
    *,
    starts_at: str,
    ends_at: str | None,
    extra_labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    cues = event.get("cues") or []
    evidence = {str(c.get("id")): c.get("evidence", {}) for c in cues}
    labels = {
        "alertname": ALERT_NAME,
        "event_id": str(event["event_id"]),
        "meter_id": str(event["meter_id"]),
        "severity": str(event.get("severity", "info")),
        "cue": top_cue_id(event),
        "gateway": str(event.get("gateway_id") or "unknown"),
        **(extra_labels or {}),
    }
    annotations = {
        "summary": (
            f"Theft likely on meter {event['meter_id']}: {', '.join(evidence) or 'no cue'}; "
            f"~{float(event.get('est_unbilled_kwh') or 0.0):.1f} kWh unbilled"
        ),
        "evidence": orjson.dumps(evidence).decode(),
        "cues": ",".join(evidence),
        "peak_score": f"{float(event.get('peak_score') or 0.0):.1f}",
        "mean_score": f"{float(event.get('mean_score') or 0.0):.1f}",
        "est_unbilled_kwh": f"{float(event.get('est_unbilled_kwh') or 0.0):.2f}",
        "top_features": orjson.dumps(event.get("top_features") or []).decode(),
        "event_start": str(event.get("start", "")),
        "event_end": str(event.get("end", "")),
        "detected_at": str(event.get("detected_at", "")),
        "event_version": str(event.get("version", "")),
        "model_version": str(event.get("model_version", "")),
    }
    alert: dict[str, Any] = {"labels": labels, "annotations": annotations, "startsAt": starts_at}
    if ends_at is not None:
        alert["endsAt"] = ends_at
    return alert


class AlertmanagerSink:
    """Raises, refreshes and resolves theft alerts through ``POST /api/v2/alerts``."""

    def __init__(
        self,
        base_url: str,
        *,
        on_retry: Callable[[str], None],
        clock: Callable[[], datetime],
        post: Post | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        repost_interval_s: float = 60.0,
        min_firing_s: float | None = None,
        extra_labels: Mapping[str, str] | None = None,
        max_delay_s: float = 5.0,
    ) -> None:
        self._url = base_url.rstrip("/") + "/api/v2/alerts"
        self._on_retry = on_retry
        self._clock = clock
        self._post = post or urllib_post()
        self._sleep = sleep
        self._max_delay_s = max_delay_s
        self.repost_interval_s = repost_interval_s
        self.min_firing_s = repost_interval_s if min_firing_s is None else min_firing_s
        self.extra_labels = dict(extra_labels or {})
        self.open_alerts: dict[str, OpenAlert] = {}

    def _payload(
        self, event: dict[str, Any], *, starts_at: str, ends_at: str | None
    ) -> dict[str, Any]:
        return alert_payload(
            event, starts_at=starts_at, ends_at=ends_at, extra_labels=self.extra_labels
        )

    async def send(self, alerts: Sequence[dict[str, Any]], partition: int) -> None:
        """Raise or update open alerts; resolve the closed ones (or hold them, see above)."""
        payload = []
        now = self._clock()
        for event in alerts:
            if not event.get("theft_likely"):
                continue
            event_id = str(event["event_id"])
            known = self.open_alerts.get(event_id)
            starts_at = known.starts_at if known else now.isoformat()
            if known is not None:
                previous = self._payload(known.event, starts_at=starts_at, ends_at=None)
                if previous["labels"] != self._payload(event, starts_at="", ends_at=None)["labels"]:
                    # a new label set is a new alert: end the superseded one now
                    payload.append(dict(previous, endsAt=now.isoformat()))
            if event.get("status") == "closed" and self._fired_long_enough(starts_at, now):
                self.open_alerts.pop(event_id, None)
                payload.append(self._payload(event, starts_at=starts_at, ends_at=now.isoformat()))
            else:
                self.open_alerts[event_id] = OpenAlert(event, partition, starts_at)
                payload.append(self._payload(event, starts_at=starts_at, ends_at=None))
        await self._post_all(payload)

    def _fired_long_enough(self, starts_at: str, now: datetime) -> bool:
        return (now - datetime.fromisoformat(starts_at)).total_seconds() >= self.min_firing_s

    async def repost_open(self) -> int:
        """Re-send every open alert so Alertmanager keeps it firing, and resolve the held
        closed ones that have fired long enough; returns how many alerts were posted."""
        now = self._clock()
        payload = []
        resolved = []
        for event_id, held in list(self.open_alerts.items()):
            resolve = held.event.get("status") == "closed" and self._fired_long_enough(
                held.starts_at, now
            )
            ends_at = now.isoformat() if resolve else None
            payload.append(self._payload(held.event, starts_at=held.starts_at, ends_at=ends_at))
            if resolve:
                resolved.append(event_id)
        await self._post_all(payload)
        for event_id in resolved:  # only once Alertmanager has accepted the resolve
            self.open_alerts.pop(event_id, None)
        return len(payload)

    async def _post_all(self, payload: list[dict[str, Any]]) -> None:
        if not payload:
            return
        body = orjson.dumps(payload)

        async def attempt() -> None:
            await self._post(self._url, body)

        await retry_until_done(
            attempt, sink="alertmanager", on_retry=self._on_retry, sleep=self._sleep,
            max_delay_s=self._max_delay_s,
        )  # fmt: skip

    # --- per-partition state, carried in the partition's snapshot ----------------
    def export_partition(self, partition: int) -> list[dict[str, Any]]:
        return [
            {"event": a.event, "starts_at": a.starts_at}
            for a in self.open_alerts.values()
            if a.partition == partition
        ]

    def import_partition(self, partition: int, items: list[dict[str, Any]]) -> None:
        for item in items:
            event = item["event"]
            self.open_alerts[str(event["event_id"])] = OpenAlert(
                event, partition, str(item["starts_at"])
            )

    def drop_partition(self, partition: int) -> None:
        for event_id in [k for k, a in self.open_alerts.items() if a.partition == partition]:
            del self.open_alerts[event_id]
