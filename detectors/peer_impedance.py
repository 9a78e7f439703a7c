"""A meter's voltage steps against its transformer's: the peer-referenced impedance fit.

A meter's service impedance Z is the slope of its voltage against its own current: each
step in the current it measures moves its voltage by -Z times that step. A bypass hides
part of the current from the meter but not from the cable, so the fitted Z rises to
Z / (1 - f) for a bypassed share f (R13 compares the fit of the last two days with the
days before). The voltage also moves when the transformer's other customers switch
loads, the same for every meter on it; that is noise to the fit, and the largest part of
its day-to-day spread (``tests/benchmarks/test_bench_peer_impedance_study.py``: 9.3 %
with the meter's own steps, 2.3 % with each step less its transformer's median step).

No meter-to-transformer map comes with the readings, but the voltages carry it: meters on
one transformer step together (correlation 0.65-0.73 on the simulator), meters on
different transformers do not (0.01-0.03). So each meter's peers are the meters of its
gateway whose 15-minute voltage steps correlate with its own at least ``min_step_corr_ratio``
(learnt from decayed co-moments of the steps), and its referenced step is its own step
less the median of its peers' steps over the same 15 minutes.

This module is the pure part, on one gateway's meters and one 15-minute step: arrays of
shape (meters,) or (meters, meters); NaN means "no step".
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from detectors.features import finite_median

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def correlated_peers(comoment: FloatArray, min_corr: float) -> BoolArray:
    """Which meters are each meter's peers: their steps' correlation (from the co-moment
    matrix, steps taken as 0 where missing) at least ``min_corr``; never the meter itself,
    never a meter without steps.

    Meters 0 and 1 step together, meter 2 on its own:

    >>> c = np.array([[4.0, 3.6, 0.1], [3.6, 4.0, 0.0], [0.1, 0.0, 1.0]])
    >>> correlated_peers(c, 0.4).tolist()
    [[False, True, False], [True, False, False], [False, False, False]]
    """
    scale = np.sqrt(np.clip(np.diag(comoment), 0.0, None))
    known = scale > 0
    denominator = np.where(known[:, None] & known[None, :], np.outer(scale, scale), np.inf)
    peers = (comoment / denominator) >= min_corr
    np.fill_diagonal(peers, False)
    return np.asarray(peers, dtype=bool)


def peer_reference(dv: FloatArray, peers: BoolArray, min_peers_n: float) -> FloatArray:
    """Each meter's reference step: the median step of its peers that have one, NaN with
    fewer than ``min_peers_n`` of them.

    Four meters on one transformer see the supply rise 0.5 V; meter 0 also drops by its own
    load's 1.0 V; meter 4 has no peers:

    >>> dv = np.array([-0.5, 0.5, 0.6, 0.4, 0.2])
    >>> peers = np.zeros((5, 5), dtype=bool)
    >>> peers[:4, :4] = ~np.eye(4, dtype=bool)
    >>> peer_reference(dv, peers, 3).round(2).tolist()
    [0.5, 0.4, 0.4, 0.5, nan]
    """
    values = np.where(peers & np.isfinite(dv)[None, :], dv[None, :], np.nan)
    reference, n = finite_median(values, axis=1)
    return np.where(n >= min_peers_n, reference, np.nan)


def referenced_sums(
    dv: FloatArray, di: FloatArray, reference: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """The two sums of the fit Z = -sum(x*y) / sum(x^2), x the current step, y the voltage
    step less its reference: (x*y, x^2) per meter, 0 where any of the three is missing.

    >>> xy, xx = referenced_sums(np.array([-1.1, 0.3]), np.array([5.0, 2.0]),
    ...                          np.array([-0.1, np.nan]))
    >>> xy.tolist(), xx.tolist()
    ([-5.0, 0.0], [25.0, 0.0])
    """
    ok = np.isfinite(dv) & np.isfinite(di) & np.isfinite(reference)
    x = np.where(ok, di, 0.0)
    return x * np.where(ok, dv - reference, 0.0), x * x


def comoment_decay(t: Mapping[str, float]) -> float:
    """The co-moments' decay per step: one step of a ``memory_steps_n`` memory.

    >>> round(comoment_decay({"memory_steps_n": 192.0}), 5)
    0.99481
    """
    return float(np.exp(-1.0 / t["memory_steps_n"]))


def learn_comoment(comoment: FloatArray, dv: FloatArray, t: Mapping[str, float]) -> FloatArray:
    """The co-moments of the steps after one more step: decayed by one step of a
    ``memory_steps_n`` memory, plus the outer product of the steps (0 where missing).

    >>> learn_comoment(np.zeros((2, 2)), np.array([1.0, np.nan]), {"memory_steps_n": 1e9})
    array([[1., 0.],
           [0., 0.]])
    """
    x = np.where(np.isfinite(dv), dv, 0.0)
    return np.asarray(comoment * comoment_decay(t) + np.outer(x, x), dtype=np.float64)
