"""Engine snapshots across an upgrade: current thresholds and code win, meter state
survives when its layout fits, the learned model section fails alone, and a changed
window/hop is refused explicitly (``SnapshotIncompatible``)."""

from __future__ import annotations

import dataclasses
import io
import logging
import pickle
from pathlib import Path

import numpy as np
import pytest

from detectors.features import FEATURE_NAMES
from detectors.hybrid import HybridScorer
from rules.thresholds import DEFAULT_THRESHOLDS_FILE, ThresholdError
from stream.codecs import ReadingBatch
from stream.engine import Engine, SnapshotCorrupt, SnapshotIncompatible
from stream.settings import Settings

T0 = 1_767_571_200_000  # 2026-01-05T00:00Z
MIN = 60_000
DAY = 86_400_000


class FakeClock:
    def __init__(self, now_ms: int) -> None:
        self.now = now_ms / 1000.0

    def __call__(self) -> float:
        return self.now


CLOCK = FakeClock(T0 + 30 * DAY)


def fleet(meters: int, days: float, seed: int) -> ReadingBatch:
    """Households with a daily shape and noise, 5-minute readings, in time order; meter 0
    is bypassed (nothing metered, the voltage still sags with the real load) from hour 10 of
    the second day, so events and cues are exercised."""
    rng = np.random.default_rng(seed)
    ts = T0 + np.arange(int(days * DAY // (5 * MIN))) * 5 * MIN
    hour = (ts % DAY) / 3_600_000
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("id", "ts", "p", "v", "i", "pf")}
    for m in range(meters):
        p = 300 + 300 * np.exp(-(((hour - 19) / 2.5) ** 2)) + rng.gamma(2.0, 40.0, len(ts))
        v = 230.0 - 0.15 * p / 230.0 + rng.normal(0, 0.3, len(ts))
        pf = np.clip(0.95 + rng.normal(0, 0.01, len(ts)), 0.5, 1.0)
        i = p / (v * pf)
        if m == 0:
            bypassed = ts >= T0 + DAY + 10 * 3_600_000
            p, i = np.where(bypassed, 0.0, p), np.where(bypassed, 0.0, i)
        cols["id"].append(np.full(len(ts), f"MTR-{m:03d}", dtype=object))
        for key, arr in (("ts", ts), ("p", p), ("v", v), ("i", i), ("pf", pf)):
            cols[key].append(arr)
    order = np.argsort(np.concatenate(cols["ts"]), kind="stable")
    return ReadingBatch.from_columns(
        *(np.concatenate(cols[k])[order] for k in ("id", "ts", "p", "v", "i", "pf"))
    )


def hst_scorer() -> HybridScorer:
    return HybridScorer.create(FEATURE_NAMES, None, seed=0, window_size=64)


def settings_for(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]


def trained_engine(settings: Settings, batch: ReadingBatch) -> Engine:
    engine = Engine.from_settings(settings, scorer=hst_scorer(), clock=CLOCK)
    engine.process(batch)
    return engine


@pytest.fixture(scope="module")
def data() -> tuple[ReadingBatch, ReadingBatch]:
    batch = fleet(4, 2.5, seed=3)
    half = int(np.searchsorted(batch.ts_ms, T0 + 2 * DAY))
    return batch.slice(0, half), batch.slice(half, len(batch))


def assert_same_output(a: Engine, b: Engine, batch: ReadingBatch) -> None:
    out_a, out_b = a.process(batch), b.process(batch)
    assert out_a.windows_scored > 0
    np.testing.assert_array_equal(out_a.window_end_ms, out_b.window_end_ms)
    np.testing.assert_array_equal(out_a.window_meter_ids, out_b.window_meter_ids)
    np.testing.assert_array_equal(out_a.features, out_b.features)
    np.testing.assert_array_equal(out_a.cue_matrix, out_b.cue_matrix)
    assert out_a.scores.keys() == out_b.scores.keys()
    for name in out_a.scores:
        np.testing.assert_array_equal(out_a.scores[name], out_b.scores[name])
    assert [e.to_json() for e in out_a.event_updates] == [e.to_json() for e in out_b.event_updates]


def test_round_trip_gives_the_same_outputs_on_the_next_batch(data) -> None:  # type: ignore[no-untyped-def]
    first, rest = data
    settings = settings_for()
    a = trained_engine(settings, first)
    assert a.events.open, "the fixture should leave an event open across the snapshot"
    b = Engine.restore(settings, a.snapshot(), clock=CLOCK, scorer=hst_scorer())
    assert b.meter_ids == a.meter_ids and b.gateways == a.gateways
    assert b.counters == a.counters
    assert_same_output(a, b, rest)
    fa, fb = a.flush(), b.flush()
    assert [e.to_json() for e in fa.event_updates] == [e.to_json() for e in fb.event_updates]


def test_a_snapshot_from_before_r14_restores_with_its_baselines(data, caplog) -> None:  # type: ignore[no-untyped-def]
    # R14's run has state arrays of its own: a snapshot written before they existed keeps
    # every other meter state (baselines, rings) and starts those empty, with a warning
    first, rest = data
    settings = settings_for()
    a = trained_engine(settings, first)
    payload = pickle.loads(a.snapshot())  # noqa: S301 - our own test snapshot
    for name in ("stuck_run_n", "stuck_run_start", "stuck_max_ms"):
        del payload["meters"]["arrays"][name]
    with caplog.at_level(logging.WARNING, logger="stream.engine"):
        b = Engine.restore(settings, pickle.dumps(payload), clock=CLOCK, scorer=hst_scorer())
    assert "stuck_run_n" in caplog.text
    np.testing.assert_array_equal(b.state.base_p[: len(b.meter_ids)], a.state.base_p[:4])
    out = b.process(rest)
    assert out.windows_scored > 0


def test_snapshot_holds_no_thresholds_and_only_plain_state_outside_the_model(data) -> None:  # type: ignore[no-untyped-def]
    engine = trained_engine(settings_for(), data[0])
    payload = pickle.loads(engine.snapshot())  # noqa: S301 - our own test snapshot
    assert "thresholds" not in payload
    assert isinstance(payload["model"]["blob"], bytes)
    payload["model"] = None
    # outside the model section, nothing but builtins and numpy
    modules = {m for m in _pickled_modules(pickle.dumps(payload)) if m != "builtins"}
    assert all(m.split(".")[0] == "numpy" for m in modules), modules


def _pickled_modules(blob: bytes) -> set[str]:
    """The modules whose globals a pickle needs, recorded while it loads."""
    modules: set[str] = set()

    class Recording(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> object:
            modules.add(module)
            return super().find_class(module, name)

    Recording(io.BytesIO(blob)).load()
    return modules


def test_restore_applies_the_current_threshold_values(data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    engine = trained_engine(settings_for(), data[0])
    blob = engine.snapshot()
    text = DEFAULT_THRESHOLDS_FILE.read_text(encoding="utf-8")
    assert "quiet_period_s = 3600.0" in text
    changed = tmp_path / "thresholds.toml"
    changed.write_text(text.replace("quiet_period_s = 3600.0", "quiet_period_s = 7200.0"))
    restored = Engine.restore(
        settings_for(thresholds_file=changed), blob, clock=CLOCK, scorer=hst_scorer()
    )
    assert restored.thresholds.value("events", "quiet_period_s") == 7200.0
    assert restored.events.quiet_ms == 7_200_000
    assert engine.events.quiet_ms == 3_600_000
    # the meter state itself survived the change
    np.testing.assert_array_equal(restored.state.base_p[:4], engine.state.base_p[:4])


def test_restore_with_a_threshold_key_added_since_the_snapshot(data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # the crash-loop of the old format: thresholds came from the snapshot, so a key the new
    # code needs was missing; now the current file is the only source
    engine = trained_engine(settings_for(), data[0])
    text = DEFAULT_THRESHOLDS_FILE.read_text(encoding="utf-8")
    extended = tmp_path / "thresholds.toml"
    extended.write_text(text + "\n[upgrade_added]\nnew_limit_s = 5.0\n")
    restored = Engine.restore(
        settings_for(thresholds_file=extended), engine.snapshot(), clock=CLOCK, scorer=None
    )
    assert restored.thresholds.value("upgrade_added", "new_limit_s") == 5.0


def _with_model_blob(blob: bytes, model_blob: bytes) -> bytes:
    payload = pickle.loads(blob)  # noqa: S301 - our own test snapshot
    payload["model"]["blob"] = model_blob
    return pickle.dumps(payload)


@pytest.mark.parametrize("breakage", ["class_gone", "attribute_added", "garbage"])
def test_unloadable_model_section_keeps_meter_state_and_warns(
    data,  # type: ignore[no-untyped-def]
    breakage: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    first, rest = data
    settings = settings_for()
    a = trained_engine(settings, first)
    blob = a.snapshot()
    fresh = hst_scorer()
    if breakage == "class_gone":
        blob = _with_model_blob(blob, b"cmeterwatch_gone_module\nOldHst\n.")
    elif breakage == "garbage":
        blob = _with_model_blob(blob, b"\x80\x05not a pickle")
    else:  # the current HST class has an attribute the pickled one lacks
        fresh.hst.upgrade_added_attribute = 1
    fresh_hst = fresh.hst
    with caplog.at_level(logging.WARNING, logger="stream.engine"):
        b = Engine.restore(settings, blob, clock=CLOCK, scorer=fresh)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("fresh model" in r.getMessage() for r in warnings), caplog.text
    assert b.scorer.hst is fresh_hst  # a fresh HST, not the snapshot's
    assert b.meter_ids == a.meter_ids
    for name in ("base_p", "base_w", "first_ts", "ring", "imp_long"):
        np.testing.assert_array_equal(
            getattr(b.state, name)[: a.meters_tracked], getattr(a.state, name)[: a.meters_tracked]
        )
    # rules and features run on the restored meter state exactly as before
    out_a, out_b = a.process(rest), b.process(rest)
    np.testing.assert_array_equal(out_a.features, out_b.features)
    np.testing.assert_array_equal(out_a.cue_matrix, out_b.cue_matrix)


def test_loadable_model_section_is_used_without_warning(data, caplog) -> None:  # type: ignore[no-untyped-def]
    a = trained_engine(settings_for(), data[0])
    fresh = hst_scorer()
    with caplog.at_level(logging.WARNING, logger="stream.engine"):
        b = Engine.restore(settings_for(), a.snapshot(), clock=CLOCK, scorer=fresh)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    assert b.scorer is fresh and b.scorer.hst is not a.scorer.hst
    np.testing.assert_array_equal(b.scorer.hst._reference_mass, a.scorer.hst._reference_mass)


@pytest.mark.parametrize(
    "overrides",
    [{"hop_seconds": 120}, {"window_seconds": 1200}, {"window_seconds": 900, "hop_seconds": 300}],
)
def test_changed_window_or_hop_is_incompatible(data, overrides: dict[str, int]) -> None:  # type: ignore[no-untyped-def]
    blob = trained_engine(settings_for(), data[0]).snapshot()
    with pytest.raises(SnapshotIncompatible, match="state-shaping"):
        Engine.restore(settings_for(**overrides), blob, clock=CLOCK, scorer=None)


def test_changed_trend_days_is_incompatible(data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    blob = trained_engine(settings_for(), data[0]).snapshot()
    text = DEFAULT_THRESHOLDS_FILE.read_text(encoding="utf-8")
    assert "trend_days_n = 14" in text
    changed = tmp_path / "thresholds.toml"
    changed.write_text(text.replace("trend_days_n = 14", "trend_days_n = 21"))
    with pytest.raises(SnapshotIncompatible, match="trend_days"):
        Engine.restore(settings_for(thresholds_file=changed), blob, clock=CLOCK, scorer=None)


def test_lateness_and_warmup_changes_are_compatible(data) -> None:  # type: ignore[no-untyped-def]
    a = trained_engine(settings_for(), data[0])
    b = Engine.restore(
        settings_for(allowed_lateness_seconds=300, warmup_seconds=3600),
        a.snapshot(),
        clock=CLOCK,
        scorer=None,
    )
    assert b.config.lateness_s == 300 and b.config.warmup_s == 3600
    assert b.meter_ids == a.meter_ids


def test_other_format_version_and_garbage_are_refused(data) -> None:  # type: ignore[no-untyped-def]
    blob = trained_engine(settings_for(), data[0]).snapshot()
    payload = pickle.loads(blob)  # noqa: S301 - our own test snapshot
    payload["format"] = "meterwatch.engine.snapshot.v1"
    with pytest.raises(SnapshotIncompatible, match="format"):
        Engine.restore(settings_for(), pickle.dumps(payload), clock=CLOCK, scorer=None)
    with pytest.raises(SnapshotCorrupt):
        Engine.restore(settings_for(), b"\x00garbage", clock=CLOCK, scorer=None)
    with pytest.raises(SnapshotCorrupt):
        Engine.restore(settings_for(), blob[: len(blob) // 2], clock=CLOCK, scorer=None)
    # a pickle that references code (the v1 layout pickled engine objects) is refused as
    # an older format, before any of that code runs
    with pytest.raises(SnapshotIncompatible, match="older format") as refused:
        Engine.restore(settings_for(), pickle.dumps(Settings()), clock=CLOCK, scorer=None)
    assert not isinstance(refused.value, SnapshotCorrupt)


def test_changed_array_layout_is_incompatible(data) -> None:  # type: ignore[no-untyped-def]
    blob = trained_engine(settings_for(), data[0]).snapshot()
    payload = pickle.loads(blob)  # noqa: S301 - our own test snapshot
    base = payload["meters"]["arrays"]["base_p"]
    payload["meters"]["arrays"]["base_p"] = base[:, :24]
    with pytest.raises(SnapshotIncompatible, match="base_p"):
        Engine.restore(settings_for(), pickle.dumps(payload), clock=CLOCK, scorer=None)


def test_a_broken_current_thresholds_file_is_not_blamed_on_the_snapshot(  # type: ignore[no-untyped-def]
    data, tmp_path: Path
) -> None:
    blob = trained_engine(settings_for(), data[0]).snapshot()
    broken = tmp_path / "thresholds.toml"
    broken.write_text("[events]\nquiet_period_s = 'soon'\n")
    with pytest.raises(ThresholdError) as raised:
        Engine.restore(settings_for(thresholds_file=broken), blob, clock=CLOCK, scorer=None)
    assert not isinstance(raised.value, SnapshotIncompatible)


def with_gateway(batch: ReadingBatch) -> ReadingBatch:
    return dataclasses.replace(batch, gateway_id=np.full(len(batch), "GW-1", dtype=object))


def test_a_snapshot_from_before_the_peer_reference_restores_and_learns_it_afresh(  # type: ignore[no-untyped-def]
    data, caplog
) -> None:
    first, rest = with_gateway(data[0]), with_gateway(data[1])
    a = Engine.from_settings(settings_for(), scorer=None, clock=CLOCK)
    a.process(first)
    assert a.peer_state_bytes() > 0, "the gateway's co-moments should have been learnt"
    payload = pickle.loads(a.snapshot())  # noqa: S301 - our own test snapshot
    del payload["peer_impedance"]
    for name in ("pz_slot", "pz_vi", "pz_days", "pz_day_id"):
        del payload["meters"]["arrays"][name]
    with caplog.at_level(logging.WARNING, logger="stream.engine"):
        b = Engine.restore(settings_for(), pickle.dumps(payload), clock=CLOCK, scorer=None)
    assert "peer-impedance" in caplog.text and "pz_vi" in caplog.text
    assert b.peer_state_bytes() == 0
    np.testing.assert_array_equal(b.state.base_p[:4], a.state.base_p[:4])
    assert b.process(rest).windows_scored > 0
    assert b.peer_state_bytes() > 0


def test_peer_co_moments_that_do_not_fit_their_members_are_incompatible(data) -> None:  # type: ignore[no-untyped-def]
    a = Engine.from_settings(settings_for(), scorer=None, clock=CLOCK)
    a.process(with_gateway(data[0]))
    payload = pickle.loads(a.snapshot())  # noqa: S301 - our own test snapshot
    members, comoment = payload["peer_impedance"]["comoment"]["GW-1"]
    payload["peer_impedance"]["comoment"]["GW-1"] = (members, comoment[:2, :2])
    with pytest.raises(SnapshotIncompatible, match="peer co-moments"):
        Engine.restore(settings_for(), pickle.dumps(payload), clock=CLOCK, scorer=None)
    payload["peer_impedance"]["comoment"]["GW-1"] = (members + 10, comoment)
    with pytest.raises(SnapshotIncompatible, match="peer co-moments"):
        Engine.restore(settings_for(), pickle.dumps(payload), clock=CLOCK, scorer=None)


def test_a_snapshot_from_before_r16_restores_and_continues(data, caplog) -> None:  # type: ignore[no-untyped-def]
    # R16 came later: its per-meter state, and the half-hour steps kept with each judged
    # slot, are not in an older snapshot. The judged slots restore with their steps
    # unknown (a pair across the restart is missed), the state starts empty, with a warning
    first, rest = with_gateway(data[0]), with_gateway(data[1])
    a = Engine.from_settings(settings_for(), scorer=None, clock=CLOCK)
    a.process(first)
    payload = pickle.loads(a.snapshot())  # noqa: S301 - our own test snapshot
    judged = payload["peer_impedance"]["judged"]
    assert judged and all(len(entry) == 7 for entry in judged)
    payload["peer_impedance"]["judged"] = [entry[:5] for entry in judged]
    for name in ("hk_on", "hk_on_v", "hk_pair", "hk_pair_len", "hk_repeat", "hk_pair_v"):
        del payload["meters"]["arrays"][name]
    with caplog.at_level(logging.WARNING, logger="stream.engine"):
        b = Engine.restore(settings_for(), pickle.dumps(payload), clock=CLOCK, scorer=None)
    assert "hk_on" in caplog.text
    for _, _, _, _, _, y2, di2 in pickle.loads(b.snapshot())["peer_impedance"]["judged"]:  # noqa: S301
        assert np.isnan(y2).all() and np.isnan(di2).all()
    assert (b.state.hk_on[:4] == -1).all()
    np.testing.assert_array_equal(b.state.pz_days[:4], a.state.pz_days[:4])
    assert b.process(rest).windows_scored > 0
