"""Score ``events.jsonl`` against simulator labels (``meterwatch.labels.v1``).

Definitions (also in the README):

- an **alert** is an event with ``theft_likely``;
- an alert is **true** when its meter is a thief and the event overlaps one of the meter's
  theft intervals, widened by ``slack`` (1 h before, 2 h after: windows are 10 min long
  and an event closes after a quiet period);
- a thief is **caught** when it has at least one true alert; its **detection delay** is
  the earliest ``detected_at`` of its true alerts minus the start of its theft, i.e. of
  its first theft interval (0 if the alert came first). A theft that recurs (an evening
  bypass every day) started with its first interval: an alert one minute into the fifth
  evening is a delay of four days, not of one minute;
- **alert precision** = true alerts / alerts;
- **false alarms per 100 clean meter-days** = alerts on meters with no theft, per 100
  days of those meters' readings;
- **meter-level ROC-AUC** and **precision@k** rank meters by their highest event risk
  (theft alerts above plain anomalies, then by peak score); meters without events rank 0;
- **caught by days observed**: the share caught among the thieves whose theft began at
  least 1, 2 or 3 days before the data ends. The data's end censors every detection
  delay, so a theft that began an hour before it, or a bypass still ramping up, has had
  little time to show; the headline share counts every thief all the same;
- **missed thieves**: each thief with no true alert, its theft type and the hours of
  theft the data holds.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

ABRUPT_TYPES = ("full_bypass", "meter_freeze", "register_tamper", "reverse_meter")
HOUR_MS = 3_600_000
SLACK_BEFORE_MS = 1 * HOUR_MS
SLACK_AFTER_MS = 2 * HOUR_MS
OBSERVED_DAYS = (1, 2, 3)


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def load_events(path: Path) -> list[dict[str, Any]]:
    """Final version of each event in an events.jsonl file."""
    latest: dict[str, dict[str, Any]] = {}
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            ev = json.loads(line)
            prev = latest.get(ev["event_id"])
            if prev is None or ev.get("version", 0) >= prev.get("version", 0):
                latest[ev["event_id"]] = ev
    return list(latest.values())


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Mann-Whitney ROC-AUC with ties counted half.

    >>> roc_auc(np.array([0.9, 0.8, 0.1, 0.1]), np.array([True, False, True, False]))
    0.625
    """
    pos = scores[positive]
    neg = scores[~positive]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


@dataclass
class Evaluation:
    per_type: dict[str, dict[str, Any]]
    alerts: int
    true_alerts: int
    precision: float
    thieves: int
    caught: int
    false_alarms_clean: int
    clean_meter_days: float
    false_alarms_per_100_meter_days: float
    roc_auc: float
    precision_at_k: dict[int, float]
    median_delay_abrupt_min: float
    median_delay_all_min: float
    # {d: (caught, thieves)} over the thieves whose theft began at least d days before
    # the data ends (see OBSERVED_DAYS)
    caught_by_days_observed: dict[int, tuple[int, int]] = field(default_factory=dict)
    # the thieves with no true alert: meter id, theft type and the hours of theft the data
    # holds (where to look next, and whether the data's end explains the miss)
    missed: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "per_type": self.per_type,
            "alerts": self.alerts,
            "true_alerts": self.true_alerts,
            "alert_precision": self.precision,
            "thieves": self.thieves,
            "thieves_caught": self.caught,
            "caught_share": self.caught / self.thieves if self.thieves else float("nan"),
            "false_alarms_on_clean_meters": self.false_alarms_clean,
            "clean_meter_days": self.clean_meter_days,
            "false_alarms_per_100_clean_meter_days": self.false_alarms_per_100_meter_days,
            "meter_roc_auc": self.roc_auc,
            "precision_at_k": {str(k): v for k, v in self.precision_at_k.items()},
            "median_delay_abrupt_min": self.median_delay_abrupt_min,
            "median_delay_all_min": self.median_delay_all_min,
            "caught_by_days_observed": {
                str(d): {"caught": c, "thieves": n}
                for d, (c, n) in self.caught_by_days_observed.items()
            },
            "missed_thieves": self.missed,
        }


def evaluate(
    labels: dict[str, Any], events: list[dict[str, Any]], ks: tuple[int, ...] = (10, 25, 50)
) -> Evaluation:
    span_days = (int(labels["end_ms"]) - int(labels["start_ms"])) / 86_400_000
    meters = {m["meter_id"]: m for m in labels["meters"]}
    by_meter: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for ev in events:
        by_meter[ev["meter_id"]].append(ev)

    alerts = [ev for ev in events if ev.get("theft_likely")]
    true_alerts = 0
    false_clean = 0
    first_true: dict[str, float] = {}
    for ev in alerts:
        meter = meters.get(ev["meter_id"])
        s, e = _ms(ev["start"]), _ms(ev["end"])
        det = _ms(ev["detected_at"])
        hit = False
        if meter is not None:
            for theft in meter["theft"]:
                for a, b in _intervals(theft):
                    if s <= b + SLACK_AFTER_MS and e >= a - SLACK_BEFORE_MS:
                        hit = True
                        delay = max(det - _theft_start(meter), 0) / 60_000
                        mid = ev["meter_id"]
                        first_true[mid] = min(first_true.get(mid, float("inf")), delay)
                        break
                if hit:
                    break
        if hit:
            true_alerts += 1
        elif meter is None or not meter["theft"]:
            false_clean += 1
    per_type: dict[str, dict[str, Any]] = {}
    delays_abrupt: list[float] = []
    delays_all: list[float] = []
    thieves = [m for m in labels["meters"] if m["theft"]]
    for m in thieves:
        kind = m["theft"][0]["type"]
        row = per_type.setdefault(kind, {"thieves": 0, "caught": 0, "delays_min": []})
        row["thieves"] += 1
        if m["meter_id"] in first_true:
            row["caught"] += 1
            row["delays_min"].append(first_true[m["meter_id"]])
            delays_all.append(first_true[m["meter_id"]])
            if kind in ABRUPT_TYPES:
                delays_abrupt.append(first_true[m["meter_id"]])
    for row in per_type.values():
        d = row.pop("delays_min")
        row["median_delay_min"] = float(np.median(d)) if d else float("nan")
    clean = [m for m in labels["meters"] if not m["theft"]]
    clean_days = len(clean) * span_days
    # the data's horizon censors detection: a theft that began an hour before the end has
    # had an hour to show. The headline counts every thief; this says how the share caught
    # grows with the theft time the data holds
    end_ms = int(labels["end_ms"])
    by_observed: dict[int, tuple[int, int]] = {}
    for days in OBSERVED_DAYS:
        held = [m for m in thieves if end_ms - _theft_start(m) >= days * 86_400_000]
        by_observed[days] = (sum(1 for m in held if m["meter_id"] in first_true), len(held))
    missed = [
        {
            "meter_id": m["meter_id"],
            "type": m["theft"][0]["type"],
            "theft_hours_held": round((end_ms - _theft_start(m)) / HOUR_MS, 1),
        }
        for m in thieves
        if m["meter_id"] not in first_true
    ]

    ids = list(meters)
    risk = np.zeros(len(ids))
    for k, mid in enumerate(ids):
        for ev in by_meter.get(mid, []):
            r = (100.0 if ev.get("theft_likely") else 0.0) + float(ev.get("peak_score", 0.0))
            risk[k] = max(risk[k], r)
    positive = np.array([bool(meters[mid]["theft"]) for mid in ids])
    order = np.argsort(-risk, kind="stable")
    pak = {k: float(positive[order[:k]].mean()) if len(order) >= k else float("nan") for k in ks}
    return Evaluation(
        per_type=dict(sorted(per_type.items())),
        alerts=len(alerts),
        true_alerts=true_alerts,
        precision=true_alerts / len(alerts) if alerts else float("nan"),
        thieves=len(thieves),
        caught=sum(1 for m in thieves if m["meter_id"] in first_true),
        false_alarms_clean=false_clean,
        clean_meter_days=clean_days,
        false_alarms_per_100_meter_days=100.0 * false_clean / clean_days if clean_days else 0.0,
        roc_auc=roc_auc(risk, positive),
        precision_at_k=pak,
        median_delay_abrupt_min=float(np.median(delays_abrupt)) if delays_abrupt else float("nan"),
        median_delay_all_min=float(np.median(delays_all)) if delays_all else float("nan"),
        caught_by_days_observed=by_observed,
        missed=missed,
    )


def _theft_start(meter: dict[str, Any]) -> int:
    return min(a for theft in meter["theft"] for a, _ in _intervals(theft))


def _intervals(theft: dict[str, Any]) -> list[tuple[int, int]]:
    if "intervals" in theft:
        return [(int(a), int(b)) for a, b in theft["intervals"]]
    return [(int(theft["start_ms"]), int(theft["end_ms"]))]
