"""Turn the engine's ``Event`` objects into event-schema JSON dicts, whatever their class."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson


def event_to_dict(event: Any) -> dict[str, Any]:
    """The event as a plain dict of JSON types (contracts section 4)."""
    if isinstance(event, dict):
        data: Any = event
    elif hasattr(event, "to_json"):  # rules.events.Event: the contract JSON as a dict
        data = event.to_json()
    elif hasattr(event, "to_dict"):
        data = event.to_dict()
    elif hasattr(event, "model_dump"):
        data = event.model_dump(mode="json")
    elif dataclasses.is_dataclass(event) and not isinstance(event, type):
        data = dataclasses.asdict(event)
    else:
        raise TypeError(f"cannot serialise event of type {type(event).__name__}")
    # A round-trip through orjson normalises numpy scalars and datetimes to JSON types.
    result: dict[str, Any] = orjson.loads(
        orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NAIVE_UTC)
    )
    return result


def event_json(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event, option=orjson.OPT_SORT_KEYS)


def event_key(event: dict[str, Any]) -> tuple[str, int]:
    return str(event["event_id"]), int(event["version"])
