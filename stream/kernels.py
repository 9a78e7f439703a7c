"""Compiled (numba) kernels of the engine's pane rounds.

A pane round (:meth:`stream.engine.Engine._process_round` and ``_score_round``) holds one
pane per meter, ~2,000 meters and as many readings. Written with numpy it is about a
thousand numpy calls per round on arrays of that size, so the time went to per-call
overhead (dispatch, temporaries, gathers of the same state rows again and again), not
to arithmetic. Each kernel here replaces one block of those calls by one pass over the
round's meters (and their readings), reading and writing the engine's state arrays
(:class:`stream.engine.MeterState`) in place.

**Same numbers, bit for bit.** Every kernel repeats the numpy code it replaces operation
by operation, in the same order and the same precision:

* float32 state is read and written as float32, and widened where numpy widened it
  (NEP 50: a Python float next to a float32 array keeps the operation in float32, a
  float64 array widens it);
* sums numpy computed with ``np.add.reduce`` / ``.sum(axis=...)`` or
  ``np.add.reduceat`` are computed with numpy's own pairwise summation
  (:func:`pairwise_sum`), starting as numpy does (the reduce from +0.0, reduceat from the
  segment's first element), not by a plain loop, whose rounding differs;
* ``np.minimum``/``np.maximum`` (NaN-propagating, ties to the second operand) and
  ``np.clip`` are repeated by :func:`np_min`, :func:`np_max` and :func:`np_clip`, so
  even the sign of a zero is the same.

No fastmath (it would let LLVM reorder sums). ``cache=True`` keeps the compiled code next
to this module (``__pycache__``), so only the first process after a change compiles.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# numpy's pairwise summation: blocks of at most this many elements are summed with eight
# accumulators; longer ranges are split in two (numpy/_core/src/umath/loops_utils.h.src)
PW_BLOCKSIZE = 128


@njit(cache=True)
def pairwise_block(a, lo, n, neg_zero):  # type: ignore[no-untyped-def]
    """numpy's pairwise sum of ``a[lo:lo+n]`` for n <= 128, in the dtype of ``a``
    (``neg_zero``: -0.0 of that dtype): under 8 elements a plain loop from -0.0, else
    eight interleaved accumulators, combined as a tree, then the rest one by one."""
    if n < 8:
        res = neg_zero
        for k in range(n):
            res += a[lo + k]
        return res
    r0 = a[lo]
    r1 = a[lo + 1]
    r2 = a[lo + 2]
    r3 = a[lo + 3]
    r4 = a[lo + 4]
    r5 = a[lo + 5]
    r6 = a[lo + 6]
    r7 = a[lo + 7]
    k = 8
    stop = n - (n % 8)
    while k < stop:
        r0 += a[lo + k]
        r1 += a[lo + k + 1]
        r2 += a[lo + k + 2]
        r3 += a[lo + k + 3]
        r4 += a[lo + k + 4]
        r5 += a[lo + k + 5]
        r6 += a[lo + k + 6]
        r7 += a[lo + k + 7]
        k += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while k < n:
        res += a[lo + k]
        k += 1
    return res


@njit(cache=True)
def pairwise_sum(a, lo, n):  # type: ignore[no-untyped-def]
    """numpy's pairwise sum of the float64 ``a[lo:lo+n]``: the value ``np.add.reduce``
    adds onto its start. Beyond 128 elements numpy sums the two halves (the first a
    multiple of 8 long) recursively and adds them; here the same tree is walked with
    explicit stacks, because a cached numba function that calls a recursive one crashes
    (segfault) in a process that imported pyarrow before the cache was loaded."""
    if n <= PW_BLOCKSIZE:
        return pairwise_block(a, lo, n, -0.0)
    depth = 3 * 64
    los = np.empty(depth, dtype=np.int64)
    ns = np.empty(depth, dtype=np.int64)
    phase = np.empty(depth, dtype=np.int64)
    vals = np.empty(depth)
    top = 0
    nv = 0
    los[0], ns[0], phase[0] = lo, n, 0
    top = 1
    while top > 0:
        top -= 1
        l_, k_, ph = los[top], ns[top], phase[top]
        if k_ <= PW_BLOCKSIZE:
            vals[nv] = pairwise_block(a, l_, k_, -0.0)
            nv += 1
        elif ph == 0:
            k2 = k_ // 2
            k2 -= k2 % 8
            los[top], ns[top], phase[top] = l_, k_, 1
            los[top + 1], ns[top + 1], phase[top + 1] = l_ + k2, k_ - k2, 0
            los[top + 2], ns[top + 2], phase[top + 2] = l_, k2, 0
            top += 3
        else:
            # the left half was pushed last, so it was summed first
            left = vals[nv - 2]
            right = vals[nv - 1]
            vals[nv - 2] = left + right
            nv -= 1
    return vals[0]


@njit(cache=True)
def reduce_sum(a, lo, n):  # type: ignore[no-untyped-def]
    """``np.add.reduce(a[lo:lo+n])`` of float64 (also a row of ``.sum(axis=1)``): +0.0
    plus the pairwise sum."""
    return 0.0 + pairwise_sum(a, lo, n)


@njit(cache=True)
def reduce_sum32(a, lo, n):  # type: ignore[no-untyped-def]
    """``np.add.reduce(a[lo:lo+n])`` of float32, n <= 128, in float32."""
    return np.float32(0.0) + pairwise_block(a, lo, n, np.float32(-0.0))


@njit(cache=True)
def reduceat_sum(a, lo, n):  # type: ignore[no-untyped-def]
    """One segment of ``np.add.reduceat`` of float64 (n >= 1): the first element plus
    the pairwise sum of the rest (a one-element segment is the element itself, -0.0
    included)."""
    return a[lo] + pairwise_sum(a, lo + 1, n - 1)


@njit(cache=True)
def np_min(a, b):  # type: ignore[no-untyped-def]
    """``np.minimum(a, b)`` of two scalars: NaN if either is NaN, else the smaller, the
    second on a tie (so the sign of an equal zero is the second's)."""
    return a if (a < b or a != a) else b


@njit(cache=True)
def np_max(a, b):  # type: ignore[no-untyped-def]
    """``np.maximum(a, b)`` of two scalars (NaN-propagating, the second on a tie)."""
    return a if (a > b or a != a) else b


@njit(cache=True)
def np_clip(x, lo, hi):  # type: ignore[no-untyped-def]
    """``np.clip(x, lo, hi)`` of a scalar: NaN stays NaN, -0.0 stays -0.0."""
    if x < lo:
        return lo
    if x > hi:
        return hi
    return x


@njit(cache=True)
def fill_nan(x, value):  # type: ignore[no-untyped-def]
    """``detectors.features.fill_nan`` of a scalar."""
    return value if np.isnan(x) else x


@njit(cache=True)
def impedance_fit(sxy, sxx, syy, n):  # type: ignore[no-untyped-def]
    """``stream.engine.impedance_fit`` of one meter's sums: (z, its standard error)."""
    if sxx > 1.0 and n >= 10:
        z = -sxy / sxx
        resid = np_max(syy - z * z * sxx, 0.0) / np_max(n - 1, 1.0)
        return z, np.sqrt(resid / sxx)
    return np.nan, np.nan


# pane statistics (columns of the pane ring): the same numbering as stream.engine
(
    N,
    SP,
    SP2,
    MINP,
    MAXP,
    SV,
    MINV,
    SI,
    SPF,
    SPF2,
    NPF,
    NZERO,
    NNEG,
    NFLAT,
    NRES,
    SRES,
    MAXSTEP,
    NSAG,
    SVIPF,
    SDVDI,
    SDI2,
    SDV2,
    NDIFF,
    MINE,
    MAXE,
    SABSE,
    NPFLOW,
) = range(27)
N_STATS = 27
SUM_COLS = np.array(
    [N, SP, SP2, SV, SI, SPF, SPF2, NPF, NZERO, NNEG, NFLAT, NRES, SRES, NSAG, SVIPF]
    + [SDVDI, SDI2, SDV2, NDIFF, SABSE, NPFLOW],
    dtype=np.int64,
)
N_RUNS = 4  # flat, zero, residual, negative (run_n / run_start); then R14's stuck run
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
RUN_MS_MAX = (1 << 40) - 1

# the measurement parameters of pane_facts, in this order (a float64 array)
MEAS_PARAMS = (
    "max_consecutive_gap_s",
    "p_zero_w",
    "sag_step_v",
    "sag_i_quiet_a",
    "default_i_step_a",
    "default_v_step_v",
    "residual_abs_tol_w",
    "residual_rel_tol_ratio",
    "default_pf_step_pf",
    "i_min_a",
    "pf_min_va",
    "under_read_abs_tol_w",
    "under_read_rel_tol_ratio",
    "v_present_v",
    "zero_floor_share",
    "zero_share_of_daily",
    "zero_share_of_hour",
)
(
    _GAP,
    _PZERO,
    _SAG_STEP,
    _SAG_IQUIET,
    _DEF_ISTEP,
    _DEF_VSTEP,
    _RES_ABS,
    _RES_REL,
    _DEF_PFSTEP,
    _IMIN,
    _PFMINVA,
    _UND_ABS,
    _UND_REL,
    _VPRESENT,
    _ZFLOOR,
    _ZDAILY,
    _ZHOUR,
) = range(len(MEAS_PARAMS))


@njit(cache=True)
def _segments(m):  # type: ignore[no-untyped-def]
    """Starts (with a final end) of the runs of equal meter index in ``m`` (sorted)."""
    n = m.shape[0]
    bounds = np.empty(n + 1, dtype=np.int64)
    k = 0
    for j in range(n):
        if j == 0 or m[j] != m[j - 1]:
            bounds[k] = j
            k += 1
    bounds[k] = n
    return bounds[: k + 1]


@njit(cache=True)
def standby_floor(days):  # type: ignore[no-untyped-def]
    """``Engine._standby_floor`` of one meter's row of daily minima (float32): the second
    lowest finite day as float64 (at least 0), 0 until three days are known."""
    inf32 = np.float32(np.inf)
    lowest = days[0] if np.isfinite(days[0]) else inf32
    second = inf32
    valid = 1 if np.isfinite(days[0]) else 0
    for d in range(1, days.shape[0]):
        x = days[d] if np.isfinite(days[d]) else inf32
        valid += 1 if np.isfinite(days[d]) else 0
        second = np_min(second, np_max(lowest, x))
        lowest = np_min(lowest, x)
    if valid >= 3:
        return np_max(np.float64(second), 0.0)
    return 0.0


@njit(cache=True)
def pane_facts(  # type: ignore[no-untyped-def]  # noqa: PLR0913, PLR0915
    m,
    ts,
    p,
    v,
    i,
    pf,
    hop_ms,
    prm,
    pf_max,
    ready_s,
    exact_ready,
    last_ts,
    last_p,
    last_v,
    last_i,
    last_pf,
    i_step,
    v_step,
    cadence_s,
    run_n,
    run_start,
    stuck_run_n,
    stuck_run_start,
    flat_max_ms,
    stuck_max_ms,
    recent_ts,
    base_w,
    base_p,
    floor_days_w,
    imp_long,
):
    """The reading facts and pane statistics of one round (readings sorted by meter, then
    time; one pane per meter): everything ``Engine._process_round`` computed before its
    ``_score_round`` call, in one pass per meter instead of ~300 numpy calls.

    Replaces, with the same values: the reading-to-reading facts (previous reading from the
    state for a meter's first reading, steps, flatness, physics pairs, sags, residual
    tolerances, zero/negative/PF-low flags), ``_update_resolution``, ``_profile``,
    ``_hour_expected``, ``_standby_floor``, the long impedance fit, the cadence EWMA
    (``_segment_mean``), the five run counters (``runs_in_segments``), ``_remember_recent``,
    the per-meter last-reading state, the pane statistics (``np.add.reduceat`` and
    ``np.minimum/maximum.reduceat``) and ``_longest_ended_run_ms`` for the flat and stuck
    runs. Updates those state arrays in place.

    Returns (seg_m, gpane, stats, runs_n, runs_s, last_p, last_i, flat_max_s, stuck_max_s,
    ready, ready_p, n_ready, daily_mean, floor_w, z_long, z_long_se), per meter of the
    round (runs: the counters and run seconds at the meter's last reading, five kinds).
    """
    n = ts.shape[0]
    bounds = _segments(m)
    K = bounds.shape[0] - 1
    n_slots = base_w.shape[1]
    ready_s32 = np.float32(ready_s)

    seg_m = np.empty(K, dtype=np.int64)
    gpane = np.empty(K, dtype=np.int64)
    stats = np.empty((K, N_STATS))
    runs_n_out = np.empty((K, N_RUNS + 1))
    runs_s_out = np.empty((K, N_RUNS + 1))
    last_p_out = np.empty(K)
    last_i_out = np.empty(K)
    flat_max_s = np.empty(K)
    stuck_max_s = np.empty(K)
    ready = np.empty((K, n_slots), dtype=np.bool_)
    ready_p = np.empty((K, n_slots), dtype=np.float32)
    n_ready = np.empty(K, dtype=np.int64)
    daily_mean = np.empty(K)
    floor_w = np.empty(K)
    z_long = np.empty(K)
    z_long_se = np.empty(K)

    # per reading: the values summed into the pane (column-major: a pane's readings are
    # contiguous), the run flags, and a few facts the second pass reads
    vals = np.empty((N_STATS, n))
    run_true = np.empty((N_RUNS + 1, n), dtype=np.bool_)
    run_reset = np.empty((N_RUNS + 1, n), dtype=np.bool_)
    consecutive = np.empty(n, dtype=np.bool_)
    dt_s = np.empty(n)
    good_dt = np.empty(n)
    good_dt_n = np.empty(n)
    cand_i = np.empty(n)
    cand_v = np.empty(n)
    ready_row32 = np.empty(n_slots, dtype=np.float32)

    for s in range(K):
        lo = bounds[s]
        hi = bounds[s + 1]
        cnt = hi - lo
        g = m[lo]
        seg_m[s] = g
        gpane[s] = ts[lo] // hop_ms

        # ---- the meter's profile (ready slots), standby floor and long impedance fit
        nr32 = 0
        nr = 0
        for k in range(n_slots):
            bw = base_w[g, k]
            r32 = bw >= ready_s32
            ready_row32[k] = base_p[g, k] if r32 else np.float32(0.0)
            if r32:
                nr32 += 1
            r = r32 if exact_ready else np.float64(bw) >= ready_s
            ready[s, k] = r
            if r:
                nr += 1
            ready_p[s, k] = base_p[g, k] if r else np.float32(0.0)
        n_ready[s] = nr
        if nr32 > 0:
            total32 = reduce_sum32(ready_row32, 0, n_slots)
            daily_mean[s] = np.float64(total32) / np.float64(max(nr32, 1))
        else:
            daily_mean[s] = 0.0
        floor_w[s] = standby_floor(floor_days_w[g])
        z, se = impedance_fit(imp_long[g, 0], imp_long[g, 1], imp_long[g, 2], imp_long[g, 3])
        z_long[s] = z
        z_long_se[s] = se
        z_r = np_clip(fill_nan(z, 0.0), 0.0, 2.0)

        # ---- reading-to-reading facts, first pass: steps and the measurement resolution
        min_di = np.inf
        min_dv = np.inf
        for j in range(lo, hi):
            if j == lo:
                pts, pp, pv, pi = last_ts[g], last_p[g], last_v[g], last_i[g]
            else:
                pts, pp, pv, pi = ts[j - 1], p[j - 1], v[j - 1], i[j - 1]
            dt = (ts[j] - pts) / 1000.0 if pts >= 0 else np.nan
            dt_s[j] = dt
            cons = pts >= 0 and dt <= prm[_GAP]
            consecutive[j] = cons
            adi = abs(i[j] - pi)
            adv = abs(v[j] - pv)
            cand_i[j] = adi if (cons and adi > 1e-6) else np.inf
            cand_v[j] = adv if (cons and adv > 1e-6) else np.inf
            if j == lo:
                min_di = cand_i[j]
                min_dv = cand_v[j]
            else:
                min_di = np_min(min_di, cand_i[j])
                min_dv = np_min(min_dv, cand_v[j])
        i_step[g] = np.float32(np_min(np.float64(i_step[g]), min_di))
        v_step[g] = np.float32(np_min(np.float64(v_step[g]), min_dv))
        # np.where(isfinite(float32 state), state, Python float): float32
        ist32 = i_step[g] if np.isfinite(i_step[g]) else np.float32(prm[_DEF_ISTEP])
        vst32 = v_step[g] if np.isfinite(v_step[g]) else np.float32(prm[_DEF_VSTEP])
        ist = np.float64(ist32)
        vst = np.float64(vst32)

        # ---- second pass: the facts of each reading
        daily_m = daily_mean[s]
        zero_floor = prm[_ZFLOOR] * floor_w[s]
        for j in range(lo, hi):
            if j == lo:
                pts, pp, pv, pi, ppf = last_ts[g], last_p[g], last_v[g], last_i[g], last_pf[g]
            else:
                pts, pp, pv, pi, ppf = ts[j - 1], p[j - 1], v[j - 1], i[j - 1], pf[j - 1]
            pj, vj, ij, pfj = p[j], v[j], i[j], pf[j]
            cons = consecutive[j]
            flat = cons and pj == pp and vj == pv and ij == pi and pfj == ppf
            step = abs(pj - pp) if cons else 0.0
            neg = pj < -prm[_PZERO]
            phys = cons and (not neg) and pp >= -prm[_PZERO]
            dv = vj - pv if phys else 0.0
            di = ij - pi if phys else 0.0
            sag = cons and dv <= -prm[_SAG_STEP] and abs(di) <= prm[_SAG_IQUIET]
            vipf = vj * ij * pfj
            resid = abs(pj - vipf)
            tol = (
                prm[_RES_ABS]
                + prm[_RES_REL] * abs(pj)
                + vj * ist * abs(pfj)
                + ij * vst
                + vj * ij * prm[_DEF_PFSTEP]
            )
            real_i = ij >= prm[_IMIN]
            real_s = real_i and vj * ij >= prm[_PFMINVA]
            under = abs(vipf) - abs(pj)
            tol_under = (
                prm[_UND_ABS]
                + prm[_UND_REL] * abs(vipf)
                + 0.5 * (vj * ist * abs(pfj) + ij * vst + vj * ij * prm[_DEF_PFSTEP])
            )
            res_bad = real_i and (resid > tol or under > tol_under)
            stuck = (
                cons
                and pj == pp
                and ij == pi
                and pfj == ppf
                and (real_i or abs(pj) > prm[_PZERO])
            )
            res_rel = resid / np_clip(np_max(abs(vipf), abs(pj)), 1.0, np.inf) if real_i else 0.0
            # _hour_expected: the reading's hour slot (float32 comparison, weak scalar)
            slot = (ts[j] // HOUR_MS) % 24 + 24 * (1 if ((ts[j] // DAY_MS) + 3) % 7 >= 5 else 0)
            hour_m = np.float64(base_p[g, slot]) if base_w[g, slot] >= ready_s32 else 0.0
            zero_w = np_max(
                np_max(prm[_PZERO], zero_floor),
                np_max(prm[_ZDAILY] * daily_m, prm[_ZHOUR] * hour_m),
            )
            zero = abs(pj) <= zero_w and vj >= prm[_VPRESENT]
            pf_low = real_s and abs(pfj) <= pf_max
            e_step = dv + z_r * di if phys else 0.0
            good = cons and dt_s[j] > 0
            good_dt[j] = dt_s[j] if good else 0.0
            good_dt_n[j] = 1.0 if good else 0.0

            pf_w = pfj if real_s else 0.0
            vals[N, j] = 1.0
            vals[SP, j] = pj
            vals[SP2, j] = pj * pj
            vals[MINP, j] = pj
            vals[MAXP, j] = pj
            vals[SV, j] = vj
            vals[MINV, j] = vj
            vals[SI, j] = ij
            vals[SPF, j] = pf_w
            vals[SPF2, j] = pf_w * pf_w
            vals[NPF, j] = 1.0 if real_s else 0.0
            vals[NZERO, j] = 1.0 if zero else 0.0
            vals[NNEG, j] = 1.0 if neg else 0.0
            vals[NFLAT, j] = 1.0 if flat else 0.0
            vals[NRES, j] = 1.0 if res_bad else 0.0
            vals[SRES, j] = res_rel
            vals[MAXSTEP, j] = step
            vals[NSAG, j] = 1.0 if sag else 0.0
            vals[SVIPF, j] = vipf
            vals[SDVDI, j] = dv * di
            vals[SDI2, j] = di * di
            vals[SDV2, j] = dv * dv
            vals[NDIFF, j] = 1.0 if phys else 0.0
            vals[MINE, j] = e_step
            vals[MAXE, j] = e_step
            vals[SABSE, j] = abs(e_step)
            vals[NPFLOW, j] = 1.0 if pf_low else 0.0

            run_true[0, j] = flat
            run_reset[0, j] = not flat
            run_true[1, j] = zero
            run_reset[1, j] = not zero
            run_true[2, j] = res_bad
            run_reset[2, j] = real_i and not res_bad
            run_true[3, j] = neg
            run_reset[3, j] = pj > prm[_PZERO]
            run_true[4, j] = stuck
            run_reset[4, j] = not stuck

        # ---- cadence: EWMA of the mean interval between consecutive readings
        dt_sum = reduceat_sum(good_dt, lo, cnt)
        dt_n = reduceat_sum(good_dt_n, lo, cnt)
        if dt_n > 0:
            med = dt_sum / np_max(dt_n, 1.0)
            if not np.isnan(med):
                cur = cadence_s[g]
                if np.isnan(cur):
                    cadence_s[g] = np.float32(med)
                else:
                    # 0.8 * float32 stays float32 (weak scalar); + float64 widens
                    cadence_s[g] = np.float32(np.float64(np.float32(0.8) * cur) + 0.2 * med)

        # ---- runs (the four of run_n/run_start, then R14's) and the longest ended ones
        carry_last = last_ts[g]
        for k in range(N_RUNS + 1):
            if k < N_RUNS:
                count = np.float64(run_n[g, k])
                c_start = run_start[g, k]
            else:
                count = np.float64(stuck_run_n[g])
                c_start = stuck_run_start[g]
            start = c_start if count > 0 else -1
            longest = 0
            before = 0
            if k == 0 or k == N_RUNS:
                longest = flat_max_ms[g] if k == 0 else stuck_max_ms[g]
                before = carry_last - c_start if c_start >= 0 else 0
            run_s = 0.0
            for j in range(lo, hi):
                if run_reset[k, j]:
                    count = 0.0
                    start = -1
                elif run_true[k, j]:
                    if count == 0:
                        start = ts[j]
                    count += 1.0
                if count <= 0:
                    start = -1
                run_s = (ts[j] - start) / 1000.0 if start >= 0 else 0.0
                if k == 0 or k == N_RUNS:
                    # a run ends at the first reading not in it; its length is the
                    # previous reading's (the first reading's previous one: the carry)
                    ended = 0 if run_true[k, j] else min(max(before, 0), RUN_MS_MAX)
                    longest = max(longest, ended)
                    before = np.int64(np.rint(run_s * 1000.0)) if count > 0 else 0
            runs_n_out[s, k] = count
            runs_s_out[s, k] = run_s
            if k < N_RUNS:
                run_n[g, k] = np.float32(count)
                run_start[g, k] = start
            else:
                stuck_run_n[g] = np.float32(count)
                stuck_run_start[g] = start
            if k == 0:
                flat_max_ms[g] = longest
                flat_max_s[s] = longest / 1000.0
            elif k == N_RUNS:
                stuck_max_ms[g] = longest
                stuck_max_s[s] = longest / 1000.0

        # ---- the meter's last reading and its recent timestamps (newest first)
        last = hi - 1
        last_ts[g] = ts[last]
        last_p[g] = p[last]
        last_v[g] = v[last]
        last_i[g] = i[last]
        last_pf[g] = pf[last]
        last_p_out[s] = p[last]
        last_i_out[s] = i[last]
        n_recent = recent_ts.shape[1]
        old = recent_ts[g].copy()
        for k in range(n_recent):
            recent_ts[g, k] = ts[last - k] if k < cnt else old[k - cnt]

        # ---- the pane's statistics
        for c in SUM_COLS:
            if cnt <= 8:
                # reduceat_sum inlined for short panes (the usual case): the first value
                # plus the plain sum of the others from -0.0
                rest = -0.0
                for j in range(lo + 1, hi):
                    rest += vals[c, j]
                stats[s, c] = vals[c, lo] + rest
            else:
                stats[s, c] = reduceat_sum(vals[c], lo, cnt)
        for c in (MINP, MINV, MINE):
            acc = vals[c, lo]
            for j in range(lo + 1, hi):
                acc = np_min(acc, vals[c, j])
            stats[s, c] = acc
        for c in (MAXP, MAXSTEP, MAXE):
            acc = vals[c, lo]
            for j in range(lo + 1, hi):
                acc = np_max(acc, vals[c, j])
            stats[s, c] = acc

    return (
        seg_m,
        gpane,
        stats,
        runs_n_out,
        runs_s_out,
        last_p_out,
        last_i_out,
        flat_max_s,
        stuck_max_s,
        ready,
        ready_p,
        n_ready,
        daily_mean,
        floor_w,
        z_long,
        z_long_se,
    )
