"""Kafka message decoding benchmark (run on demand: `make bench`, or
`.venv/bin/pytest -s tests/benchmarks/test_bench_codecs.py -p no:cacheprovider`).

Prints readings/s (CPU time of this process) of ``decode_message`` next to the per-reading
reference ``_decode_message_reference`` on the same 50,000 gateway-batch messages of 20
readings each, and the ratio. Two mixes: all readings clean, and 1 reading in 20 off the
fast path (ISO timestamp, or a value the checks reject). Never asserts on time.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from stream.codecs import ReadingBatch, Rejection, _decode_message_reference, decode_message

pytestmark = [pytest.mark.benchmark]

MESSAGES = 50_000
READINGS_PER_MESSAGE = 20
TS0 = 1_767_571_200_000

Decoder = Callable[[bytes], tuple[ReadingBatch, list[Rejection]]]


def gateway_messages(odd_every: int | None, seed: int = 5) -> list[bytes]:
    """Messages like a gateway's: 20 meters, 1-minute readings, realistic float noise."""
    rng = random.Random(seed)
    out = []
    for k in range(MESSAGES):
        gateway = k % 500
        readings: list[dict[str, Any]] = []
        for j in range(READINGS_PER_MESSAGE):
            reading: dict[str, Any] = {
                "meter_id": f"MTR-{gateway * READINGS_PER_MESSAGE + j:06d}",
                "ts": TS0 + (k // 500) * 60_000,
                "p": round(rng.uniform(50, 3000), 1),
                "v": round(rng.gauss(230, 3), 1),
                "i": round(rng.uniform(0.2, 13), 3),
                "pf": round(rng.uniform(0.8, 1.0), 3),
            }
            if odd_every and (k * READINGS_PER_MESSAGE + j) % odd_every == 0:
                if rng.random() < 0.5:
                    reading["ts"] = "2026-01-05T00:01:00+00:00"
                else:
                    reading["pf"] = 1.2
            readings.append(reading)
        out.append(orjson.dumps({"gateway_id": f"GW-{gateway:04d}", "readings": readings}))
    return out


def run(decode: Decoder, messages: list[bytes]) -> tuple[float, int, int]:
    """CPU seconds, readings accepted, readings rejected."""
    accepted = rejected = 0
    start = time.process_time()
    for message in messages:
        batch, rejections = decode(message)
        accepted += len(batch)
        rejected += len(rejections)
    return time.process_time() - start, accepted, rejected


@pytest.mark.parametrize(("mix", "odd_every"), [("clean", None), ("1 in 20 odd", 20)])
def test_bench_decode_message_fast_vs_reference(mix: str, odd_every: int | None) -> None:
    messages = gateway_messages(odd_every)
    total = MESSAGES * READINGS_PER_MESSAGE
    ref_s, ref_ok, ref_bad = run(_decode_message_reference, messages)
    fast_s, fast_ok, fast_bad = run(decode_message, messages)
    print(
        f"\ndecode_message, {MESSAGES:,} gateway batches x {READINGS_PER_MESSAGE} readings "
        f"({mix}; accepted {fast_ok:,}, rejected {fast_bad:,}):\n"
        f"  reference (per reading): {total / ref_s:>12,.0f} readings/s  ({ref_s:.2f} s CPU)\n"
        f"  fast (column-wise)     : {total / fast_s:>12,.0f} readings/s  ({fast_s:.2f} s CPU)\n"
        f"  ratio fast / reference : {ref_s / fast_s:.2f}x"
    )
    # same work done (the differential unit test checks the values themselves)
    assert (fast_ok, fast_bad) == (ref_ok, ref_bad)
    assert fast_ok + fast_bad == total
