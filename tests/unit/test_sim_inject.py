"""Theft injected into a real meter series (simulator/inject.py): literal cases, physics
properties (hypothesis) and error paths."""

from __future__ import annotations

import doctest
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import simulator.inject as inj
from simulator.config import THEFT_TYPES
from simulator.inject import (
    AMPDS2_RESOLUTION,
    DAY_MS,
    HOUR_MS,
    Injected,
    MeterSeries,
    TheftDraw,
    apply_theft,
    daily_windows,
    draw_theft,
    full_bypass,
    inject,
    interval_readings,
    meter_freeze,
    night_pump_hook,
    pf_tamper,
    register_tamper,
    reverse_meter,
)

# Explicit parameters of every type (the draw is tested separately).
PARAMS: dict[str, dict[str, Any]] = {
    "full_bypass": {"metered_fraction": 0.01},
    "partial_bypass": {"bypassed_fraction": 0.5},
    "register_tamper": {"under_report_fraction": 0.4},
    "meter_freeze": {},
    "reverse_meter": {},
    "pf_tamper": {"mode": "jitter", "pf_level": 0.4, "seed": 5},
    "gradual_bypass": {"max_fraction": 0.6, "ramp_days": 0.01},
    "night_pump_hook": {"pump_w": 2000.0, "z_ohm": 0.04},
}
# Types after which an honest meter's identity P = V x I x PF still holds.
KEEPS_IDENTITY = tuple(t for t in THEFT_TYPES if t != "register_tamper")


def make(kind: str, s: MeterSeries, start_ms: int, end_ms: int | None = None) -> Injected:
    window = (0.0, 24.0) if kind in ("full_bypass", "night_pump_hook") else None
    return apply_theft(s, TheftDraw(kind, start_ms, end_ms, PARAMS[kind], window))


@st.composite
def honest_series(draw: st.DrawFn) -> MeterSeries:
    """A meter whose readings satisfy P = V x I x PF exactly (before any rounding)."""
    n = draw(st.integers(3, 120))
    step = draw(st.sampled_from([1_000, 60_000, 300_000, 900_000]))
    t0 = draw(st.integers(1_300_000_000_000, 1_800_000_000_000))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    v = rng.uniform(100.0, 250.0, n)
    i = rng.choice([0.0, 1.0], n) * rng.uniform(0.0, 40.0, n)
    pf = rng.uniform(0.1, 1.0, n)
    return MeterSeries.of(t0 + np.arange(n) * step, v * i * pf, v, i, pf)


def copy_of(s: MeterSeries) -> MeterSeries:
    return MeterSeries.of(s.ts_ms, s.p, s.v, s.i, s.pf)


def same(a: MeterSeries, b: MeterSeries) -> bool:
    return all(np.array_equal(getattr(a, f), getattr(b, f)) for f in ("ts_ms", "p", "v", "i", "pf"))


# --- properties ------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(honest_series(), st.sampled_from(THEFT_TYPES), st.data())
def test_before_the_start_and_after_the_end_the_series_is_untouched(
    s: MeterSeries, kind: str, data: st.DataObject
) -> None:
    a = data.draw(st.integers(1, len(s) - 1))
    b = data.draw(st.integers(a + 1, len(s)))
    end = int(s.ts_ms[b]) if b < len(s) else None
    before = copy_of(s)
    out = make(kind, s, int(s.ts_ms[a]), end)
    assert same(s, before), "the input was mutated"
    assert np.array_equal(out.series.ts_ms, s.ts_ms)
    outside = np.ones(len(s), dtype=bool)
    outside[a:b] = False
    for f in ("p", "v", "i", "pf"):
        assert np.array_equal(getattr(out.series, f)[outside], getattr(s, f)[outside]), f
    assert out.intervals[0][0] == s.ts_ms[a]
    assert all(kwh >= 0 for kwh in out.unbilled_kwh)


@settings(max_examples=60, deadline=None)
@given(honest_series(), st.sampled_from(KEEPS_IDENTITY), st.data())
def test_p_equals_v_i_pf_still_holds_where_the_theft_keeps_it(
    s: MeterSeries, kind: str, data: st.DataObject
) -> None:
    a = data.draw(st.integers(0, len(s) - 1))
    out = make(kind, s, int(s.ts_ms[a])).series
    np.testing.assert_allclose(out.p, out.v * out.i * out.pf, rtol=1e-9, atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(honest_series(), st.data())
def test_register_tamper_breaks_the_identity_by_its_fraction(
    s: MeterSeries, data: st.DataObject
) -> None:
    a = data.draw(st.integers(0, len(s) - 1))
    out = make("register_tamper", s, int(s.ts_ms[a])).series
    np.testing.assert_allclose(out.p[a:], 0.6 * (out.v * out.i * out.pf)[a:], atol=1e-9)
    for f in ("v", "i", "pf"):
        assert np.array_equal(getattr(out, f), getattr(s, f))


@settings(max_examples=40, deadline=None)
@given(honest_series(), st.sampled_from(("full_bypass", "partial_bypass", "gradual_bypass")))
def test_bypass_keeps_voltage_and_pf_and_scales_p_and_i_alike(s: MeterSeries, kind: str) -> None:
    out = make(kind, s, int(s.ts_ms[1])).series
    assert np.array_equal(out.v, s.v) and np.array_equal(out.pf, s.pf)
    assert np.all(out.p <= s.p + 1e-9) and np.all(out.i <= s.i + 1e-9)
    loaded = s.i > 0
    np.testing.assert_allclose(out.p[loaded] / s.p[loaded], out.i[loaded] / s.i[loaded])


@settings(max_examples=40, deadline=None)
@given(honest_series())
def test_night_pump_sags_only_the_voltage_by_z_times_pump_current(s: MeterSeries) -> None:
    out = make("night_pump_hook", s, int(s.ts_ms[1])).series
    expected_sag = 0.04 * 2000.0 / (0.8 * s.v[1:])
    np.testing.assert_allclose(s.v[1:] - out.v[1:], expected_sag)
    assert np.array_equal(out.i, s.i) and np.array_equal(out.pf, s.pf)


@settings(max_examples=40, deadline=None)
@given(honest_series(), st.sampled_from(THEFT_TYPES))
def test_rounded_injections_sit_on_the_meters_resolution(s: MeterSeries, kind: str) -> None:
    window = (0.0, 24.0) if kind in ("full_bypass", "night_pump_hook") else None
    draw = TheftDraw(kind, int(s.ts_ms[0]), None, PARAMS[kind], window)
    out = apply_theft(s, draw, resolution=AMPDS2_RESOLUTION).series
    changed = {f: getattr(out, f) != getattr(s, f) for f in ("p", "v", "i", "pf")}
    for f, step in (("p", 1.0), ("v", 0.1), ("i", 0.1), ("pf", 0.01)):
        x = getattr(out, f)[changed[f]] / step
        if kind != "meter_freeze":  # a freeze repeats a real (unrounded) reading
            np.testing.assert_allclose(x, np.rint(x), atol=1e-6)


@settings(max_examples=15, deadline=None)
@given(st.sampled_from(THEFT_TYPES), st.integers(0, 2**31 - 1))
def test_inject_is_seeded_and_starts_after_the_warm_up(kind: str, seed: int) -> None:
    n = 5 * 96
    ts = 1_700_000_000_000 + np.arange(n) * 15 * 60_000
    s = MeterSeries.of(ts, np.full(n, 96.0), np.full(n, 120.0), np.full(n, 1.0), np.full(n, 0.8))
    one = inject(s, kind, seed, utc_offset_h=-8.0)
    two = inject(s, kind, seed, utc_offset_h=-8.0)
    assert same(one.series, two.series) and one.intervals == two.intervals
    assert one.params == two.params and one.theft_type == kind
    assert one.intervals[0][0] >= ts[0] + 2 * DAY_MS
    assert one.intervals[-1][1] <= s.end_ms
    assert all(b > a for a, b in one.intervals)
    assert all((b - a) % (15 * 60_000) == 0 for a, b in one.intervals)


# --- literal cases ---------------------------------------------------------------------------


def hourly(n: int, p: float = 240.0, v: float = 120.0, i: float = 2.0, pf: float = 1.0) -> Any:
    return MeterSeries.of(np.arange(n) * HOUR_MS, [p] * n, [v] * n, [i] * n, [pf] * n)


def test_evening_bypass_lists_one_interval_per_local_day() -> None:
    s = hourly(72)
    out = full_bypass(s, 0, daily_window=(18.0, 2.0), utc_offset_h=-8.0)
    # 18:00 local at UTC-8 is 02:00 UTC
    assert out.intervals == (
        (2 * HOUR_MS, 4 * HOUR_MS),
        (26 * HOUR_MS, 28 * HOUR_MS),
        (50 * HOUR_MS, 52 * HOUR_MS),
    )
    assert out.series.p.tolist().count(0.0) == 6
    assert out.unbilled_kwh == pytest.approx((0.48, 0.48, 0.48))
    assert out.label_entries()[0] == {
        "type": "full_bypass",
        "start_ms": 2 * HOUR_MS,
        "end_ms": 4 * HOUR_MS,
        "params": {"metered_fraction": 0.0, "unbilled_kwh": 0.48},
    }


def test_daily_windows_cross_midnight_and_clip_to_the_span() -> None:
    assert daily_windows(HOUR_MS, DAY_MS, 23.0, 3.0) == [
        (HOUR_MS, 2 * HOUR_MS),
        (23 * HOUR_MS, DAY_MS),
    ]


def test_freeze_repeats_the_onset_reading_until_its_end() -> None:
    s = MeterSeries.of(
        [0, 60_000, 120_000, 180_000],
        [10.0, 20.0, 30.0, 40.0],
        [119.0, 120.0, 121.0, 122.0],
        [0.1, 0.2, 0.3, 0.4],
        [0.9, 0.8, 0.7, 0.6],
    )
    out = meter_freeze(s, 60_000, 180_000).series
    assert out.p.tolist() == [10.0, 20.0, 20.0, 40.0]
    assert out.v.tolist() == [119.0, 120.0, 120.0, 122.0]
    assert out.pf.tolist() == [0.9, 0.8, 0.8, 0.6]


def test_reverse_and_register_tamper_count_what_leaves_the_bill() -> None:
    s = hourly(3, p=500.0)
    assert reverse_meter(s, HOUR_MS).unbilled_kwh == (1.0,)
    assert register_tamper(s, HOUR_MS, under_report_fraction=0.5).unbilled_kwh == (0.5,)


def test_pump_outside_its_nightly_window_changes_nothing() -> None:
    s = hourly(24)
    out = night_pump_hook(s, 0, pump_w=2400.0, z_ohm=0.06, daily_window=(22.0, 4.0))
    assert out.intervals == ((0, 2 * HOUR_MS), (22 * HOUR_MS, 24 * HOUR_MS))
    sag = s.v - out.series.v
    assert sag[[0, 1, 22, 23]] == pytest.approx([1.5] * 4)
    assert np.all(sag[2:22] == 0)


def test_docstring_examples() -> None:
    result = doctest.testmod(inj, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 15 and result.failed == 0


# --- error paths -----------------------------------------------------------------------------


@pytest.mark.parametrize("start", [-1, 3 * HOUR_MS, 10 * HOUR_MS])
def test_a_start_outside_the_series_is_refused(start: int) -> None:
    with pytest.raises(ValueError, match="outside the series"):
        reverse_meter(hourly(3), start)


def test_an_end_before_the_start_is_refused() -> None:
    with pytest.raises(ValueError, match="not after start"):
        reverse_meter(hourly(5), 3 * HOUR_MS, 2 * HOUR_MS)


def test_unknown_theft_types_are_refused() -> None:
    s = hourly(5 * 24)
    with pytest.raises(ValueError, match="unknown theft type 'magnet'"):
        inject(s, "magnet", seed=0)
    with pytest.raises(ValueError, match="unknown theft type"):
        apply_theft(s, TheftDraw("magnet", 0, None, {}))


def test_a_series_too_short_for_a_theft_after_the_warm_up_is_refused() -> None:
    with pytest.raises(ValueError, match="too short"):
        draw_theft("reverse_meter", hourly(48), np.random.default_rng(0))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: full_bypass(s, 0, metered_fraction=1.5), "metered_fraction"),
        (lambda s: register_tamper(s, 0, under_report_fraction=-0.1), "under_report"),
        (lambda s: pf_tamper(s, 0, mode="sideways"), "mode"),
        (lambda s: night_pump_hook(s, 0, pump_w=0.0, z_ohm=0.05), "pump_w"),
        (lambda s: inj.gradual_bypass(s, 0, max_fraction=0.5, ramp_days=0), "ramp_days"),
        (
            lambda s: full_bypass(s, 0, 2 * HOUR_MS, daily_window=(12.0, 1.0)),
            "no daily window",
        ),
    ],
)
def test_bad_parameters_are_refused(call: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(hourly(6))


def test_malformed_series_are_refused() -> None:
    with pytest.raises(ValueError, match="same length"):
        MeterSeries.of([0, 1], [1, 2], [120], [1, 1], [1, 1])
    with pytest.raises(ValueError, match="strictly increasing"):
        MeterSeries.of([0, 0], [1, 2], [120, 120], [1, 1], [1, 1])
    with pytest.raises(ValueError, match="at least two"):
        MeterSeries.of([0], [1], [120], [1], [1])


# --- meterwatch inject (CLI) ----------------------------------------------------------------


def write_ampds2_csv(path: Any, days: float, cadence_s: int = 600) -> int:
    """An AMPds2-format file: a 20 W evening load every day, 120 V."""
    n = int(days * 86_400 // cadence_s)
    ts = 1_393_263_000 + np.arange(n) * cadence_s
    load = ((ts // 3600) % 24 == 3).astype(float)
    p, i = 20.0 * load, 0.2 * load
    v = 120.0 + 0.1 * (np.arange(n) % 7)
    apf = np.where(load > 0, 0.83, 0.05)
    rows = ["unix_ts,V,I,f,DPF,APF,P,Pt,Q,Qt,S,St"]
    rows += [
        f"{t},{vv:.1f},{ii:.1f},60.0,1.0,{a:.2f},{pp:.0f},0,0,0,0,0"
        for t, vv, ii, a, pp in zip(ts, v, i, apf, p, strict=True)
    ]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return n


def run_cli(*args: str) -> Any:
    from typer.testing import CliRunner

    from stream.cli import app

    return CliRunner().invoke(app, ["inject", *args])


def test_cli_builds_a_labelled_fleet_that_evaluate_reads(tmp_path: Any) -> None:
    import json

    import pyarrow.csv as pacsv

    from stream.evaluation import evaluate

    src = tmp_path / "real.csv"
    n = write_ampds2_csv(src, days=4.0)
    out = tmp_path / "fleet.csv"
    res = run_cli(str(src), "--out", str(out), "--per-type", "2", "--clean", "1", "--seed", "4")
    assert res.exit_code == 0, res.output
    labels = json.loads((tmp_path / "fleet.labels.json").read_text(encoding="utf-8"))
    assert labels["schema"] == "meterwatch.labels.v1" and labels["cadence_s"] == 600
    meters = labels["meters"]
    assert len(meters) == 2 * len(THEFT_TYPES) + 1
    assert [m["meter_id"] for m in meters][-1] == "AMPDS2-B1E-clean-1"
    assert sorted({m["theft"][0]["type"] for m in meters if m["theft"]}) == sorted(THEFT_TYPES)
    for m in meters:
        for theft in m["theft"]:
            assert theft["start_ms"] >= labels["start_ms"] + 2 * DAY_MS
            assert theft["end_ms"] <= labels["end_ms"]
            assert theft["params"]["unbilled_kwh"] >= 0
    table = pacsv.read_csv(out)
    assert table.column_names == ["meter_id", "ts", "power_w", "voltage_v", "current_a", "pf"]
    assert table.num_rows == n * len(meters) == labels["readings"]
    ids = np.asarray(table.column("meter_id").to_pylist())
    clean_p = table.column("power_w").to_numpy()[ids == "AMPDS2-B1E-clean-1"]
    assert clean_p.max() == 20.0 and len(clean_p) == n
    # the same seed gives the same file; another seed other starts
    again = tmp_path / "again.csv"
    assert (
        run_cli(
            str(src), "--out", str(again), "--per-type", "2", "--clean", "1", "--seed", "4"
        ).exit_code
        == 0
    )
    assert again.read_bytes() == out.read_bytes()
    result = evaluate(labels, [])
    assert result.thieves == 2 * len(THEFT_TYPES) and result.caught == 0


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        (None, [], "no such file"),
        ("unix_ts,V,I\n1,120,0\n2,120,0\n", [], "missing AMPds2 column"),
        ("days:1", [], "too short"),
        ("days:4", ["--types", "magnet"], "unknown theft type"),
        ("days:4", ["--out-suffix", ".json"], "must end in .parquet or .csv"),
        ("days:4", ["--per-type", "0", "--clean", "0"], "at least one meter"),
    ],
)
def test_cli_refuses_unusable_input_with_a_clear_error(
    tmp_path: Any, setup: str | None, args: list[str], message: str
) -> None:
    src = tmp_path / "real.csv"
    if setup is not None and setup.startswith("days:"):
        write_ampds2_csv(src, days=float(setup.split(":")[1]))
    elif setup is not None:
        src.write_text(setup, encoding="utf-8")
    out = tmp_path / "fleet.csv"
    if "--out-suffix" in args:
        out = tmp_path / "fleet.json"
        args = []
    res = run_cli(str(src), "--out", str(out), *args)
    assert res.exit_code != 0
    assert message in res.output, res.output
    assert not out.exists()


# --- interval readings (a head-end's k-minute export) ----------------------------------------


@settings(max_examples=40, deadline=None)
@given(honest_series(), st.sampled_from([2, 5, 15]))
def test_interval_readings_keep_energy_and_the_identity_of_an_honest_meter(
    s: MeterSeries, minutes: int
) -> None:
    s = MeterSeries.of(1_400_000_000_000 + np.arange(len(s)) * 60_000, s.p, s.v, s.i, s.pf)
    bucket = s.ts_ms // (minutes * 60_000)
    if len(np.unique(bucket)) < 2:
        with pytest.raises(ValueError, match="fewer than two"):
            interval_readings(s, minutes)
        return
    out = interval_readings(s, minutes)
    assert len(out) == len(np.unique(bucket))
    assert np.all(np.diff(out.ts_ms) > 0) and set(out.ts_ms) <= set(s.ts_ms)
    # the energy of each interval is kept (to export precision), so is the whole series'
    for b, ts, p in zip(np.unique(bucket), out.ts_ms, out.p, strict=True):
        assert ts // (minutes * 60_000) == b
        assert abs(p - s.p[bucket == b].mean()) <= 0.05 + 1e-9
    # P = V*I*PF holds where V barely moves inside an interval (here it jumps, so only the
    # interval's own V*I*PF mean is exact: PF is mean(V*I*PF) / mean(V*I))
    s_mean = np.array([(s.v * s.i)[bucket == b].mean() for b in np.unique(bucket)])
    # (up to the export's rounding: PF to 0.01, P to 0.1 W)
    err = np.abs(out.pf * s_mean - out.p)
    assert np.all(err <= 0.005 * s_mean + 0.05 + 1e-6), err


def test_interval_pf_comes_from_the_registers_not_from_a_forged_p() -> None:
    n = 60
    s = MeterSeries.of(np.arange(n) * 60_000, np.full(n, 960.0), np.full(n, 240.0),
                       np.full(n, 5.0), np.full(n, 0.8))  # fmt: skip
    tampered = register_tamper(s, 0, under_report_fraction=0.5).series
    out = interval_readings(tampered, 15)
    assert out.p.tolist() == [480.0] * 4 and out.pf.tolist() == [0.8] * 4
    # ... so the interval readings still break P = V*I*PF by the tamper's fraction
    assert np.allclose(out.v * out.i * out.pf, 2 * out.p)


def test_an_interval_under_a_minute_is_refused() -> None:
    s = MeterSeries.of([0, 60_000], [1.0, 1.0], [230.0, 230.0], [0.1, 0.1], [1.0, 1.0])
    with pytest.raises(ValueError, match="at least one minute"):
        interval_readings(s, 0)


def test_cli_exports_interval_readings(tmp_path: Any) -> None:
    import json

    import pyarrow.csv as pacsv

    src = tmp_path / "real.csv"
    write_ampds2_csv(src, days=4.0, cadence_s=60)
    out = tmp_path / "fleet.csv"
    args = (str(src), "--out", str(out), "--per-type", "1", "--clean", "1", "--seed", "4")
    res = run_cli(*args, "--interval-min", "15")
    assert res.exit_code == 0, res.output
    labels = json.loads((tmp_path / "fleet.labels.json").read_text(encoding="utf-8"))
    assert labels["cadence_s"] == 900 and labels["source"]["interval_min"] == 15
    table = pacsv.read_csv(out)
    assert table.num_rows == labels["readings"] == 4 * 96 * (len(THEFT_TYPES) + 1)
    assert run_cli(*args, "--interval-min", "0").exit_code != 0
