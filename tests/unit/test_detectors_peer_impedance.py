"""R13's peer reference (detectors/peer_impedance.py) on literal voltage and current steps."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.peer_impedance import (
    comoment_decay,
    correlated_peers,
    learn_comoment,
    peer_reference,
    referenced_sums,
)
from rules.thresholds import load_thresholds

T = load_thresholds().section("peer_impedance")


def two_transformers(steps: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """15-minute steps of eight meters, four on each of two transformers: each transformer
    moves its meters' voltage together (1 V), each meter's own load steps its current and,
    through its 0.2 ohm service cable, its voltage. Returns (dv, di, transformer)."""
    rng = np.random.default_rng(seed)
    transformer = np.repeat([0, 1], 4)
    shared = rng.normal(0.0, 1.0, (steps, 2))[:, transformer]
    di = rng.normal(0.0, 3.0, (steps, 8))
    dv = shared - 0.2 * di + rng.normal(0.0, 0.05, (steps, 8))
    return dv, di, transformer


def learnt(dv: np.ndarray) -> np.ndarray:
    comoment = np.zeros((dv.shape[1], dv.shape[1]))
    for row in dv:
        comoment = learn_comoment(comoment, row, T)
    return comoment


def test_peers_are_the_meters_of_the_same_transformer() -> None:
    dv, _, transformer = two_transformers()
    peers = correlated_peers(learnt(dv), T["min_step_corr_ratio"])
    same = transformer[:, None] == transformer[None, :]
    assert np.array_equal(peers, same & ~np.eye(8, dtype=bool))


def test_the_referenced_fit_finds_the_cable_that_the_transformer_hides() -> None:
    dv, di, _ = two_transformers()
    peers = correlated_peers(learnt(dv[:200]), T["min_step_corr_ratio"])
    own_xy = own_xx = ref_xy = ref_xx = 0.0
    for k in range(200, 400):
        xy, xx = referenced_sums(dv[k], di[k], peer_reference(dv[k], peers, 3))
        ref_xy += xy[0]
        ref_xx += xx[0]
        own_xy += dv[k, 0] * di[k, 0]
        own_xx += di[k, 0] ** 2
    # the peers' own loads are in their median too: a slight bias, not the transformer's 1 V
    assert abs(-ref_xy / ref_xx - 0.2) < 0.03
    # the own fit over the same steps is right on average but noisy: the transformer's
    # 1 V moves are five times the cable's 0.6 V per step; over many short windows the
    # referenced fits spread far less
    own_fits, ref_fits = [], []
    for start in range(0, 400, 20):
        window = slice(start, start + 20)
        ref = np.array([peer_reference(row, peers, 3) for row in dv[window]])
        xy, xx = referenced_sums(dv[window].ravel(), di[window].ravel(), ref.ravel())
        meter0 = np.arange(20) * 8
        ref_fits.append(-xy[meter0].sum() / xx[meter0].sum())
        own_fits.append(-(dv[window, 0] * di[window, 0]).sum() / (di[window, 0] ** 2).sum())
    assert np.std(ref_fits) < 0.5 * np.std(own_fits), (np.std(ref_fits), np.std(own_fits))


def test_no_peers_or_too_few_steps_give_no_reference_and_no_sums() -> None:
    dv = np.array([0.5, np.nan, 0.4, 0.6])
    peers = ~np.eye(4, dtype=bool)
    ref = peer_reference(dv, peers, 3)
    # each meter with a step has 2 peers with one; the meter without has 3, but no step
    assert np.isnan(ref[[0, 2, 3]]).all() and ref[1] == 0.5
    xy, xx = referenced_sums(dv, np.array([1.0, 2.0, 3.0, 4.0]), ref)
    assert xy.tolist() == [0.0] * 4 and xx.tolist() == [0.0] * 4
    # a meter never seen stepping has no correlation, so it is nobody's peer
    comoment = np.array([[1.0, 0.9, 0.0], [0.9, 1.0, 0.0], [0.0, 0.0, 0.0]])
    assert not correlated_peers(comoment, 0.4)[:, 2].any()
    assert not correlated_peers(comoment, 0.4)[2].any()


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.floats(-20.0, 20.0, allow_nan=False),
    st.integers(0, 7),
)
def test_a_step_shared_by_the_whole_transformer_leaves_the_referenced_sums_alone(
    seed: int, shift: float, gap: int
) -> None:
    rng = np.random.default_rng(seed)
    dv = rng.normal(0.0, 1.0, 8)
    di = rng.normal(0.0, 3.0, 8)
    dv[gap] = np.nan  # one meter without a step this time
    peers = ~np.eye(8, dtype=bool)
    xy, xx = referenced_sums(dv, di, peer_reference(dv, peers, 4))
    xy2, xx2 = referenced_sums(dv + shift, di, peer_reference(dv + shift, peers, 4))
    np.testing.assert_allclose(xy2, xy, atol=1e-9)
    assert np.array_equal(xx, xx2)


def test_learning_forgets_with_its_memory_and_skips_missing_steps() -> None:
    c = learn_comoment(np.eye(2), np.array([np.nan, 2.0]), {"memory_steps_n": 1.0})
    np.testing.assert_allclose(c, [[np.exp(-1.0), 0.0], [0.0, np.exp(-1.0) + 4.0]])


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 8), st.booleans())
def test_the_engines_compiled_pass_gives_the_same_numbers_bit_for_bit(
    seed: int, n: int, learn: bool
) -> None:
    from stream.kernels import judge_pz_slot

    rng = np.random.default_rng(seed)
    dv, di, _ = two_transformers(steps=60, seed=seed)
    comoment = learnt(dv[:40, :n] * rng.uniform(0.5, 2.0, n))
    comoment[rng.integers(n), :] = comoment[:, rng.integers(n)] = 0.0  # a meter never seen
    step = dv[50, :n].copy()
    step[rng.random(n) < 0.2] = np.nan
    current = di[50, :n]
    peers = correlated_peers(comoment, T["min_step_corr_ratio"])
    want_xy, want_xx = referenced_sums(step, current, peer_reference(step, peers, 3.0))
    want_c = learn_comoment(comoment, step, T) if learn else comoment
    got_c = comoment.copy()
    decay = comoment_decay(T)
    half_hour = dv[49, :n] + dv[50, :n]
    half_hour[rng.random(n) < 0.2] = np.nan
    got_xy, got_xx, got_y2 = judge_pz_slot(
        step, current, half_hour, got_c, learn, T["min_step_corr_ratio"], 3.0, decay
    )
    assert np.array_equal(got_xy, want_xy) and np.array_equal(got_xx, want_xx)
    # R16's half-hour steps, against the same peers (NaN: no step or no reference)
    want_y2 = half_hour - peer_reference(half_hour, peers, 3.0)
    assert np.array_equal(got_y2, want_y2, equal_nan=True)
    assert np.array_equal(got_c, want_c)
