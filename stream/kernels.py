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
  even the sign of a zero is the same;
* exponentials are not computed here: numpy's SIMD ``exp`` and the C library's (which
  compiled code calls) differ in the last bit, so the engine computes them with numpy
  and passes them in.

Arrays are not passed to helper functions inside the per-meter loops where it can be
avoided: each such call costs reference counting (atomic operations), which was a fifth
of a kernel's time.

No fastmath (it would let LLVM reorder sums). ``error_model="numpy"``: a division by zero
gives inf/NaN as in numpy instead of raising. ``cache=True`` keeps the compiled code next
to this module (``__pycache__``), so only the first process after a change compiles
(about 25 s); numba's own start-up (~0.4 s, on the first call) is paid by every process.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# numpy's pairwise summation: blocks of at most this many elements are summed with eight
# accumulators; longer ranges are split in two (numpy/_core/src/umath/loops_utils.h.src)
PW_BLOCKSIZE = 128


@njit(cache=True, error_model="numpy", inline="always")
def pairwise_block(a, lo, n, neg_zero):
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


@njit(cache=True, error_model="numpy", inline="always")
def pairwise_sum(a, lo, n):
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


@njit(cache=True, error_model="numpy")
def pw_start(zero):
    """An empty streaming pairwise sum (see :func:`pw_push`) in the type of ``zero``."""
    return (zero, zero, zero, zero, zero, zero, zero, zero, -zero)


@njit(cache=True, error_model="numpy")
def pw_push(acc, k, n, x):
    """Element ``k`` (0, 1, ... in order) of ``n`` <= 128 into a streaming pairwise sum:
    the same additions as :func:`pairwise_block` on the array of the ``n`` values, with
    the state in a tuple (eight accumulators and the running result) instead of an array,
    so a kernel sums values as it computes them, without a buffer (an array passed to a
    helper in a kernel's loop costs reference counting)."""
    r0, r1, r2, r3, r4, r5, r6, r7, res = acc
    if n < 8:
        res += x
    else:
        stop = n - (n % 8)
        if k >= stop:
            if k == stop:
                res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
            res += x
        else:
            j = k % 8
            first = k < 8
            if j == 0:
                r0 = x if first else r0 + x
            elif j == 1:
                r1 = x if first else r1 + x
            elif j == 2:
                r2 = x if first else r2 + x
            elif j == 3:
                r3 = x if first else r3 + x
            elif j == 4:
                r4 = x if first else r4 + x
            elif j == 5:
                r5 = x if first else r5 + x
            elif j == 6:
                r6 = x if first else r6 + x
            else:
                r7 = x if first else r7 + x
    return (r0, r1, r2, r3, r4, r5, r6, r7, res)


@njit(cache=True, error_model="numpy")
def pw_total(acc, n):
    """The pairwise sum of the ``n`` values pushed into ``acc``: numpy's
    ``pairwise_sum`` of them (add it to +0.0 for ``np.add.reduce``)."""
    r0, r1, r2, r3, r4, r5, r6, r7, res = acc
    if n >= 8 and n % 8 == 0:
        return ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    return res


@njit(cache=True, error_model="numpy", inline="always")
def reduce_sum(a, lo, n):
    """``np.add.reduce(a[lo:lo+n])`` of float64 (also a row of ``.sum(axis=1)``): +0.0
    plus the pairwise sum."""
    return 0.0 + pairwise_sum(a, lo, n)


@njit(cache=True, error_model="numpy", inline="always")
def reduce_sum32(a, lo, n):
    """``np.add.reduce(a[lo:lo+n])`` of float32, n <= 128, in float32."""
    return np.float32(0.0) + pairwise_block(a, lo, n, np.float32(-0.0))


@njit(cache=True, error_model="numpy", inline="always")
def reduceat_sum(a, lo, n):
    """One segment of ``np.add.reduceat`` of float64 (n >= 1): the first element plus
    the pairwise sum of the rest (a one-element segment is the element itself, -0.0
    included)."""
    return a[lo] + pairwise_sum(a, lo + 1, n - 1)


@njit(cache=True, error_model="numpy")
def np_min(a, b):
    """``np.minimum(a, b)`` of two scalars: NaN if either is NaN, else the smaller, the
    second on a tie (so the sign of an equal zero is the second's)."""
    return a if (a < b or a != a) else b


@njit(cache=True, error_model="numpy")
def np_max(a, b):
    """``np.maximum(a, b)`` of two scalars (NaN-propagating, the second on a tie)."""
    return a if (a > b or a != a) else b


@njit(cache=True, error_model="numpy")
def np_clip(x, lo, hi):
    """``np.clip(x, lo, hi)`` of a scalar: NaN stays NaN, -0.0 stays -0.0."""
    if x < lo:
        return lo
    if x > hi:
        return hi
    return x


@njit(cache=True, error_model="numpy")
def fill_nan(x, value):
    """``detectors.features.fill_nan`` of a scalar."""
    return value if np.isnan(x) else x


@njit(cache=True, error_model="numpy")
def impedance_fit(sxy, sxx, syy, n):
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
    "zero_daily_max_standby_share",
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
    _ZDAILY_MAXSTANDBY,
) = range(len(MEAS_PARAMS))


@njit(cache=True, error_model="numpy")
def _segments(m):
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


@njit(cache=True, error_model="numpy")
def pane_facts(
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
    daily_mean, daily, floor_w, z_long, z_long_se), per meter of the round (runs: the
    counters and run seconds at the meter's last reading, five kinds; daily_mean: the
    float32 mean of the ready profile slots, for "zero"; daily: Engine._expected's float64
    daily mean, NaN under 12 ready slots).
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
    daily = np.empty(K)
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
    ready_row = np.empty(n_slots)

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
            if r:
                nr += 1
            ready_row[k] = np.float64(base_p[g, k]) if r else 0.0
        # Engine._expected's daily mean: the ready slots summed in float64
        if nr >= 12:
            daily[s] = reduce_sum(ready_row, 0, n_slots) / np.float64(max(nr, 1))
        else:
            daily[s] = np.nan
        if nr32 > 0:
            total32 = reduce_sum32(ready_row32, 0, n_slots)
            daily_mean[s] = np.float64(total32) / np.float64(max(nr32, 1))
        else:
            daily_mean[s] = 0.0
        # Engine._standby_floor: the second lowest finite daily minimum (float32), as
        # float64 and at least 0, once three days are known (written out: a helper taking
        # the row would cost reference counting per meter)
        inf32 = np.float32(np.inf)
        lowest = inf32
        second = inf32
        highest = 0.0  # the highest daily minimum: the zero cap's standby (below)
        n_days = 0
        for d in range(floor_days_w.shape[1]):
            x = floor_days_w[g, d]
            if np.isfinite(x):
                n_days += 1
                highest = np_max(highest, np.float64(x))
            else:
                x = inf32
            if d == 0:
                lowest = x
            else:
                second = np_min(second, np_max(lowest, x))
                lowest = np_min(lowest, x)
        floor_w[s] = np_max(np.float64(second), 0.0) if n_days >= 3 else 0.0
        standby_w = highest if n_days >= 3 else 0.0
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
        # the share of the daily mean never reaches the premises' own standby: a home with a
        # heavy load cycling all day idles at 1-2 % of its daily mean, and its idle is not
        # zero. The standby here is the highest of the recent daily minima, which a bypass
        # on some of those days does not lower (the floor, their second lowest, it does)
        zero_daily = prm[_ZDAILY] * daily_m
        if standby_w > 0.0:
            zero_daily = np_min(zero_daily, prm[_ZDAILY_MAXSTANDBY] * standby_w)
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
                cons and pj == pp and ij == pi and pfj == ppf and (real_i or abs(pj) > prm[_PZERO])
            )
            res_rel = resid / np_clip(np_max(abs(vipf), abs(pj)), 1.0, np.inf) if real_i else 0.0
            # _hour_expected: the reading's hour slot (float32 comparison, weak scalar)
            slot = (ts[j] // HOUR_MS) % 24 + 24 * (1 if ((ts[j] // DAY_MS) + 3) % 7 >= 5 else 0)
            hour_m = np.float64(base_p[g, slot]) if base_w[g, slot] >= ready_s32 else 0.0
            zero_w = np_max(
                np_max(prm[_PZERO], zero_floor),
                np_max(zero_daily, prm[_ZHOUR] * hour_m),
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
        if cnt <= 8:
            # reduceat_sum written out for short panes (a helper taking the arrays costs
            # reference counting per meter)
            rest = -0.0
            rest_n = -0.0
            for j in range(lo + 1, hi):
                rest += good_dt[j]
                rest_n += good_dt_n[j]
            dt_sum = good_dt[lo] + rest
            dt_n = good_dt_n[lo] + rest_n
        else:
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
        # in place, oldest slot first: slot k takes the k-th newest reading of this pane,
        # else the remembered slot k - cnt (lower, so not yet overwritten)
        for k in range(n_recent - 1, -1, -1):
            recent_ts[g, k] = ts[last - k] if k < cnt else recent_ts[g, k - cnt]

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
        daily_mean,
        daily,
        floor_w,
        z_long,
        z_long_se,
    )


# ---------------------------------------------------------------- the window of a round
# parameters of window_state (a float64 array, in this order)
WINDOW_PARAMS = (
    "slot_ready_s",
    "warmup_ms",
    "ir_min_ratio",
    "ir_min_z",
    "pb_max_ratio",
    "pb_min_expected_w",
    "pb_rearm_ratio",
    "bf_min_floor_w",
    "bf_max_floor_ratio",
    "ul_min_step_v",
    "ul_step_sigmas",
    "ul_max_duration_s",
    "rs_min_bins_n",
    "rs_ready_s",
    "rs_pooled_var_share",
    "rs_min_sd_v2",
    "rs_replace_after_s",
    "rs_min_z",
    "rs_min_step_v",
    "rs_min_amps_a",
    "rs_refractory_s",
    "rs_off_share",
    "rs_min_off_z",
    "rs_min_hold_s",
    "rs_max_hold_s",
    "pf_min_low_share",
    "pf_min_rise_share",
    "sb_max_floor_ratio",
)
(
    _W_READY,
    _W_WARMUP_MS,
    _W_IR_RATIO,
    _W_IR_Z,
    _W_PB_MAX,
    _W_PB_MINEXP,
    _W_PB_REARM,
    _W_BF_MINFLOOR,
    _W_BF_RATIO,
    _W_UL_MINSTEP,
    _W_UL_SIGMAS,
    _W_UL_MAXDUR,
    _W_RS_MINBINS,
    _W_RS_READY,
    _W_RS_POOLED,
    _W_RS_MINSD2,
    _W_RS_REPLACE,
    _W_RS_MINZ,
    _W_RS_MINSTEP,
    _W_RS_MINAMPS,
    _W_RS_REFRACT,
    _W_RS_OFFSHARE,
    _W_RS_OFFZ,
    _W_RS_MINHOLD,
    _W_RS_MAXHOLD,
    _W_PF_MINLOW,
    _W_PF_MINRISE,
    _W_SB_MAXFLOOR,
) = range(len(WINDOW_PARAMS))

# rows of window_state's float64 output (one value per meter of the round)
WINDOW_ROWS = (
    "mean_p",
    "mean_v",
    "mean_i",
    "vipf_mean",
    "pane_mean_p",
    "pane_mean_v",
    "pane_mean_i",
    "expected_p",
    "expected_std",
    "daily",
    "pf_base",
    "impedance",
    "z_long",
    "imp_ratio",
    "imp_z",
    "warm",
    "imp_run_s",
    "exp_now",
    "slow_ratio",
    "drop_run_s",
    "slow_exp",
    "sub_floor_run_s",
    "step_thr",
    "sag_v",
    "sag_run_s",
    "sag_size",
    "sag_amps",
    "vstep_step",
    "vstep_ok",
    "vstep_dev",
    "vstep_z",
    "vstep_amps",
    "vstep_onset",
    "vstep_prior",
    "pf_ew",
    "pf_usual",
    "pf_low_run_s",
    "slope",
    "trend_ratio",
    "trend_days",
    "pf_mean",
    "resid_rel",
    "cadence",
    "export_share",
    "days_cand",
    "expected_p_or_0",
    "daily_or_0",
    "pf_base_or_1",
    "slow_exp_or_0",
    "z_long_or_0",
)
(
    R_MEAN_P,
    R_MEAN_V,
    R_MEAN_I,
    R_VIPF_MEAN,
    R_PANE_P,
    R_PANE_V,
    R_PANE_I,
    R_EXP_P,
    R_EXP_STD,
    R_DAILY,
    R_PF_BASE,
    R_IMPEDANCE,
    R_Z_LONG,
    R_IMP_RATIO,
    R_IMP_Z,
    R_WARM,
    R_IMP_RUN,
    R_EXP_NOW,
    R_SLOW_RATIO,
    R_DROP_RUN,
    R_SLOW_EXP,
    R_SUB_FLOOR,
    R_STEP_THR,
    R_SAG_V,
    R_SAG_RUN,
    R_SAG_SIZE,
    R_SAG_AMPS,
    R_VSTEP,
    R_VSTEP_OK,
    R_VDEV,
    R_VZ,
    R_VAMPS,
    R_VONSET,
    R_VPRIOR,
    R_PF_EW,
    R_PF_USUAL,
    R_PF_LOW_RUN,
    R_SLOPE,
    R_TREND_RATIO,
    R_TREND_DAYS,
    R_PF_MEAN,
    R_RESID_REL,
    R_CADENCE,
    R_EXPORT_SHARE,
    R_DAYS_CAND,
    R_EXP_P0,
    R_DAILY0,
    R_PF_BASE1,
    R_SLOW_EXP0,
    R_Z_LONG0,
) = range(len(WINDOW_ROWS))

SB_MIN = 1  # column of sb_days: the day's lowest pane power
N_SLOTS = 48
VBIN_MS = 300_000


@njit(cache=True, error_model="numpy")
def safe_div(num, den, neutral):
    """``detectors.features._safe_div`` of scalars: num / den, ``neutral`` if not finite."""
    q = num / den
    return q if np.isfinite(q) else neutral


@njit(cache=True, error_model="numpy")
def window_state(
    gm,
    gpane,
    pstats,
    end_ms,
    since_s,
    exps,
    daily,
    ready_s,
    exact_ready,
    floor_w,
    z_long_in,
    z_long_se,
    prm,
    ring_id,
    ring,
    last_pane,
    base_w,
    base_p,
    base_p2,
    base_vw,
    base_v,
    base_i,
    pf_base,
    imp_short,
    first_ts,
    imp_start,
    slow_p,
    slow_exp,
    drop_start,
    sub_floor_s,
    e_scale,
    sag_start,
    prev_pane_vi,
    sag_ref,
    sag_size,
    vbin_id,
    vbin,
    vstep_base,
    onset_last,
    onset_hour,
    onset_size,
    onset_recur,
    onset_recur_ts,
    pf_low_ew,
    pf_low_base,
    pf_low_start,
    day_cur,
    day_cov_s,
    day_sum_p,
    day_sum_exp,
    day_ratio,
    sb_min_today_w,
    sb_imp_today,
    sb_days,
    cadence_s,
    export_share,
):
    """The window of each meter of a round (one pane per meter, meters distinct) and the
    per-meter state that moves with it: what ``Engine._score_round`` computed before
    its rules, in one pass per meter instead of ~600 numpy calls.

    Replaces, with the same values: the ring update and ``_window_sums``, the window and
    pane means, ``_expected``, the hour's voltage baseline, the short impedance fit and
    the impedance-rise run, the slow level (partial bypass) and its drop run, the time
    below the standby floor, the unexplained-sag state, ``_recurring_sag``, the PF-share
    EWMA and its run, ``_update_day``, the cheap test of ``_days_facts`` (which meters
    can fire R13: row ``days_cand``), the trend slope and ratio, ``pf_level`` and the
    residual share. The exponentials are computed by the caller with numpy (``exps``
    rows: short impedance decay, slow level, standby floor, recurring-sag decay, PF
    share): numpy's SIMD ``exp`` and the C library's differ in the last bit.

    Returns (rows, wsum, wmax_p, wmax_step, expected_v, expected_i, hbd): ``rows`` is
    (len(WINDOW_ROWS), K) float64, ``wsum`` the window sums (K, N_STATS) with the
    extremes in their columns, the float32 window max power and step, the hour's voltage
    and current baselines (float32, NaN when not ready), and ``hbd`` (3, K) int64: hour
    of day, day, baseline slot of each window.
    """
    K = gm.shape[0]
    P = ring.shape[1]
    n_vb = vbin.shape[1]
    half_vb = n_vb // 2
    n_trend = day_ratio.shape[1]
    if n_trend > PW_BLOCKSIZE:
        raise ValueError("window_state: at most 128 trend days (streaming pairwise sums)")
    n_sb = sb_days.shape[1]
    rows = np.empty((len(WINDOW_ROWS), K))
    wsum = np.empty((K, N_STATS))
    wmax_p = np.empty(K, dtype=np.float32)
    wmax_step = np.empty(K, dtype=np.float32)
    expected_v = np.empty(K, dtype=np.float32)
    expected_i = np.empty(K, dtype=np.float32)
    hbd = np.empty((3, K), dtype=np.int64)
    ready_s32 = np.float32(ready_s)
    bins_m = np.empty(n_vb)
    bins_n = np.empty(n_vb)
    bins_id = np.empty(n_vb, dtype=np.int64)
    nan32 = np.float32(np.nan)

    for r in range(K):
        g = gm[r]
        gp = gpane[r]
        e_ms = end_ms[r]
        dt = since_s[r]

        # ---- ring update and window sums (valid slots in slot order, onto +0.0)
        slot = gp % P
        ring_id[g, slot] = gp
        for c in range(N_STATS):
            ring[g, slot, c] = np.float32(pstats[r, c])
        last_pane[g] = gp
        for c in range(N_STATS):
            wsum[r, c] = 0.0
        any_empty = False
        first = True
        mx_p = np.float32(0.0)
        mx_step = np.float32(0.0)
        mn_p = np.float32(0.0)
        mn_v = np.float32(0.0)
        for q in range(P):
            rid = ring_id[g, q]
            if rid > gp - P and rid <= gp:
                for c in range(N_STATS):
                    wsum[r, c] += np.float64(ring[g, q, c])
                if first:
                    mx_p = ring[g, q, MAXP]
                    mx_step = ring[g, q, MAXSTEP]
                    mn_p = ring[g, q, MINP]
                    mn_v = ring[g, q, MINV]
                    first = False
                else:
                    mx_p = np_max(mx_p, ring[g, q, MAXP])
                    mx_step = np_max(mx_step, ring[g, q, MAXSTEP])
                    mn_p = np_min(mn_p, ring[g, q, MINP])
                    mn_v = np_min(mn_v, ring[g, q, MINV])
            else:
                any_empty = True
        if any_empty:
            # an empty ring slot counts as a zero step
            mx_step = np_max(mx_step, np.float32(0.0))
        wsum[r, MINP] = mn_p
        wsum[r, MAXP] = mx_p
        wsum[r, MINV] = mn_v
        wsum[r, MAXSTEP] = mx_step
        wmax_p[r] = mx_p
        wmax_step[r] = mx_step
        wn = wsum[r, N]
        rows[R_MEAN_P, r] = wsum[r, SP] / wn
        rows[R_MEAN_V, r] = wsum[r, SV] / wn
        rows[R_MEAN_I, r] = wsum[r, SI] / wn
        rows[R_VIPF_MEAN, r] = wsum[r, SVIPF] / wn
        pane_p = pstats[r, SP] / pstats[r, N]
        pane_v = pstats[r, SV] / pstats[r, N]
        pane_i = pstats[r, SI] / pstats[r, N]
        rows[R_PANE_P, r] = pane_p
        rows[R_PANE_V, r] = pane_v
        rows[R_PANE_I, r] = pane_i

        # ---- baselines (Engine._expected) and the hour's voltage baseline
        hour = ((e_ms - 1) // HOUR_MS) % 24
        day = (e_ms - 1) // DAY_MS
        bslot = hour + (24 if ((day + 3) % 7) >= 5 else 0)
        hbd[0, r] = hour
        hbd[1, r] = day
        hbd[2, r] = bslot
        other_slot = (bslot + 24) % N_SLOTS
        # a slot is ready when learnt slot_ready_s (compared in float32 when the threshold
        # is a float32 value, as Engine._profile did)
        if exact_ready:
            own = base_w[g, bslot] >= ready_s32
            have = own or base_w[g, other_slot] >= ready_s32
        else:
            own = np.float64(base_w[g, bslot]) >= ready_s
            have = own or np.float64(base_w[g, other_slot]) >= ready_s
        use = bslot if own else other_slot
        bp_use = np.float64(base_p[g, use])
        bp2_use = np.float64(base_p2[g, use])
        expected_p = bp_use if have else np.nan
        var = np_max(bp2_use - bp_use * bp_use, 0.0)
        rows[R_EXP_P, r] = expected_p
        rows[R_EXP_STD, r] = np.sqrt(var) if have else np.nan
        rows[R_DAILY, r] = daily[r]
        v_ready = np.float64(base_vw[g, hour]) >= prm[_W_READY]
        expected_v[r] = base_v[g, hour] if v_ready else nan32
        expected_i[r] = base_i[g, hour] if v_ready else nan32
        pfb = np.float64(pf_base[g])
        rows[R_PF_BASE, r] = pfb

        # ---- short impedance fit against the long one
        for c in range(4):
            imp_short[g, c] = imp_short[g, c] * exps[0, r] + pstats[r, SDVDI + c]
        z_l = z_long_in[r]
        z_ok = z_long_se[r] <= 0.25 * abs(z_l) and z_l >= 0.01 and z_l <= 1.5
        z_l = z_l if z_ok else np.nan
        z_s, z_s_se = impedance_fit(
            imp_short[g, 0], imp_short[g, 1], imp_short[g, 2], imp_short[g, 3]
        )
        impedance = np_clip(fill_nan(z_l, 0.0), 0.0, 2.0)
        both = np.isfinite(z_l) and np.isfinite(z_s)
        imp_ratio = z_s / np_max(z_l, 0.02) if both else 1.0
        imp_z = (z_s - z_l) / np_max(z_s_se, 1e-3) if both else 0.0
        rows[R_IMPEDANCE, r] = impedance
        rows[R_Z_LONG, r] = z_l
        rows[R_IMP_RATIO, r] = imp_ratio
        rows[R_IMP_Z, r] = imp_z
        warm = (e_ms - first_ts[g]) >= prm[_W_WARMUP_MS] and np.isfinite(expected_p)
        rows[R_WARM, r] = 1.0 if warm else 0.0
        imp_up = warm and imp_ratio >= prm[_W_IR_RATIO] and imp_z >= prm[_W_IR_Z]
        ist = imp_start[g]
        if imp_up and ist < 0:
            ist = e_ms
        if not imp_up:
            ist = -1
        imp_start[g] = ist
        rows[R_IMP_RUN, r] = (e_ms - ist) / 1000.0 if ist >= 0 else 0.0

        # ---- slow level vs slow baseline (partial bypass)
        a_slow = 1.0 - exps[1, r]
        sp = np.float64(slow_p[g])
        se = np.float64(slow_exp[g])
        exp_now = expected_p if np.isfinite(expected_p) else np.nan
        rows[R_EXP_NOW, r] = exp_now
        sp = pane_p if np.isnan(sp) else sp + a_slow * (pane_p - sp)
        if not np.isnan(exp_now):
            se = exp_now if np.isnan(se) else se + a_slow * (exp_now - se)
        slow_p[g] = np.float32(sp)
        slow_exp[g] = np.float32(se)
        slow_ratio = sp / np_max(se, 60.0) if np.isfinite(se) else 1.0
        rows[R_SLOW_RATIO, r] = slow_ratio
        rows[R_SLOW_EXP, r] = se
        low = slow_ratio <= prm[_W_PB_MAX] and fill_nan(se, 0.0) >= prm[_W_PB_MINEXP] and warm
        ds = drop_start[g]
        if low and ds < 0:
            ds = e_ms
        if slow_ratio >= prm[_W_PB_REARM] or not warm:
            ds = -1
        drop_start[g] = ds
        rows[R_DROP_RUN, r] = (e_ms - ds) / 1000.0 if ds >= 0 else 0.0
        # decayed time with the pane's power below the standby floor
        fw = floor_w[r]
        sub = warm and fw >= prm[_W_BF_MINFLOOR] and pane_p <= prm[_W_BF_RATIO] * fw
        sub_run = np.float64(sub_floor_s[g]) * exps[2, r] + (dt if sub else 0.0)
        sub_floor_s[g] = np.float32(sub_run)
        rows[R_SUB_FLOOR, r] = sub_run

        # ---- unexplained sag (unmetered load)
        scale = fill_nan(np.float64(e_scale[g]), 0.3)
        thr = np_max(prm[_W_UL_MINSTEP], prm[_W_UL_SIGMAS] * scale)
        rows[R_STEP_THR, r] = thr
        sg = sag_start[g]
        pv0 = np.float64(prev_pane_vi[g, 0])
        pv1 = np.float64(prev_pane_vi[g, 1])
        start_now = (
            sg < 0 and pstats[r, MINE] <= -thr and warm and np.isfinite(pv0) and np.isfinite(z_l)
        )
        if start_now:
            ref0, ref1 = pv0, pv1
            size = -pstats[r, MINE]
            sg = e_ms
        else:
            ref0, ref1 = np.float64(sag_ref[g, 0]), np.float64(sag_ref[g, 1])
            size = np.float64(sag_size[g])
        active = sg >= 0
        sag_d = (ref0 - pane_v) - impedance * (pane_i - ref1) if active else 0.0
        up_step = (not start_now) and pstats[r, MAXE] >= 0.6 * size
        too_long = (e_ms - sg) > prm[_W_UL_MAXDUR] * 1000
        if active and (sag_d < 0.4 * size or up_step or too_long or not warm):
            sg = -1
        sag_start[g] = sg
        sag_ref[g, 0] = np.float32(ref0)
        sag_ref[g, 1] = np.float32(ref1)
        sag_size[g] = np.float32(size) if sg >= 0 else np.float32(0.0)
        prev_pane_vi[g, 0] = np.float32(pane_v)
        prev_pane_vi[g, 1] = np.float32(pane_i)
        rows[R_SAG_V, r] = sag_d
        rows[R_SAG_RUN, r] = (e_ms - sg) / 1000.0 if sg >= 0 else 0.0
        rows[R_SAG_SIZE, r] = size
        rows[R_SAG_AMPS, r] = (
            size / np_max(impedance, 0.05) if (sg >= 0 and np.isfinite(z_l)) else 0.0
        )

        # ---- recurring sag (Engine._recurring_sag): 5-minute bins of u = V + Z*I
        imports = pstats[r, NNEG] == 0
        u_pane = pane_v + impedance * pane_i
        n_pane = pstats[r, N] if imports else 0.0
        can_judge = warm and np.isfinite(z_l)
        b = (e_ms - 1) // VBIN_MS
        vs = b % n_vb
        for q in range(n_vb):
            bins_id[q] = vbin_id[g, q]
            bins_m[q] = np.float64(vbin[g, q, 0])
            bins_n[q] = np.float64(vbin[g, q, 1])
        fresh = bins_id[vs] != b
        m0 = 0.0 if fresh else bins_m[vs]
        n0 = 0.0 if fresh else bins_n[vs]
        ok_u = np.isfinite(u_pane) and n_pane > 0
        n1 = n0 + (n_pane if ok_u else 0.0)
        m1 = m0 + (fill_nan(u_pane, 0.0) - m0) * n_pane / np_max(n1, 1e-9) if ok_u else m0
        bins_m[vs] = m1
        bins_n[vs] = n1
        bins_id[vs] = b
        vbin[g, vs, 0] = np.float32(m1)
        vbin[g, vs, 1] = np.float32(n1)
        vbin_id[g, vs] = b
        cnt_new = 0
        cnt_old = 0
        acc_wn = pw_start(0.0)
        acc_wo = pw_start(0.0)
        acc_pn = pw_start(0.0)
        acc_po = pw_start(0.0)
        for q in range(n_vb):
            age = b - bins_id[q]
            have_q = bins_id[q] >= 0 and age >= 0 and age < n_vb and bins_n[q] > 0
            newer = have_q and age < half_vb
            older = have_q and age >= half_vb
            cnt_new += 1 if newer else 0
            cnt_old += 1 if older else 0
            w_new = bins_n[q] if newer else 0.0
            w_old = bins_n[q] if older else 0.0
            acc_wn = pw_push(acc_wn, q, n_vb, w_new)
            acc_wo = pw_push(acc_wo, q, n_vb, w_old)
            acc_pn = pw_push(acc_pn, q, n_vb, w_new * bins_m[q])
            acc_po = pw_push(acc_po, q, n_vb, w_old * bins_m[q])
        # (w * m).sum(axis=1) / max(w.sum(axis=1), 1e-9), as numpy summed them
        mu_new = (0.0 + pw_total(acc_pn, n_vb)) / np_max(0.0 + pw_total(acc_wn, n_vb), 1e-9)
        mu_old = (0.0 + pw_total(acc_po, n_vb)) / np_max(0.0 + pw_total(acc_wo, n_vb), 1e-9)
        step_ok = cnt_new >= prm[_W_RS_MINBINS] and cnt_old >= prm[_W_RS_MINBINS]
        step = mu_new - mu_old if step_ok else 0.0
        n_h = vstep_base.shape[1]
        n_rdy = 0
        acc_pool = pw_start(0.0)
        for h in range(n_h):
            rdy = np.float64(vstep_base[g, h, 2]) >= prm[_W_RS_READY]
            n_rdy += 1 if rdy else 0
            acc_pool = pw_push(
                acc_pool, h, n_h, np.float64(vstep_base[g, h, 1] if rdy else np.float32(0.0))
            )
        pooled_var = (0.0 + pw_total(acc_pool, n_h)) / np.float64(max(n_rdy, 1))
        here_mu = np.float64(vstep_base[g, hour, 0])
        here_var = np.float64(vstep_base[g, hour, 1])
        ready_h = np.float64(vstep_base[g, hour, 2]) >= prm[_W_RS_READY]
        v_var = np_max(np_max(here_var, prm[_W_RS_POOLED] * pooled_var), prm[_W_RS_MINSD2])
        dev = step - here_mu if (ready_h and step_ok) else 0.0
        z = dev / np.sqrt(v_var)
        amps = -dev / np_max(impedance, 0.05)
        last = onset_last[g]
        since_last_s = (e_ms - last) / 1000.0 if last >= 0 else np.inf
        judged = can_judge and ready_h and step_ok
        pending = onset_hour[g] >= 0
        held_s = since_last_s if pending else 0.0
        down = (
            judged
            and ((not pending) or held_s >= prm[_W_RS_REPLACE])
            and z <= -prm[_W_RS_MINZ]
            and -dev >= prm[_W_RS_MINSTEP]
            and amps >= prm[_W_RS_MINAMPS]
            and since_last_s >= prm[_W_RS_REFRACT]
        )
        o_size = np.float64(onset_size[g])
        up = (
            pending
            and (not down)
            and judged
            and dev >= prm[_W_RS_OFFSHARE] * o_size
            and z >= prm[_W_RS_OFFZ]
        )
        cycle = up and held_s >= prm[_W_RS_MINHOLD] and held_s <= prm[_W_RS_MAXHOLD]
        drop = pending and (up or held_s > prm[_W_RS_MAXHOLD])
        decay = exps[3, r]
        near = (
            np.float64(onset_recur[g, (hour - 1) % 24])
            + np.float64(onset_recur[g, hour])
            + np.float64(onset_recur[g, (hour + 1) % 24])
        )
        prior = near * decay if down else 0.0
        if cycle:
            oh = onset_hour[g]
            for h in range(onset_recur.shape[1]):
                upd = np.float64(onset_recur[g, h]) * decay
                if h == oh:
                    upd += 1.0
                onset_recur[g, h] = np.float32(upd)
            onset_recur_ts[g] = e_ms
        if drop:
            onset_hour[g] = -1
        if down:
            onset_last[g] = e_ms
            onset_hour[g] = hour
            onset_size[g] = np.float32(-dev)
        rows[R_VSTEP, r] = step
        rows[R_VSTEP_OK, r] = 1.0 if step_ok else 0.0
        rows[R_VDEV, r] = dev
        rows[R_VZ, r] = z
        rows[R_VAMPS, r] = amps if (ready_h and step_ok) else 0.0
        rows[R_VONSET, r] = 1.0 if down else 0.0
        rows[R_VPRIOR, r] = prior

        # ---- PF: share of low-PF readings (with real current), EWMA, and its run
        has_pf = pstats[r, NPF] > 0
        a_pf = 1.0 - exps[4, r]
        share_now = pstats[r, NPFLOW] / np_max(pstats[r, NPF], 1.0)
        pf_ew = np.float64(pf_low_ew[g])
        if has_pf:
            pf_ew = pf_ew + a_pf * (share_now - pf_ew)
        pf_low_ew[g] = np.float32(pf_ew)
        pf_usual = fill_nan(np.float64(pf_low_base[g]), 1.0)
        pf_bad = warm and pf_ew >= prm[_W_PF_MINLOW] and pf_ew >= pf_usual + prm[_W_PF_MINRISE]
        pls = pf_low_start[g]
        if pf_bad and pls < 0:
            pls = e_ms
        if not pf_bad:
            pls = -1
        pf_low_start[g] = pls
        rows[R_PF_EW, r] = pf_ew
        rows[R_PF_USUAL, r] = pf_usual
        rows[R_PF_LOW_RUN, r] = (e_ms - pls) / 1000.0 if pls >= 0 else 0.0

        # ---- the day (Engine._update_day): roll a completed day into the rings
        cur = day_cur[g]
        if cur >= 0 and day > cur:
            cov = np.float64(day_cov_s[g])
            den = day_sum_exp[g]
            full = cov >= 12 * 3600
            ratio = day_sum_p[g] / np_max(den, 1e-9) if (full and den > 0) else np.nan
            for k in range(n_trend - 1):
                day_ratio[g, k] = day_ratio[g, k + 1]
            day_ratio[g, n_trend - 1] = np.float32(ratio)
            mean_w = day_sum_p[g] / np_max(cov, 1.0) if full else np.nan
            min_w = sb_min_today_w[g] if full else nan32
            for k in range(n_sb - 1):
                for c in range(sb_days.shape[2]):
                    sb_days[g, k, c] = sb_days[g, k + 1, c]
            sb_days[g, n_sb - 1, 0] = np.float32(mean_w)
            sb_days[g, n_sb - 1, 1] = min_w
            for c in range(4):
                sb_days[g, n_sb - 1, 2 + c] = np.float32(sb_imp_today[g, c] if full else np.nan)
            sb_min_today_w[g] = np.inf
            for c in range(4):
                sb_imp_today[g, c] = 0.0
            day_sum_p[g] = 0.0
            day_sum_exp[g] = 0.0
            day_cov_s[g] = 0.0
        day_cur[g] = day
        if np.isfinite(pane_p):
            sb_min_today_w[g] = np.float32(np_min(np.float64(sb_min_today_w[g]), pane_p))
        for c in range(4):
            sb_imp_today[g, c] = sb_imp_today[g, c] + pstats[r, SDVDI + c]
        if np.isfinite(exp_now):
            day_sum_p[g] += pane_p * dt
            day_sum_exp[g] += exp_now * dt
            day_cov_s[g] = np.float32(np.float64(day_cov_s[g]) + dt)
        # the cheap test of _days_facts: can R13 fire (today's floor low enough)?
        today_floor = np.float64(sb_min_today_w[g])
        hi_old = np.float32(-np.inf)
        for k in range(n_sb - 2):
            x = sb_days[g, k, SB_MIN]
            hi_old = np_max(hi_old, x if np.isfinite(x) else np.float32(-np.inf))
        cand = np.isfinite(today_floor) and today_floor <= prm[_W_SB_MAXFLOOR] * np.float64(hi_old)
        rows[R_DAYS_CAND, r] = 1.0 if cand else 0.0

        # ---- multi-day trend (detectors.features.trend_slope) and the last two days
        n_d = 0
        sx = 0.0
        sxx = 0.0
        acc_y = pw_start(0.0)
        acc_yd = pw_start(0.0)
        for k in range(n_trend):
            x = np.float64(day_ratio[g, k])
            ok = np.isfinite(x)
            y = x if ok else 0.0
            acc_y = pw_push(acc_y, k, n_trend, y)
            acc_yd = pw_push(acc_yd, k, n_trend, y * np.float64(k))
            if ok:
                n_d += 1
                sx += np.float64(k)
                sxx += np.float64(k * k)
        sy = 0.0 + pw_total(acc_y, n_trend)
        sxy = 0.0 + pw_total(acc_yd, n_trend)
        nf = np.float64(n_d)
        slope = safe_div(nf * sxy - sx * sy, nf * sxx - sx * sx, 0.0)
        rows[R_SLOPE, r] = slope if nf >= 3 else 0.0
        tail_n = 0
        acc_tail = pw_start(0.0)
        for k in range(2):
            x = np.float64(day_ratio[g, n_trend - 2 + k])
            acc_tail = pw_push(acc_tail, k, 2, x if np.isfinite(x) else 0.0)
            tail_n += 1 if np.isfinite(x) else 0
        rows[R_TREND_RATIO, r] = (
            (0.0 + pw_total(acc_tail, 2)) / np.float64(max(tail_n, 1)) if tail_n > 0 else 1.0
        )
        rows[R_TREND_DAYS, r] = nf

        # ---- window inputs of the features and rules
        fb = fill_nan(pfb, 1.0)
        npf = wsum[r, NPF]
        rows[R_PF_MEAN, r] = safe_div(wsum[r, SPF], npf, 1.0) if npf > 0 else fb
        rows[R_RESID_REL, r] = np_clip(safe_div(wsum[r, SRES], npf, 0.0), 0.0, 1.0)
        rows[R_CADENCE, r] = np.float64(cadence_s[g])
        rows[R_EXPORT_SHARE, r] = np.float64(export_share[g])
        # the facts that fill_nan gave
        rows[R_EXP_P0, r] = fill_nan(expected_p, 0.0)
        rows[R_DAILY0, r] = fill_nan(daily[r], 0.0)
        rows[R_PF_BASE1, r] = fb
        rows[R_SLOW_EXP0, r] = fill_nan(se, 0.0)
        rows[R_Z_LONG0, r] = fill_nan(z_l, 0.0)
    return rows, wsum, wmax_p, wmax_step, expected_v, expected_i, hbd


# parameters of learn_state (a float64 array, in this order)
LEARN_PARAMS = (
    "tau_s",
    "rs_refractory_s",
    "rs_min_sd_v2",
    "rs_learn_clip_sigmas",
    "rs_ready_s",
)
_L_TAU, _L_REFRACT, _L_MINSD2, _L_CLIP, _L_READY = range(len(LEARN_PARAMS))


@njit(cache=True, error_model="numpy")
def learn_state(
    gm,
    hbd,
    rows,
    pstats,
    end_ms,
    since_s,
    exps,
    learn,
    prm,
    base_w,
    base_p,
    base_p2,
    base_vw,
    base_v,
    base_i,
    pf_base,
    pf_low_base,
    e_scale,
    export_share,
    imp_long,
    onset_last,
    vstep_base,
    floor_day,
    floor_today_w,
    floor_days_w,
):
    """What a round's windows teach the meters' state once the rules have judged them
    (``learn``: not under suspicion), in one pass per meter: ``Engine._update_baselines``
    (the hour-slot power profile, the hour's voltage and current, the PF level and its
    low share, the step scale, the export share, the long impedance sums),
    ``_learn_vstep`` (the usual half-hour corrected-voltage step of the hour, away from
    sag onsets) and ``_learn_floor`` (the daily minimum of pane power). ``rows`` and
    ``hbd`` are :func:`window_state`'s outputs; ``exps`` rows 5-8 (numpy's exp, see
    window_state): exp(-dt/tau), exp(-dt/3 days), exp(-dt/7 days), exp(-dt/long
    impedance memory).
    """
    K = gm.shape[0]
    tau = prm[_L_TAU]
    n_floor = floor_days_w.shape[1]
    for r in range(K):
        g = gm[r]
        hour = hbd[0, r]
        day = hbd[1, r]
        bslot = hbd[2, r]
        dt = since_s[r]
        lrn = learn[r]
        if lrn:
            # ---- _update_baselines
            a_tau = 1.0 - exps[5, r]
            w = np.float64(base_w[g, bslot])
            a = dt / np_max(w + dt, 1e-9) if w < tau else a_tau
            bp = base_p[g, bslot]
            base_p[g, bslot] = np.float32(bp + a * (rows[R_PANE_P, r] - bp))
            bp2 = base_p2[g, bslot]
            base_p2[g, bslot] = np.float32(bp2 + a * (pstats[r, SP2] / pstats[r, N] - bp2))
            base_w[g, bslot] = np.float32(np_min(w + dt, 10 * tau))
            vw = np.float64(base_vw[g, hour])
            av = dt / np_max(vw + dt, 1e-9) if vw < tau else a_tau
            bv = base_v[g, hour]
            base_v[g, hour] = np.float32(bv + av * (rows[R_PANE_V, r] - bv))
            bi = base_i[g, hour]
            base_i[g, hour] = np.float32(bi + av * (rows[R_PANE_I, r] - bi))
            base_vw[g, hour] = np.float32(np_min(vw + dt, 10 * tau))
            a_slow = 1.0 - exps[6, r]
            npf = pstats[r, NPF]
            if npf > 0:
                pf_now = pstats[r, SPF] / np_max(npf, 1.0)
                cur = pf_base[g]
                a_pf = np_max(a_slow * 20, 0.02)
                new_pf = pf_now if np.isnan(cur) else cur + a_pf * (pf_now - cur)
                pf_base[g] = np.float32(new_pf)
                low_now = pstats[r, NPFLOW] / np_max(npf, 1.0)
                cur_low = pf_low_base[g]
                new_low = low_now if np.isnan(cur_low) else cur_low + a_slow * (low_now - cur_low)
                pf_low_base[g] = np.float32(new_low)
            nd = pstats[r, NDIFF]
            if nd > 0:
                e_now = pstats[r, SABSE] / np_max(nd, 1.0)
                cur_e = e_scale[g]
                new_e = e_now if np.isnan(cur_e) else cur_e + a_slow * 10 * (e_now - cur_e)
                e_scale[g] = np.float32(new_e)
            neg_share = pstats[r, NNEG] / pstats[r, N]
            a_exp = 1.0 - exps[7, r]
            es = export_share[g]
            export_share[g] = np.float32(es + a_exp * (neg_share - es))
            for c in range(4):
                imp_long[g, c] = imp_long[g, c] * exps[8, r] + pstats[r, SDVDI + c]

        # ---- _learn_vstep
        last = onset_last[g]
        after_onset = last >= 0 and (end_ms[r] - last) < prm[_L_REFRACT] * 1000
        if lrn and rows[R_VSTEP_OK, r] > 0.5 and not after_onset:
            x = rows[R_VSTEP, r]
            mu = np.float64(vstep_base[g, hour, 0])
            var = np.float64(vstep_base[g, hour, 1])
            w = np.float64(vstep_base[g, hour, 2])
            a = dt / np_max(w + dt, 1e-9) if w < tau else 1.0 - exps[5, r]
            sd = np.sqrt(np_max(var, prm[_L_MINSD2]))
            if w > 0:
                d = np_clip(x - mu, -prm[_L_CLIP] * sd, prm[_L_CLIP] * sd)
            else:
                d = x - mu
            if w < prm[_L_READY]:
                d = x - mu
            vstep_base[g, hour, 0] = np.float32(mu + a * d)
            vstep_base[g, hour, 1] = np.float32((1.0 - a) * (var + a * d * d))
            vstep_base[g, hour, 2] = np.float32(np_min(w + dt, 10 * tau))

        # ---- _learn_floor
        cur_day = np.int64(floor_day[g])
        if cur_day >= 0 and day > cur_day:
            today = floor_today_w[g]
            for k in range(n_floor - 1):
                floor_days_w[g, k] = floor_days_w[g, k + 1]
            floor_days_w[g, n_floor - 1] = today if np.isfinite(today) else np.float32(np.nan)
            floor_today_w[g] = np.inf
        floor_day[g] = max(day, cur_day)
        if lrn:
            floor_today_w[g] = np.float32(np_min(np.float64(floor_today_w[g]), pstats[r, MINP]))


@njit(cache=True, error_model="numpy")
def peer_round(
    gm,
    pstats,
    impedance,
    z_known,
    slot,
    phour,
    pday,
    new_day,
    j_rows,
    j_day,
    j_dip,
    j_peers,
    j_at,
    day_start_ms,
    min_dip_v,
    shallow_dip_v,
    peer_day,
    peer_u,
    peer_n,
    peer_dip,
    peer_dip_day,
):
    """R15's per-meter work of a round (``Engine._peer_voltage`` after the gateway
    judging, which stays in Python): the judged meters' dip rings and their counts of
    dipped and shallow nights among the last ``peer_dip.shape[1]`` days, the reset of
    the peer-day slot of meters starting a new day, the hour's sums of u = V + Z*I, and
    the facts. ``j_*``: the judged rows, their day, dip (V), peers and dip hour.

    Returns (facts (6, K): judged, dip or 0, nights, shallow nights, unmetered A, peers;
    since_ms: where each judged meter's dipped stretch began, -1 if not judged).
    """
    K = gm.shape[0]
    n_days = peer_dip.shape[1]
    facts = np.zeros((6, K))
    since_ms = np.full(K, -1, dtype=np.int64)
    dip = np.full(K, np.nan)
    thr_dip = np.float32(-min_dip_v)
    thr_shallow = np.float32(-shallow_dip_v)
    for k in range(j_rows.shape[0]):
        r = j_rows[k]
        m = gm[r]
        day = j_day[k]
        d = j_dip[k]
        facts[0, r] = 1.0
        dip[r] = d
        facts[5, r] = j_peers[k]
        since_ms[r] = day * DAY_MS + day_start_ms + j_at[k] * HOUR_MS
        peer_dip[m, day % n_days] = np.float32(d)
        peer_dip_day[m, day % n_days] = day
        nights = 0
        shallow = 0
        for q in range(n_days):
            if peer_dip_day[m, q] > day - n_days:
                if peer_dip[m, q] <= thr_dip:
                    nights += 1
                if peer_dip[m, q] <= thr_shallow:
                    shallow += 1
        facts[2, r] = nights
        facts[3, r] = shallow
    for r in range(K):
        m = gm[r]
        sl = slot[r]
        if new_day[r]:
            for h in range(peer_u.shape[2]):
                peer_u[m, sl, h] = 0.0
                peer_n[m, sl, h] = 0.0
            peer_day[m, sl] = pday[r]
        if z_known[r]:
            h = phour[r]
            peer_u[m, sl, h] = np.float32(
                np.float64(peer_u[m, sl, h]) + (pstats[r, SV] + impedance[r] * pstats[r, SI])
            )
            peer_n[m, sl, h] = np.float32(np.float64(peer_n[m, sl, h]) + pstats[r, N])
        d0 = fill_nan(dip[r], 0.0)
        facts[1, r] = d0
        facts[4, r] = (-d0 if facts[0, r] > 0 else 0.0) / np_max(impedance[r], 0.05)
    return facts, since_ms


# the per-window inputs of window_features, in its argument order (the keys of a round's
# "features_in", see stream.engine.Engine._score_round)
FEATURE_INPUTS = (
    "wsum",
    "wmax_step",
    "expected_p",
    "expected_std",
    "daily",
    "expected_v",
    "expected_i",
    "pf_base",
    "pf_mean",
    "impedance",
    "slope",
    "cadence",
)


@njit(cache=True, error_model="numpy")
def window_features(
    wsum,
    wmax_step,
    expected_p,
    expected_std,
    daily,
    expected_v,
    expected_i,
    pf_base,
    pf_mean,
    impedance,
    slope,
    cadence,
    window_s,
    ratio_floor_w,
    out,
    out_rows,
):
    """The feature row of every window of a round, written to ``out[out_rows[k]]``: what
    ``stream.engine.Engine._features`` computes with the numpy functions of
    :mod:`detectors.features` (columns in ``FEATURE_NAMES`` order), the same operations
    in the same order and precision (float32 inputs widened where numpy widened them,
    non-finite cells 0 as ``feature_matrix`` does)."""
    n_windows = wsum.shape[0]
    row = np.empty(out.shape[1])
    for k in range(n_windows):
        wn = wsum[k, N]
        mean_p = wsum[k, SP] / wn
        mean_v = wsum[k, SV] / wn
        mean_i = wsum[k, SI] / wn
        ep = expected_p[k]
        # p_ratio_baseline (ratio_to_baseline)
        den = np_max(fill_nan(ep, ratio_floor_w), ratio_floor_w)
        row[0] = np_clip(safe_div(mean_p, den, 1.0), -10.0, 10.0)
        # p_zscore_baseline
        spread = np_max(fill_nan(expected_std[k], 0.0), 20.0)
        row[1] = np_clip(safe_div(mean_p - fill_nan(ep, 0.0), spread, 0.0), -20.0, 20.0)
        # p_cv (coefficient_of_variation)
        mean = safe_div(wsum[k, SP], wn, 0.0)
        var = np_max(safe_div(wsum[k, SP2], wn, 0.0) - mean * mean, 0.0)
        cv = np_clip(safe_div(np.sqrt(var), np_max(np.abs(mean), 1.0), 0.0), 0.0, 10.0)
        row[2] = cv if wn >= 2 else 0.0
        # max_step_ratio (step_ratio: ratio_to_baseline of the step)
        row[3] = np_clip(safe_div(np.float64(wmax_step[k]), den, 1.0), -10.0, 10.0)
        # flat, zero-voltage and negative-power shares
        row[4] = np_clip(safe_div(wsum[k, NFLAT], wn, 0.0), 0.0, 1.0)
        row[5] = np_clip(safe_div(wsum[k, NZERO], wn, 0.0), 0.0, 1.0)
        row[6] = np_clip(safe_div(wsum[k, NNEG], wn, 0.0), 0.0, 1.0)
        # pf_mean, pf_jitter, pf_drop
        pfm = pf_mean[k]
        row[7] = pfm
        n_pf = wsum[k, NPF]
        pf_avg = safe_div(wsum[k, SPF], n_pf, 0.0)
        pf_var = np_max(safe_div(wsum[k, SPF2], n_pf, 0.0) - pf_avg * pf_avg, 0.0)
        row[8] = np.sqrt(pf_var) if n_pf >= 2 else 0.0
        row[9] = fill_nan(pf_base[k], 1.0) - pfm
        # residual shares (over the readings with a PF)
        row[10] = np_clip(safe_div(wsum[k, NRES], n_pf, 0.0), 0.0, 1.0)
        row[11] = np_clip(safe_div(wsum[k, SRES], n_pf, 0.0), 0.0, 1.0)
        # v_dev_ratio (voltage_deviation)
        ev = fill_nan(np.float64(expected_v[k]), 0.0)
        row[12] = safe_div(mean_v - ev, ev, 0.0) if ev > 0 else 0.0
        # v_unexplained_sag_v (unexplained_sag where the expected voltage is finite)
        if np.isfinite(expected_v[k]):
            r = np_clip(fill_nan(impedance[k], 0.0), 0.0, 2.0)
            explained = r * (mean_i - fill_nan(np.float64(expected_i[k]), 0.0))
            row[13] = (ev - mean_v) - explained if ev > 0 else 0.0
        else:
            row[13] = 0.0
        # sag_steps_share, trend slope
        row[14] = np_clip(safe_div(wsum[k, NSAG], wn, 0.0), 0.0, 1.0)
        row[15] = slope[k]
        # odd_hour_load
        day_den = np_max(fill_nan(daily[k], ratio_floor_w), ratio_floor_w)
        excess = np_max(mean_p - fill_nan(ep, 0.0), 0.0)
        row[16] = np_clip(safe_div(excess, day_den, 0.0), 0.0, 10.0)
        # coverage
        row[17] = np_clip(wn * fill_nan(cadence[k], window_s) / window_s, 0.0, 1.0)
        at = out_rows[k]
        for c in range(row.shape[0]):
            out[at, c] = row[c] if np.isfinite(row[c]) else 0.0


@njit(cache=True, error_model="numpy", inline="always")
def sorted_median(buf, k):
    """The median of ``buf[:k]`` (k > 0), sorting it in place by insertion (a
    transformer's few dozen steps, no allocation): numpy's median of the same values."""
    for q in range(1, k):
        v = buf[q]
        r = q - 1
        while r >= 0 and buf[r] > v:
            buf[r + 1] = buf[r]
            r -= 1
        buf[r + 1] = v
    a = buf[(k - 1) // 2]
    b = a if k % 2 == 1 else buf[k // 2]
    return 0.5 * (a + b)


@njit(cache=True, error_model="numpy")
def judge_pz_slot(dv, di, dv2, comoment, learn, min_corr, min_peers, decay):
    """R13's peer reference for one gateway and 15-minute slot, in one pass: the numbers
    of :mod:`detectors.peer_impedance` (``correlated_peers``, ``peer_reference``,
    ``referenced_sums`` and, when ``learn``, ``learn_comoment`` in place on
    ``comoment``; ``decay`` is its exp(-1 / memory), computed by numpy). ``min_corr``
    must be above 0 (a meter without steps is then nobody's peer, as there). Returns the
    members' (x*y, x^2) and, for R16, their half-hour steps ``dv2`` less the median of
    the same peers' (NaN: no step or too few peers with one), the peers found once."""
    n = dv.shape[0]
    scale = np.empty(n)
    for i in range(n):
        d = comoment[i, i]
        scale[i] = np.sqrt(d if d > 0.0 else 0.0)
    xy = np.zeros(n)
    xx = np.zeros(n)
    y2 = np.full(n, np.nan)
    buf = np.empty(n)
    buf2 = np.empty(n)
    for i in range(n):
        k = 0
        k2 = 0
        if scale[i] > 0.0:
            for j in range(n):
                if j != i and scale[j] > 0.0:
                    if comoment[i, j] / (scale[i] * scale[j]) >= min_corr:
                        if np.isfinite(dv[j]):
                            buf[k] = dv[j]
                            k += 1
                        if np.isfinite(dv2[j]):
                            buf2[k2] = dv2[j]
                            k2 += 1
        ref = np.nan
        if k >= min_peers and k > 0:
            ref = sorted_median(buf, k)
        if k2 >= min_peers and k2 > 0:
            y2[i] = dv2[i] - sorted_median(buf2, k2)
        if np.isfinite(dv[i]) and np.isfinite(di[i]) and np.isfinite(ref):
            xy[i] = di[i] * (dv[i] - ref)
            xx[i] = di[i] * di[i]
    if learn:
        x = np.empty(n)
        for i in range(n):
            x[i] = dv[i] if np.isfinite(dv[i]) else 0.0
        for i in range(n):
            for j in range(n):
                comoment[i, j] = comoment[i, j] * decay + x[i] * x[j]
    return xy, xx, y2


@njit(cache=True, error_model="numpy")
def pz_steps(members, s, pz_slot, pz_vi):
    """The members' steps of mean V and mean I into 15-minute slot ``s`` from slot
    ``s - 1`` (R13) and from slot ``s - 2`` (R16's half-hour steps), from their rings in
    one pass (``Engine._judge_pz_slot``): NaN for a member that has not moved past ``s``
    (its slot may still fill), whose ring no longer holds the earlier slot, or with a slot
    empty or spoilt by an exporting reading. Returns (dv, di, dv2, di2)."""
    n = members.shape[0]
    slots = pz_vi.shape[1]
    out = np.full((4, n), np.nan)
    for k in range(n):
        g = members[k]
        newest = pz_slot[g]
        c = s % slots
        if newest <= s or pz_vi[g, c, 2] <= 0:
            continue
        n_c = np.float64(pz_vi[g, c, 2])
        v_c = np.float64(pz_vi[g, c, 0]) / n_c
        i_c = np.float64(pz_vi[g, c, 1]) / n_c
        for back in range(1, 3):
            p = (s - back) % slots
            if newest - s + back < slots and pz_vi[g, p, 2] > 0:
                n_p = np.float64(pz_vi[g, p, 2])
                row = 2 * (back - 1)
                out[row, k] = v_c - np.float64(pz_vi[g, p, 0]) / n_p
                out[row + 1, k] = i_c - np.float64(pz_vi[g, p, 1]) / n_p
    return out[0], out[1], out[2], out[3]


@njit(cache=True, error_model="numpy")
def timer_hook_rows(
    order,
    g,
    s,
    dv_ref,
    di,
    z,
    max_di_a,
    min_step_v,
    match_ratio,
    min_len_slots,
    max_len_slots,
    clock_tol_slots,
    len_tol_slots,
    max_apart_days,
    slots_per_day,
    hk_on,
    hk_on_v,
    hk_pair,
    hk_pair_len,
    hk_repeat,
    hk_pair_v,
):
    """R16's step pairs (``Engine._close_pz_slots``): the rows (meter ``g``, slot ``s``)
    in ``order`` (each meter's slots ascending), each one's unexplained step and one
    :func:`detectors.timer_hook.step_hook` on the meter's state, in place (``hk_pair_v``,
    the last pair's size, in float32, is what R15's pair tier reads). Returns per row:
    pair closed, repeated, its switch-on slot, length (slots), size (V) and the meter's
    repeats in a row after it."""
    n = g.shape[0]
    closed = np.zeros(n, dtype=np.bool_)
    repeated = np.zeros(n, dtype=np.bool_)
    on_out = np.full(n, -1, dtype=np.int64)
    len_out = np.zeros(n, dtype=np.int64)
    size_out = np.zeros(n)
    rep_out = np.zeros(n, dtype=np.int64)
    half = slots_per_day // 2
    for q in range(n):
        r = order[q]
        m = g[r]
        slot = s[r]
        # detectors.timer_hook.unexplained_step
        e = np.nan
        if np.isfinite(dv_ref[r]) and np.isfinite(di[r]) and abs(di[r]) <= max_di_a:
            if np.isfinite(z[r]):
                e = dv_ref[r] + z[r] * di[r]
            elif abs(di[r]) <= 0.1 * max_di_a:
                e = dv_ref[r]
        on_slot = np.int64(hk_on[m])
        on_v = np.float64(hk_on_v[m])
        if on_slot >= 0 and slot - on_slot > max_len_slots:
            on_slot = -1
            on_v = 0.0
        if np.isfinite(e):
            if e <= -min_step_v:
                if not (on_slot >= 0 and slot - on_slot <= 2 and e >= on_v):
                    on_slot = slot
                    on_v = e
            elif e >= min_step_v and on_slot >= 0:
                length = slot - on_slot
                size = max(e, -on_v)
                if min_len_slots <= length <= max_len_slots and abs(e + on_v) <= match_ratio * size:
                    pair_slot = np.int64(hk_pair[m])
                    apart = on_slot - pair_slot
                    off_clock = abs((apart + half) % slots_per_day - half)
                    rep = (
                        pair_slot >= 0
                        and slots_per_day - clock_tol_slots <= apart
                        and apart <= max_apart_days * slots_per_day + clock_tol_slots
                        and off_clock <= clock_tol_slots
                        and abs(length - np.int64(hk_pair_len[m])) <= len_tol_slots
                    )
                    if rep:
                        hk_repeat[m] = min(np.int64(hk_repeat[m]) + 1, 100)
                    else:
                        hk_repeat[m] = 0
                    closed[r] = True
                    repeated[r] = rep
                    on_out[r] = on_slot
                    len_out[r] = length
                    size_out[r] = 0.5 * (e - on_v)
                    rep_out[r] = hk_repeat[m]
                    hk_pair[m] = on_slot
                    hk_pair_len[m] = length
                    hk_pair_v[m] = size_out[r]
                    on_slot = -1
                    on_v = 0.0
        hk_on[m] = on_slot
        hk_on_v[m] = on_v
    return closed, repeated, on_out, len_out, size_out, rep_out
