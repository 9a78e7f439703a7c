"""A meter's night against its gateway's: the peer voltage reference behind R15.

A pump (or any load) hooked before the meter draws current through the meter's own
service drop that the meter does not measure, so the meter's corrected voltage
u = V + Z*I (Z: its fitted service impedance, I: the current it measures) sits about
Z*I_pump lower for the hours the load runs. A single meter cannot tell that from a
neighbour's load sagging the whole transformer; its peers can, because a neighbour's
load lowers all of them alike, and the hooked load only this one. This module is the
pure part: given the hourly mean u of one gateway's meters over one day, each meter's
deepest stretch of hours below the gateway's median (``tests/benchmarks/
test_bench_peer_voltage_study.py`` measures the idea on simulator tuning seeds).

Everything is (meters, hours) arrays; NaN means "no data for that hour".
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from detectors.features import finite_median

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def night_dips(u: FloatArray, t: Mapping[str, float]) -> tuple[FloatArray, FloatArray, IntArray]:
    """Each meter's deepest ``stretch_h`` stretch below its gateway's peers on one day.

    ``u`` is (meters, hours): the hourly mean corrected voltage of one gateway's meters.
    Per hour, the reference is the median over the meters with data (at least
    ``min_peers_n``) of their levels less each one's offset, its own median distance from
    the reference over the day (a load that runs a few hours does not move it). A
    stretch counts the hours it spans only if every one of them is below the offset (a
    max over the stretch), and only where at most ``max_dipping_n`` meters of the
    gateway dip by ``shared_dip_v`` over the same stretch: a sag shared by several meters
    is the transformer's, not one meter's load.

    Returns (dip, peers, at): per meter the deepest such stretch in volts (negative:
    below the peers; NaN without a judgeable stretch), the fewest meters the reference
    had over the day's judged hours, and the first hour of that stretch (-1: none).

    Meter 0 sits 2 V below its four peers from hour 2 to hour 5; meters 1 and 2 sag
    together from hour 8 to 10 (shared: not one meter's load):

    >>> u = np.full((5, 12), 230.0)
    >>> u[0, 2:6] -= 2.0
    >>> u[1:3, 8:11] -= 2.0
    >>> dip, peers, at = night_dips(u, {"min_peers_n": 4, "stretch_h": 3,
    ...                                  "shared_dip_v": 1.5, "max_dipping_n": 1})
    >>> dip.round(2).tolist(), peers.tolist(), int(at[0])
    ([-2.0, 0.0, 0.0, 0.0, 0.0], [5.0, 5.0, 5.0, 5.0, 5.0], 2)
    """
    hours = u.shape[1]
    span = int(t["stretch_h"])
    # two passes: meters differ by their calibration and their place on the feeder (volts
    # apart, for good), so the median of raw levels would jump from meter to meter as one
    # of them dips; the reference is the median of the levels with each offset removed
    ref, n_peers = finite_median(u, axis=0)
    judged = n_peers >= t["min_peers_n"]
    offset, _ = finite_median(np.where(judged[None, :], u - ref[None, :], np.nan), axis=1)
    level = u - offset[:, None]
    ref, _ = finite_median(level, axis=0)
    rel = np.where(judged[None, :], level - ref[None, :], np.nan)
    second, _ = finite_median(rel, axis=1)
    below = rel - second[:, None]
    if hours < span or u.shape[0] == 0:
        empty = np.full(u.shape[0], np.nan)
        return empty, empty.copy(), np.full(u.shape[0], -1, dtype=np.int64)
    # the shallowest hour of each stretch (NaN if any hour of it is missing)
    stretch = below[:, : hours - span + 1].copy()
    for k in range(1, span):
        stretch = np.maximum(stretch, below[:, k : hours - span + 1 + k])
    deep = np.where(np.isfinite(stretch), stretch <= -t["shared_dip_v"], False)
    shared = deep.sum(axis=0) > t["max_dipping_n"]
    usable = np.isfinite(stretch) & ~shared[None, :]
    candidates = np.where(usable, stretch, np.inf)
    at = np.argmin(candidates, axis=1).astype(np.int64)
    dip = candidates.min(axis=1)
    at = np.where(np.isfinite(dip), at, -1)
    dip = np.where(np.isfinite(dip), dip, np.nan)
    fewest = np.where(judged, n_peers, np.iinfo(np.int64).max).min()
    peers = np.where(np.isfinite(dip), float(fewest), np.nan)
    return np.asarray(dip, dtype=np.float64), np.asarray(peers, dtype=np.float64), at
