"""The whole engine in-process on small literal fleets (no simulator, no servers).

Each household: a daily load shape plus random appliances, service impedance 0.15 ohm,
0.1 V / 0.01 A / 0.1 W / 0.001 PF resolution, 5-minute readings. Theft and transport
faults are injected by hand so that each test knows exactly what happened when.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass

import numpy as np
import pytest
from engine_runs import DAY, MIN, T0, FixedClock
from hypothesis import given, settings
from hypothesis import strategies as st

from rules import cues as C
from rules.thresholds import load_thresholds
from stream.codecs import ReadingBatch, concat_batches
from stream.engine import Engine, EngineConfig

CADENCE = 5 * MIN


@dataclass
class Meter:
    meter_id: str
    ts: np.ndarray
    p: np.ndarray
    v: np.ndarray
    i: np.ndarray
    pf: np.ndarray

    def batch(self) -> ReadingBatch:
        n = len(self.ts)
        return ReadingBatch.from_columns(
            np.full(n, self.meter_id, dtype=object), self.ts, self.p, self.v, self.i, self.pf
        )


def household(meter_id: str, days: float, seed: int, cadence: int = CADENCE) -> Meter:
    rng = np.random.default_rng(seed)
    ts = T0 + np.arange(int(days * DAY // cadence)) * cadence
    hour = (ts % DAY) / 3_600_000
    shape = (
        250 + 350 * np.exp(-(((hour - 19) / 2.5) ** 2)) + 150 * np.exp(-(((hour - 8) / 1.5) ** 2))
    )
    appliances = rng.random(len(ts)) < 0.15
    p_true = shape * rng.uniform(0.8, 1.2, len(ts)) + appliances * rng.uniform(500, 2000, len(ts))
    pf = np.round(rng.uniform(0.88, 0.98, len(ts)), 3)
    walk = np.cumsum(rng.normal(0, 0.1, len(ts)))
    walk -= np.convolve(walk, np.ones(24) / 24, mode="same")
    v_src = 236 + 2 * np.sin(2 * np.pi * hour / 24) + walk
    i = p_true / (pf * 230)
    v = np.round(v_src - 0.15 * i, 1)
    i = np.round(p_true / (pf * v), 2)
    p = np.round(v * i * pf, 1)
    return Meter(meter_id, ts, p, v, i, pf)


def engine(**overrides: int) -> Engine:
    cfg = EngineConfig(
        window_s=600, hop_s=60, lateness_s=120, warmup_s=overrides.get("warmup_s", 86_400)
    )
    return Engine(cfg, load_thresholds(), scorer=None, clock=FixedClock(T0 + 30 * DAY))


def run(eng: Engine, batch: ReadingBatch, chunk: int = 5000) -> dict[str, object]:
    events: dict[str, object] = {}
    alerts = []
    outs = []
    for start in range(0, len(batch), chunk):
        outs.append(eng.process(batch.slice(start, start + chunk)))
    outs.append(eng.flush())
    for out in outs:
        for ev in out.event_updates:
            events[ev.event_id] = ev
        alerts.extend(out.alerts)
    return {"events": events, "alerts": alerts, "outs": outs}


def theft_events(result: dict[str, object], meter_id: str) -> list:
    return [e for e in result["events"].values() if e.meter_id == meter_id and e.theft_likely]


def cue_names(events: list) -> set[str]:
    return {name for e in events for name in e.cues}


def test_clean_fleet_raises_no_theft_alert_and_reports_state_size() -> None:
    fleet = concat_batches([household(f"M{k}", 4, seed=k).batch() for k in range(8)])
    eng = engine()
    res = run(eng, fleet)
    assert not [e for e in res["events"].values() if e.theft_likely]
    assert eng.meters_tracked == 8
    assert eng.bytes_per_meter() <= 4096
    assert sum(o.windows_scored for o in res["outs"]) == sum(
        o.readings_accepted for o in res["outs"]
    )


@pytest.mark.parametrize(
    ("kind", "cue"),
    [
        ("full_bypass", "bypass_zero"),
        ("meter_freeze", "meter_freeze"),
        ("register_tamper", "register_tamper"),
        ("reverse_meter", "reverse_flow"),
        ("pf_tamper", "pf_abnormal"),
    ],
)
def test_abrupt_theft_is_caught_within_30_minutes_by_its_cue(kind: str, cue: str) -> None:
    m = household("THIEF", 4, seed=7)
    start = T0 + 2 * DAY + 18 * 3_600_000  # evening of day 3, after warm-up
    on = m.ts >= start
    if kind == "full_bypass":
        m.p[on] = 0.0
        m.i[on] = 0.0
    elif kind == "meter_freeze":
        k = int(np.argmax(on))
        for arr in (m.p, m.v, m.i, m.pf):
            arr[on] = arr[k]
    elif kind == "register_tamper":
        m.p[on] = np.round(m.p[on] * 0.5, 1)
    elif kind == "reverse_meter":
        m.p[on] = -m.p[on]
        m.pf[on] = -m.pf[on]
    elif kind == "pf_tamper":
        m.pf[on] = 0.35
        m.p[on] = np.round(m.v[on] * m.i[on] * 0.35, 1)
    res = run(engine(), m.batch())
    evs = theft_events(res, "THIEF")
    assert evs, f"{kind} not caught"
    assert cue in cue_names(evs)
    first = min(e.detected_at_ms for e in evs)
    # the bound for abrupt theft is 30 min; a forged PF needs a share of readings
    limit = 60 * MIN if kind == "pf_tamper" else 30 * MIN
    assert start <= first <= start + limit
    assert all(e.est_unbilled_kwh >= 0 for e in evs)


def test_a_comms_gap_is_not_a_freeze_nor_theft() -> None:
    m = household("GAP", 4, seed=3)
    gap = (m.ts >= T0 + 2 * DAY) & (m.ts < T0 + 2 * DAY + 8 * 3_600_000)
    keep = ~gap
    m2 = Meter(m.meter_id, m.ts[keep], m.p[keep], m.v[keep], m.i[keep], m.pf[keep])
    eng = engine()
    res = run(eng, m2.batch())
    assert not theft_events(res, "GAP")
    assert sum(o.comms_gap_windows for o in res["outs"]) >= 8 * 60 - 20


def test_late_and_duplicate_readings_are_tolerated() -> None:
    m = household("LD", 3, seed=4)
    b = m.batch()
    rng = np.random.default_rng(0)
    dup = rng.choice(len(b), 50, replace=False)
    with_dups = concat_batches([b, b.take(dup)])
    # reorder within 2 minutes of lateness: swap neighbours (5-min cadence: at most one back)
    order = np.argsort(
        with_dups.ts_ms + rng.integers(0, 2, len(with_dups)) * 4 * MIN, kind="stable"
    )
    shuffled = with_dups.take(order)
    eng = engine()
    res = run(eng, shuffled, chunk=37)
    outs = res["outs"]
    assert sum(o.duplicates for o in outs) == 50
    assert sum(o.readings_accepted for o in outs) + sum(o.late_dropped for o in outs) == len(b)


def test_malformed_rows_are_rejected_with_a_reason_and_the_rest_processed() -> None:
    m = household("BAD", 1, seed=5)
    b = m.batch()
    b.pf[3] = 1.5
    b.v[4] = 0.0
    b.p[5] = np.nan
    b.i[6] = -1.0
    b.ts_ms[7] = 123
    eng = engine()
    res = run(eng, b)
    reasons = sorted(r.reason for o in res["outs"] for r in o.rejected)
    assert reasons == [
        "bad_timestamp",
        "current_negative",
        "non_finite",
        "pf_out_of_range",
        "voltage_non_positive",
    ]
    assert sum(o.readings_accepted for o in res["outs"]) == len(b) - 5


def test_warm_up_is_respected() -> None:
    # bypass from hour 14 of day 1: the meter may not alert before a full day of data
    m = household("NEW", 3, seed=6)
    on = m.ts >= T0 + 14 * 3_600_000
    m.p[on] = 0.0
    m.i[on] = 0.0
    res = run(engine(), m.batch())
    evs = theft_events(res, "NEW")
    assert all(e.detected_at_ms >= T0 + DAY for e in evs)
    # the same with a 2-day warm-up: nothing before day 3
    res2 = run(engine(warmup_s=2 * 86_400), m.batch())
    assert all(e.detected_at_ms >= T0 + 2 * DAY for e in theft_events(res2, "NEW"))


def test_partial_bypass_waits_until_the_meter_history_spans_the_long_impedance_memory() -> None:
    # 60 % of the load bypassed from day 2 (metered P and I drop; the voltage still sags
    # with the whole current), and a clean meter that joins the fleet on day 2
    th = load_thresholds()
    # (without the wait R03 fires 7 hours into this bypass, at day 2.3)
    wait_ms = int(th.value("baseline", "impedance_long_memory_s") * 1000)
    m = household("PB", 7, seed=11)
    on = m.ts >= T0 + 2 * DAY
    m.p = np.where(on, np.round(m.p * 0.4, 1), m.p)
    m.i = np.where(on, np.round(m.i * 0.4, 2), m.i)
    late = household("LATE", 7, seed=12).batch()
    late = late.slice(int(np.searchsorted(late.ts_ms, T0 + 2 * DAY)), len(late))
    eng = engine()
    eng.debug_facts = []
    res = run(eng, concat_batches([m.batch(), late]))
    first_ms = {eng.index["PB"]: T0, eng.index["LATE"]: T0 + 2 * DAY}
    fired_at = []
    for gm, end_ms, facts in eng.debug_facts:
        # the history is the time since the meter's first reading, not since the fleet's
        since = np.array([first_ms[int(g)] for g in gm])
        assert np.array_equal(facts["history_s"], (end_ms - since) / 1000.0)
        fired = C.partial_bypass(facts, th.section("partial_bypass")).fired
        fired_at.extend(int(t) for t in end_ms[fired])
    assert fired_at, "R03 never fired on a 60 % bypass"
    assert min(fired_at) >= T0 + wait_ms
    # the theft event carries R03's evidence (it may have opened earlier on other cues)
    assert [e for e in theft_events(res, "PB") if "partial_bypass" in e.cues]
    assert not theft_events(res, "LATE")


def test_snapshot_restore_continues_identically() -> None:
    fleet = concat_batches([household(f"S{k}", 3, seed=10 + k).batch() for k in range(3)])
    fleet = fleet.take(np.argsort(fleet.ts_ms, kind="stable"))
    half = len(fleet) // 2
    a = engine()
    a.process(fleet.slice(0, half))
    blob = a.snapshot()
    b = Engine.restore(None, blob, clock=FixedClock(T0 + 30 * DAY))
    out_a = a.process(fleet.slice(half, len(fleet)))
    out_b = b.process(fleet.slice(half, len(fleet)))
    np.testing.assert_array_equal(out_a.window_end_ms, out_b.window_end_ms)
    np.testing.assert_array_equal(out_a.features, out_b.features)
    np.testing.assert_array_equal(out_a.cue_matrix, out_b.cue_matrix)
    with pytest.raises(ValueError):
        Engine.restore(None, pickle.dumps({"format": "other"}))


@settings(max_examples=8, deadline=None)
@given(st.integers(min_value=0, max_value=2**31 - 1), st.integers(min_value=1, max_value=400))
def test_results_do_not_depend_on_arrival_order_within_lateness(seed: int, chunk: int) -> None:
    m = household("ORD", 2.2, seed=9)
    on = m.ts >= T0 + DAY + 20 * 3_600_000
    m.p[on] = np.round(m.p[on] * 0.5, 1)  # register tamper: alerts to compare
    b = m.batch()
    rng = np.random.default_rng(seed)
    # each reading delayed by up to the allowed lateness (120 s) in arrival order
    arrival = b.ts_ms + rng.integers(0, 120_001, len(b))
    shuffled = b.take(np.argsort(arrival, kind="stable"))
    ref = run(engine(), b, chunk=500)
    got = run(engine(), shuffled, chunk=chunk)

    def key(r):
        return sorted(
            (e.event_id, e.start_ms, e.end_ms, tuple(sorted(e.cues))) for e in r["events"].values()
        )

    assert key(got) == key(ref)
    assert sum(o.late_dropped for o in got["outs"]) == 0


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 3),
            st.integers(-(10**6), 10**13),
            st.floats(allow_nan=True, allow_infinity=True),
            st.floats(allow_nan=True, allow_infinity=True),
            st.floats(allow_nan=True, allow_infinity=True),
            st.floats(allow_nan=True, allow_infinity=True),
        ),
        min_size=1,
        max_size=60,
    )
)
def test_engine_never_crashes_on_arbitrary_readings(rows: list[tuple]) -> None:
    eng = engine()
    ids = ["A", "B", "bad id", ""]
    batch = ReadingBatch.from_columns(
        [ids[r[0]] for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
        [r[3] for r in rows],
        [r[4] for r in rows],
        [r[5] for r in rows],
    )
    with np.errstate(all="ignore"):
        out = eng.process(batch)
        out2 = eng.flush()
    assert out.readings_accepted + out2.readings_accepted + len(
        out.rejected
    ) + out.duplicates + out.late_dropped + out2.duplicates == len(rows)
