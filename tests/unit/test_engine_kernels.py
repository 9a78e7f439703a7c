"""The compiled pane-round kernels (stream.kernels) against plain numpy on literal arrays.

The kernels must give the engine's numpy code's numbers bit for bit: numpy's pairwise
sums (not a plain loop), numpy's minimum/maximum/clip on NaN and signed zeros, float32
state kept in float32. The whole-engine equivalence is checked by replaying files (the
events are byte-identical); these pin the building blocks and the edge cases: an empty
round, a meter with one reading, a meter with several.
"""

from __future__ import annotations

import numpy as np
import pytest

import stream.engine as engine
from stream import kernels
from stream.engine import MeterState, impedance_fit
from stream.settings import Settings
from stream.windows import Segments, runs_in_segments

HOP_MS = 60_000


def test_stat_columns_are_one_numbering_the_engine_shares() -> None:
    names = ["N", "SP", "SP2", "MINP", "MAXP", "SV", "MINV", "SI", "SPF", "SPF2", "NPF"]
    names += ["NZERO", "NNEG", "NFLAT", "NRES", "SRES", "MAXSTEP", "NSAG", "SVIPF", "SDVDI"]
    names += ["SDI2", "SDV2", "NDIFF", "MINE", "MAXE", "SABSE", "NPFLOW"]
    # every column once (the engine imports them from the kernels)
    assert sorted(getattr(kernels, n) for n in names) == list(range(kernels.N_STATS))
    assert (engine.N, engine.NNEG, engine.SV) == (kernels.N, kernels.NNEG, kernels.SV)
    assert kernels.N_STATS == engine.N_STATS and kernels.N_RUNS == engine.N_RUNS
    assert (kernels.HOUR_MS, kernels.DAY_MS) == (engine.HOUR_MS, engine.DAY_MS)
    assert (kernels.VBIN_MS, kernels.SB_MIN, kernels.N_SLOTS) == (
        engine.VBIN_MS,
        engine.SB_MIN,
        engine.N_SLOTS,
    )


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 8, 9, 12, 16, 24, 48, 127, 128, 129, 300, 1000])
def test_sums_are_numpys_pairwise_sums(n: int) -> None:
    rng = np.random.default_rng(n)
    x = rng.standard_normal(n) * 10.0 ** rng.uniform(-3, 6, n)
    assert kernels.reduce_sum(x, 0, n) == np.add.reduce(x)
    padded = np.concatenate([[1.5, -2.25], x])
    if n:
        # one segment of reduceat: its first element plus the pairwise sum of the rest
        assert kernels.reduceat_sum(padded, 2, n) == np.add.reduceat(padded, [0, 2])[1]
    if n <= kernels.PW_BLOCKSIZE:
        x32 = x.astype(np.float32)
        assert kernels.reduce_sum32(x32, 0, n) == np.add.reduce(x32)
        # a row of a (K, n) sum over axis 1 is the same reduction
        rows = np.stack([x32, x32[::-1].copy()])
        assert kernels.reduce_sum32(rows[1], 0, n) == rows.sum(axis=1)[1]


def test_sums_keep_numpys_signed_zeros() -> None:
    neg = np.array([-0.0, -0.0, -0.0])
    assert np.signbit(kernels.reduceat_sum(neg, 0, 3)) == np.signbit(np.add.reduceat(neg, [0])[0])
    assert np.signbit(kernels.reduceat_sum(neg, 0, 1))  # a one-element segment is itself
    assert not np.signbit(kernels.reduce_sum(neg, 0, 3))  # a reduce starts from +0.0
    assert kernels.reduce_sum(np.empty(0), 0, 0) == 0.0


def test_min_max_clip_follow_numpy_on_nan_and_zeros() -> None:
    values = [0.0, -0.0, 1.0, -1.0, np.nan, np.inf, -np.inf]
    for a in values:
        for b in values:
            for ours, theirs in ((kernels.np_min, np.minimum), (kernels.np_max, np.maximum)):
                got, want = ours(a, b), theirs(a, b)
                assert (np.isnan(got) and np.isnan(want)) or (
                    got == want and np.signbit(got) == np.signbit(want)
                )
        want = np.clip(np.array([a]), 0.0, 2.0)[0]
        got = kernels.np_clip(a, 0.0, 2.0)
        assert (np.isnan(got) and np.isnan(want)) or (
            got == want and np.signbit(got) == np.signbit(want)
        )


def test_scalar_impedance_fit_is_the_engines() -> None:
    sums = np.array([[-20.0, 100.0, 4.5, 50.0], [0.0, 0.5, 0.0, 3.0], [3.0, 40.0, 9.0, 12.0]])
    z, se = impedance_fit(sums)
    for k in range(len(sums)):
        zk, sek = kernels.impedance_fit(*sums[k])
        assert (zk == z[k] or (np.isnan(zk) and np.isnan(z[k]))) and (
            sek == se[k] or (np.isnan(sek) and np.isnan(se[k]))
        )


def _measurement() -> dict[str, float]:
    return {
        "max_consecutive_gap_s": 1800.0,
        "p_zero_w": 5.0,
        "sag_step_v": 2.5,
        "sag_i_quiet_a": 0.25,
        "default_i_step_a": 0.01,
        "default_v_step_v": 0.1,
        "residual_abs_tol_w": 8.0,
        "residual_rel_tol_ratio": 0.12,
        "default_pf_step_pf": 0.01,
        "i_min_a": 0.05,
        "pf_min_va": 100.0,
        "under_read_abs_tol_w": 2.5,
        "under_read_rel_tol_ratio": 0.03,
        "v_present_v": 60.0,
        "zero_floor_share": 0.25,
        "zero_share_of_daily": 0.015,
        "zero_share_of_hour": 0.0,
        "zero_daily_max_standby_share": 0.5,
    }


def _pane_facts(st: MeterState, m, ts, p, v, i, pf):
    prm = np.array([_measurement()[k] for k in kernels.MEAS_PARAMS])
    return kernels.pane_facts(
        np.asarray(m, dtype=np.int64),
        np.asarray(ts, dtype=np.int64),
        np.asarray(p, dtype=np.float64),
        np.asarray(v, dtype=np.float64),
        np.asarray(i, dtype=np.float64),
        np.asarray(pf, dtype=np.float64),
        HOP_MS,
        prm,
        0.5,
        3600.0,
        True,
        st.last_ts,
        st.last_p,
        st.last_v,
        st.last_i,
        st.last_pf,
        st.i_step,
        st.v_step,
        st.cadence_s,
        st.run_n,
        st.run_start,
        st.stuck_run_n,
        st.stuck_run_start,
        st.flat_max_ms,
        st.stuck_max_ms,
        st.recent_ts,
        st.base_w,
        st.base_p,
        st.floor_days_w,
        st.imp_long,
    )


def test_pane_facts_of_an_empty_round_is_empty() -> None:
    st = MeterState(panes=10, trend_days=14, capacity=4)
    before = {k: a.copy() for k, a in st.arrays.items()}
    out = _pane_facts(st, [], [], [], [], [], [])
    assert all(len(x) == 0 for x in out)
    assert out[2].shape == (0, kernels.N_STATS)
    assert all(np.array_equal(before[k], a, equal_nan=True) for k, a in st.arrays.items())


def test_pane_facts_match_numpy_on_one_and_several_readings() -> None:
    st = MeterState(panes=10, trend_days=14, capacity=4)
    # meter 1: one reading of one pane, its previous reading carried in the state;
    # meter 2: four readings of one pane (a 15 s cadence), two of them repeating
    st.last_ts[1], st.last_p[1], st.last_v[1] = 540_000, 800.0, 231.0
    st.last_i[1], st.last_pf[1] = 3.6, 0.96
    st.recent_ts[1] = [540_000, 480_000, 420_000, 360_000]
    st.run_n[2, 0], st.run_start[2, 0] = 2.0, 500_000  # a carried flat run
    m = [1, 2, 2, 2, 2]
    ts = [600_000, 600_000, 615_000, 630_000, 645_000]
    p = [790.0, 120.0, 120.0, 120.0, -40.0]
    v = [230.0, 229.5, 229.5, 229.5, 232.0]
    i = [3.5, 0.55, 0.55, 0.55, 0.3]
    pf = [0.98, 0.95, 0.95, 0.95, -0.6]
    out = _pane_facts(st, m, ts, p, v, i, pf)
    seg_m, gpane, stats, runs_n, runs_s = out[:5]
    assert seg_m.tolist() == [1, 2] and gpane.tolist() == [10, 10]
    # the sums: reduceat over each meter's readings; the extremes: min/max
    pa, va = np.array(p), np.array(v)
    for col, vals in ((kernels.N, np.ones(5)), (kernels.SP, pa), (kernels.SV, va)):
        assert stats[:, col].tolist() == np.add.reduceat(vals, [0, 1]).tolist()
    assert stats[:, kernels.SP2].tolist() == np.add.reduceat(pa * pa, [0, 1]).tolist()
    assert stats[:, kernels.MINP].tolist() == [790.0, -40.0]
    assert stats[:, kernels.MAXP].tolist() == [790.0, 120.0]
    assert stats[:, kernels.NNEG].tolist() == [0.0, 1.0]
    # the flat readings (all channels equal to the previous) continue meter 2's run
    assert stats[:, kernels.NFLAT].tolist() == [0.0, 2.0]
    flat = np.array([False, False, True, True, False])
    n_ref, start_ref = runs_in_segments(
        flat, ~flat, np.array(ts), Segments.from_keys(np.array(m)), np.zeros(2), np.full(2, -1)
    )
    # the carried run of 2 is reset by meter 2's first reading (not flat against nothing)
    assert runs_n[:, 0].tolist() == [n_ref[0], n_ref[-1]] == [0.0, 0.0]
    assert st.flat_max_ms[2] == 15_000  # the run from 615 s to 630 s ended at 645 s
    # the last-reading state and the recent timestamps, newest first
    assert st.last_ts[1:3].tolist() == [600_000, 645_000]
    assert st.recent_ts[1].tolist() == [600_000, 540_000, 480_000, 420_000]
    assert st.recent_ts[2].tolist() == [645_000, 630_000, 615_000, 600_000]
    # cadence: the mean interval of the pane's consecutive readings
    assert st.cadence_s[1] == np.float32(60.0) and st.cadence_s[2] == np.float32(15.0)
    # resolution: the smallest non-zero steps seen
    assert st.v_step[2] == np.float32(2.5) and st.i_step[1] == np.float32(np.float64(3.6 - 3.5))
    assert runs_s.shape == (2, kernels.N_RUNS + 1)


def test_zero_is_never_the_premises_standby_once_its_daily_minima_are_known() -> None:
    # three premises drawing 2.7 kW at every hour (1.5 % of that is 40.5 W): meter 0 idled
    # at 40 W every day; meter 1 has under three days of minima; meter 2 idled at 40 W but
    # its last two days were bypassed in the evening (minima 1 W: its floor, the second
    # lowest, fell to 1 W, the highest minimum did not)
    st = MeterState(panes=10, trend_days=14, capacity=4)
    st.base_w[:3] = 1e9  # every hour slot ready
    st.base_p[:3] = 2700.0
    st.floor_days_w[0] = 40.0
    st.floor_days_w[2] = [40.0, 40.0, 40.0, 40.0, 40.0, 1.0, 1.0]
    pane = 600_000
    for p_w, zero in ((40.0, [0, 1, 0]), (19.0, [1, 1, 1]), (25.0, [0, 1, 0])):
        pane += HOP_MS
        three = [pane] * 3, [p_w] * 3, [230.0] * 3, [0.2] * 3, [0.9] * 3
        stats = _pane_facts(st, [0, 1, 2], *three)[2]
        # meters 0 and 2: zero only at or below half the 40 W standby; meter 1: 1.5 % of
        # its daily mean
        assert stats[:, kernels.NZERO].tolist() == zero, p_w


def test_standby_floor_is_the_second_lowest_of_three_known_days() -> None:
    nan = np.nan
    rows = np.array(
        [
            [nan, nan, nan, nan, nan, 300.0, 250.0],  # two days: unknown yet
            [nan, nan, nan, nan, 300.0, 250.0, 400.0],
            [90.0, 80.0, 85.0, 120.0, 7.0, 88.0, 95.0],  # one low (bypassed) day ignored
            [-5.0, -6.0, -7.0, nan, nan, nan, nan],  # never below zero
        ],
        dtype=np.float32,
    )
    st = MeterState(panes=10, trend_days=14, capacity=4)
    st.floor_days_w[:4] = rows
    one = [1.0, 1.0, 1.0, 1.0]
    floor_w = _pane_facts(st, [0, 1, 2, 3], [60_000] * 4, one, [230.0] * 4, one, one)[11]
    for r, got in zip(rows, floor_w, strict=True):
        known = np.sort(r[np.isfinite(r)]).astype(np.float64)
        assert got == (max(known[1], 0.0) if len(known) >= 3 else 0.0)
    assert floor_w.tolist() == [0.0, 300.0, 80.0, 0.0]


def test_peer_round_with_nothing_to_judge_only_adds_the_hour() -> None:
    st = MeterState(panes=10, trend_days=14, capacity=4)
    st.peer_day[:, :] = 5
    stats = np.zeros((2, kernels.N_STATS))
    stats[:, kernels.SV] = [230.0, 231.0]
    stats[:, kernels.SI] = [2.0, 4.0]
    stats[:, kernels.N] = [1.0, 1.0]
    empty_i, empty_f = np.empty(0, dtype=np.int64), np.empty(0)
    facts, since = kernels.peer_round(
        np.array([0, 3]),
        stats,
        np.array([0.5, 0.2]),
        np.array([True, False]),
        np.array([1, 1]),
        np.array([7, 7]),
        np.array([5, 5]),
        np.array([False, False]),
        empty_i,
        empty_i,
        empty_f,
        empty_f,
        empty_i,
        0,
        2.0,
        1.0,
        st.peer_day,
        st.peer_u,
        st.peer_n,
        st.peer_dip,
        st.peer_dip_day,
    )
    assert since.tolist() == [-1, -1] and not facts.any()
    assert st.peer_u[0, 1, 7] == np.float32(231.0) and st.peer_n[0, 1, 7] == 1.0
    assert st.peer_u[3].sum() == 0.0  # no impedance known: nothing added


def _window_state(eng: engine.Engine, gm, gpane, pstats, since_s):  # type: ignore[no-untyped-def]
    st = eng.state
    gm = np.asarray(gm, dtype=np.int64)
    gpane = np.asarray(gpane, dtype=np.int64)
    end_ms = (gpane + 1) * HOP_MS
    since_s = np.asarray(since_s, dtype=np.float64)
    exps = np.exp(-since_s / np.array([21600.0, 7200.0, 86400.0, 1e9, 1800.0, 25200.0])[:, None])
    exps = np.vstack([exps, np.ones((3, len(gm)))])
    k = len(gm)
    return kernels.window_state(
        gm,
        gpane,
        np.asarray(pstats, dtype=np.float64).reshape(k, kernels.N_STATS),
        end_ms,
        since_s,
        exps,
        np.full(k, np.nan),
        3600.0,
        True,
        np.zeros(k),
        np.full(k, np.nan),
        np.full(k, np.nan),
        eng._window_params(),
        *(getattr(st, name) for name in _STATE_OF_WINDOW),
    )


_STATE_OF_WINDOW = (
    "ring_id ring last_pane base_w base_p base_p2 base_vw base_v base_i pf_base imp_short "
    "first_ts imp_start slow_p slow_exp drop_start sub_floor_s e_scale sag_start "
    "prev_pane_vi sag_ref sag_size vbin_id vbin vstep_base onset_last onset_hour onset_size "
    "onset_recur onset_recur_ts pf_low_ew pf_low_base pf_low_start day_cur day_cov_s "
    "day_sum_p day_sum_exp day_ratio sb_min_today_w sb_imp_today sb_days cadence_s "
    "export_share"
).split()


def _engine() -> engine.Engine:
    from rules.thresholds import load_thresholds

    eng = engine.Engine(engine.EngineConfig(), load_thresholds())
    eng.state.grow(4)
    return eng


def test_window_state_of_an_empty_round_is_empty() -> None:
    eng = _engine()
    out = _window_state(eng, [], [], np.empty((0, kernels.N_STATS)), [])
    rows, wsum, wmax_p, wmax_step = out[:4]
    assert rows.shape == (len(kernels.WINDOW_ROWS), 0) and wsum.shape == (0, kernels.N_STATS)
    assert len(wmax_p) == len(wmax_step) == 0


def test_window_sums_are_numpys_masked_sums_over_the_ring() -> None:
    eng = _engine()
    st = eng.state
    P = eng.config.panes
    rng = np.random.default_rng(7)
    # meter 0: panes 89..99 in its ring (89 overwritten by 99, same slot); meter 2: none
    for pane in (89, 95, 96, 98, 99):
        st.ring_id[0, pane % P] = pane
        st.ring[0, pane % P] = rng.uniform(0.5, 400.0, kernels.N_STATS).astype(np.float32)
    pstats = rng.uniform(0.5, 400.0, (2, kernels.N_STATS))
    pstats[:, kernels.N] = 1.0
    rows, wsum, wmax_p, wmax_step, expected_v, _, hbd = _window_state(
        eng, [0, 2], [100, 100], pstats, [60.0, 60.0]
    )
    # the reference: the engine's former dense path (one masked contraction over the ring)
    ring = st.ring[[0, 2]]
    rid = st.ring_id[[0, 2]]
    valid = (rid > 100 - P) & (rid <= 100)
    assert valid.sum(axis=1).tolist() == [5, 1]  # the new pane is in; pane 89 slid out
    want = np.einsum("kp,kps->ks", valid.astype(np.float64), ring, dtype=np.float64)
    for col in (kernels.N, kernels.SP, kernels.SV, kernels.SDVDI, kernels.SABSE):
        assert wsum[:, col].tolist() == want[:, col].tolist()
    want_max = np.where(valid, ring[:, :, kernels.MAXP], -np.inf).max(axis=1)
    assert wmax_p.dtype == np.float32 and wmax_p.tolist() == want_max.tolist()
    want_step = np.where(valid, ring[:, :, kernels.MAXSTEP], 0.0).max(axis=1)
    assert wmax_step.tolist() == want_step.tolist()
    want_min = np.where(valid, ring[:, :, kernels.MINP], np.inf).min(axis=1)
    assert wsum[:, kernels.MINP].tolist() == want_min.tolist()
    # means, and the meter with one pane: its window is its pane
    mean_p = rows[kernels.WINDOW_ROWS.index("mean_p")]
    assert mean_p.tolist() == (want[:, kernels.SP] / want[:, kernels.N]).tolist()
    assert wsum[1, kernels.SP] == np.float64(np.float32(pstats[1, kernels.SP]))
    # nothing learnt yet: no baseline, not warm; hour 1 of day 0 (a Thursday)
    assert np.isnan(expected_v).all() and not rows[kernels.WINDOW_ROWS.index("warm")].any()
    assert hbd[:, 0].tolist() == [1, 0, 1]
    assert st.last_pane[[0, 2]].tolist() == [100, 100]


def test_learn_state_of_an_empty_round_changes_nothing() -> None:
    eng = _engine()
    st = eng.state
    before = {k: a.copy() for k, a in st.arrays.items()}
    empty_i = np.empty(0, dtype=np.int64)
    kernels.learn_state(
        empty_i,
        np.empty((3, 0), dtype=np.int64),
        np.empty((len(kernels.WINDOW_ROWS), 0)),
        np.empty((0, kernels.N_STATS)),
        empty_i,
        np.empty(0),
        np.empty((9, 0)),
        np.empty(0, dtype=bool),
        np.array([25200.0, 1800.0, 0.04, 2.5, 3600.0]),
        *(getattr(st, name) for name in _STATE_OF_LEARN),
    )
    assert all(np.array_equal(before[k], a, equal_nan=True) for k, a in st.arrays.items())


_STATE_OF_LEARN = (
    "base_w base_p base_p2 base_vw base_v base_i pf_base pf_low_base e_scale export_share "
    "imp_long onset_last vstep_base floor_day floor_today_w floor_days_w"
).split()


def _feature_inputs(n: int, seed: int) -> dict[str, np.ndarray]:
    """Window inputs with the awkward cases mixed in: empty windows, one reading, NaN
    and infinite baselines, zero and negative sums, signed zeros, float32 columns where
    the engine has them."""
    rng = np.random.default_rng(seed)
    wsum = rng.standard_normal((n, kernels.N_STATS)) * 10.0 ** rng.uniform(-2, 4, (n, 1))
    wsum[:, kernels.N] = rng.choice([0.0, 1.0, 2.0, 3.0, 10.0], n)
    wsum[:, kernels.NPF] = rng.choice([0.0, 1.0, 2.0, 5.0], n)

    def column(dtype: type = np.float64, scale: float = 100.0) -> np.ndarray:
        values = rng.standard_normal(n) * scale
        odd = rng.random(n)
        values[odd < 0.1] = np.nan
        values[(odd >= 0.1) & (odd < 0.13)] = np.inf
        values[(odd >= 0.13) & (odd < 0.16)] = -0.0
        values[(odd >= 0.16) & (odd < 0.2)] = 0.0
        return values.astype(dtype)

    return {
        "wsum": wsum,
        "wmax_step": np.abs(column(np.float32, 500.0)),
        "expected_p": column(scale=400.0),
        "expected_std": np.abs(column(scale=50.0)),
        "daily": column(scale=300.0),
        "expected_v": (230.0 + column(np.float32, 3.0)).astype(np.float32),
        "expected_i": np.abs(column(np.float32, 5.0)),
        "pf_base": column(scale=0.5),
        "pf_mean": column(scale=0.5),
        "impedance": column(scale=0.5),
        "slope": column(scale=0.1),
        "cadence": np.abs(column(scale=300.0)),
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_window_features_are_the_numpy_features_bit_for_bit(seed: int) -> None:
    from detectors.features import FEATURE_NAMES, RATIO_FLOOR_W

    eng = engine.Engine.from_settings(Settings(), scorer=None)
    fin = _feature_inputs(500, seed)
    with np.errstate(all="ignore"):  # inf - inf and 0 / 0 are among the cases
        expected = eng._features(fin)
    got = np.full((500, len(FEATURE_NAMES)), np.nan)
    rows = np.random.default_rng(seed).permutation(500)  # written where they belong
    kernels.window_features(
        *(fin[key] for key in kernels.FEATURE_INPUTS),
        float(eng.config.window_s),
        RATIO_FLOOR_W,
        got,
        rows,
    )
    # the same bits: signed zeros and all
    np.testing.assert_array_equal(got[rows].view(np.int64), expected.view(np.int64))


def test_the_warm_up_runs_every_kernel() -> None:
    assert engine.warm_up_kernels(Settings()) > 0.0
    for name in ("pane_facts", "window_state", "learn_state", "peer_round", "window_features"):
        assert getattr(kernels, name).signatures, name
    from detectors import kernels as detector_kernels

    for name in (
        "walk_leaves",
        "add_walks",
        "leaf_scores_of",
        "leaf_scores_from_mass",
        "dense_layer",
        "unit_map_ranged",
        "standardise_t",
    ):
        assert getattr(detector_kernels, name).signatures, name
    # one version for blocks, column slices and masked picks (C, A and F layouts)
    for kernel in (detector_kernels.add_walks, detector_kernels.leaf_scores_of):
        (signature,) = kernel.signatures
        assert signature[0].layout == "A"
