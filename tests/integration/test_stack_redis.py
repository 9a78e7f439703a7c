"""Redis of the local stack: a stream round trip (the alerts stream is a Redis Stream)."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

pytestmark = pytest.mark.integration


def test_xadd_xread_round_trip(redis_client: Any) -> None:
    stream = f"mwtest:stream:{secrets.token_hex(4)}"
    entries = [{"event_id": f"ev-{n}", "severity": "high", "version": str(n)} for n in range(3)]
    ids = [redis_client.xadd(stream, entry) for entry in entries]
    assert ids == sorted(ids)

    ((name, read),) = redis_client.xread({stream: "0-0"}, count=10)
    assert name == stream.encode()
    assert [entry_id for entry_id, _ in read] == ids
    decoded = [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in read]
    assert decoded == entries

    # reading after the last id returns nothing (block 50 ms, not forever)
    assert redis_client.xread({stream: ids[-1]}, count=10, block=50) == []
    assert redis_client.xlen(stream) == 3


def test_nothing_is_persisted(redis_client: Any) -> None:
    # the stack runs Redis with --save '' --appendonly no
    assert redis_client.config_get("save") == {"save": ""}
    assert redis_client.config_get("appendonly") == {"appendonly": "no"}
