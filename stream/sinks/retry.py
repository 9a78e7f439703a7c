"""Retry a sink write until it succeeds, with capped exponential backoff.

Outputs are never dropped: while a sink is down the batch is not finished, so
its input offsets are not committed and the worker simply waits (consumption
pauses, the group membership stays alive because heartbeats run in their own
task). Cancellation (shutdown, rebalance) propagates; the outputs are then
re-derived from the last snapshot by whoever owns the partition next.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


async def retry_until_done(
    operation: Callable[[], Awaitable[T]],
    *,
    sink: str,
    on_retry: Callable[[str], None],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    first_delay_s: float = 0.05,
    max_delay_s: float = 5.0,
    retry_on: tuple[type[BaseException], ...] = (Exception,),
) -> T:
    """Run ``operation`` until it returns; sleep with doubling delay between failures."""
    delay = first_delay_s
    attempt = 0
    while True:
        try:
            return await operation()
        except retry_on as exc:  # noqa: PERF203 - a retry loop is the point
            attempt += 1
            on_retry(sink)
            if attempt == 1 or attempt % 20 == 0:
                # The message names the sink and the error class only: no payloads.
                log.warning(
                    "%s sink failed (%s: %s); retry %d in %.2fs",
                    sink,
                    type(exc).__name__,
                    str(exc)[:200],
                    attempt,
                    delay,
                )
            await sleep(delay)
            delay = min(delay * 2.0, max_delay_s)
