"""A premises that exports (rooftop PV) is not accused, and a reversed meter still is.

The current register is a magnitude. While a premises exports, its current raises the
voltage instead of lowering it, so dV against dI and u = V + Z*I flip sign. The engine
reads voltage physics (impedance fits, unexplained steps, R11's and R15's corrected
voltage) from pairs of importing readings only, and fits the exporting pairs apart: a
source raises V as it exports more, a reversed meter's consumption (read negative) lowers
it. R05 never accuses a source, and fires at once on a load's physics. While the voltage
has not told, it fires after ``undecided_duration_s``: 10 minutes by default (a fleet
without generation), 18 hours in the setting for a fleet with rooftop PV, which the PV
tests use. The zero, level and standby cues (R02, R03, R12, R13) stand down on a premises
that exported in the last day or whose voltage shows a source. Here a meter behind a
0.2 ohm service draws stepping loads and, on some days, exports at midday.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from engine_runs import DAY, HOUR, MIN, T0, FixedClock, final_events

from stream.codecs import ReadingBatch
from stream.engine import Engine, impedance_fit
from stream.settings import Settings

PROSUMER_WAIT_S = 64800.0  # the README's setting for a fleet with rooftop PV

Z_OHM = 0.2
VOLTAGE_CUES = {"unmetered_load", "impedance_rise", "recurring_sag", "peer_voltage_dip"}


def prosumer(days: int, export_days: set[int], seed: int = 3) -> ReadingBatch:
    """5-minute readings of one meter: loads stepping every 30 min between 0.5 and 15 A (2 %
    noise),
    and on ``export_days`` 25 A of PV from 10:00 to 14:00; V = 231 - Z*I_net + noise."""
    rng = np.random.default_rng(seed)
    ts = T0 + np.arange(days * 288) * 5 * MIN
    # (a load never holds its current to the last digit: registers that repeat exactly
    # for half an hour are R14's stuck registers)
    load = np.repeat(rng.uniform(0.5, 15.0, days * 48), 6) * rng.normal(1.0, 0.02, days * 288)
    hour = (ts % DAY) / HOUR
    sunny = np.isin((ts - T0) // DAY, list(export_days)) & (hour >= 10) & (hour < 14)
    i_net = load - 25.0 * sunny
    v = 231.0 - Z_OHM * i_net + rng.normal(0.0, 0.05, len(ts))
    pf = np.where(i_net >= 0, 0.95, -0.95)
    v, i = np.round(v, 1), np.round(np.abs(i_net), 2)
    return ReadingBatch.from_columns(
        meter_id=np.full(len(ts), "PROSUMER-1", dtype=object),
        ts_ms=ts,
        p=np.round(v * i * pf, 1),
        v=v,
        i=i,
        pf=pf,
    )


def prosumer_settings(tmp_path: Path) -> Settings:
    """The default thresholds with the PV fleet's R05 wait."""
    default = Settings().thresholds_file.read_text()
    assert "undecided_duration_s = 600.0" in default
    path = tmp_path / "thresholds.toml"
    path.write_text(
        default.replace("undecided_duration_s = 600.0", f"undecided_duration_s = {PROSUMER_WAIT_S}")
    )
    return Settings(thresholds_file=path)


def run(batch: ReadingBatch, settings: Settings | None = None) -> tuple[Engine, list]:
    engine = Engine.from_settings(settings or Settings(), scorer=None, clock=FixedClock())
    events = final_events(engine, batch, 2_000).values()
    return engine, [ev for ev in events if ev.theft_likely]


def test_export_does_not_drag_the_impedance_fit_or_accuse_through_the_voltage() -> None:
    batch = prosumer(days=8, export_days={2, 3, 4, 5, 6, 7})
    assert (batch.p < 0).mean() > 0.1  # it does export
    engine, alerts = run(batch)
    z, se = impedance_fit(engine.state.imp_long[:1])
    assert abs(z[0] - Z_OHM) < 0.02 and se[0] < 0.01, (z, se)
    voltage = [ev for ev in alerts if VOLTAGE_CUES & set(ev.cues)]
    assert voltage == [], [(ev.start_ms, sorted(ev.cues)) for ev in voltage]


def test_a_new_pv_install_is_not_accused_and_its_export_reads_as_a_source(
    tmp_path: Path,
) -> None:
    # four days of plain import, then PV every day: a reversed meter and a bypass would
    # also show export and a net load below the standby floor
    batch = prosumer(days=8, export_days={4, 5, 6, 7})
    engine, alerts = run(batch, prosumer_settings(tmp_path))
    assert alerts == [], [(ev.start_ms, sorted(ev.cues)) for ev in alerts]
    z_export, se = impedance_fit(engine.state.imp_export[:1])
    assert abs(z_export[0] + Z_OHM) < 0.03 and se[0] < 0.05, (z_export, se)


def reversed_from(batch: ReadingBatch, day: int, flat_voltage: bool = False) -> ReadingBatch:
    """The same premises (no PV) with its meter reversed from ``day``: P and PF read negative,
    V and I as before; ``flat_voltage``: a voltage register too coarse to see the load."""
    on = batch.ts_ms >= T0 + day * DAY
    v = np.full(len(batch), 231.0) if flat_voltage else batch.v
    return ReadingBatch.from_columns(
        meter_id=batch.meter_id,
        ts_ms=batch.ts_ms,
        p=np.where(on, -1.0, 1.0) * np.round(v * batch.i * np.abs(batch.pf), 1),
        v=v,
        i=batch.i,
        pf=np.where(on, -1.0, 1.0) * batch.pf,
    )


def test_a_reversed_meter_is_accused_within_the_hour_its_voltage_reads_a_load() -> None:
    onset = T0 + 4 * DAY
    engine, alerts = run(reversed_from(prosumer(days=6, export_days=set()), day=4))
    r05 = [ev for ev in alerts if "reverse_flow" in ev.cues]
    assert r05, [(ev.start_ms, sorted(ev.cues)) for ev in alerts]
    assert min(ev.detected_at_ms for ev in r05) - onset <= HOUR
    z_export, _ = impedance_fit(engine.state.imp_export[:1])
    assert abs(z_export[0] - Z_OHM) < 0.03, z_export


def test_a_reversed_meter_whose_voltage_cannot_tell_is_accused_after_the_wait(
    tmp_path: Path,
) -> None:
    onset = T0 + 4 * DAY
    batch = reversed_from(prosumer(days=6, export_days=set()), day=4, flat_voltage=True)
    for settings, wait_s in ((Settings(), 600.0), (prosumer_settings(tmp_path), PROSUMER_WAIT_S)):
        engine, alerts = run(batch, settings)
        assert engine.thresholds.value("reverse_flow", "undecided_duration_s") == wait_s
        r05 = [ev for ev in alerts if "reverse_flow" in ev.cues]
        assert r05, [(ev.start_ms, sorted(ev.cues)) for ev in alerts]
        first = min(ev.detected_at_ms for ev in r05)
        assert onset + wait_s * 1000 <= first <= onset + wait_s * 1000 + HOUR, (wait_s, first)


def test_a_meter_that_never_exports_fits_the_same_service() -> None:
    engine, alerts = run(prosumer(days=8, export_days=set()))
    z, _ = impedance_fit(engine.state.imp_long[:1])
    assert abs(z[0] - Z_OHM) < 0.02
    assert alerts == []
