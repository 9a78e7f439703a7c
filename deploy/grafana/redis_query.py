"""A typed query for the Grafana Redis data source plugin (``redis-datasource``).

grafana-foundation-sdk ships query builders for Grafana's core data sources only,
so this module adds the Redis one the SDK's way: a ``Dataquery`` variant (the JSON
model) plus a ``Builder``. The field names are those of the plugin's query model
(``type``, ``command``, ``keyName``, ``min``, ``max``, ``start``, ``end``,
``count``, ``zrangeQuery``); the commands used here are among the plugin's
supported commands (``hgetall``, ``zrange``, ``xrange``, ``xrevrange``). The plugin
returns every stream and hash value as a string, so panels that plot them
convert the fields (see ``deploy/grafana/panels.py``).
"""

from __future__ import annotations

import typing

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models.dashboard import DataSourceRef

REDIS_PLUGIN_TYPE = "redis-datasource"
REDIS_COMMANDS = frozenset({"hgetall", "zrange", "xrange", "xrevrange"})

_FIELDS = ("type", "command", "keyName", "min", "max", "start", "end", "count", "zrangeQuery")


class RedisDataquery(cogvariants.Dataquery):
    """The JSON model of one redis-datasource query."""

    def __init__(
        self,
        ref_id: str = "",
        command: str = "",
        key_name: str = "",
        datasource: DataSourceRef | None = None,
        extra: dict[str, object] | None = None,
    ) -> None:
        self.ref_id = ref_id
        self.command = command
        self.key_name = key_name
        self.datasource = datasource
        self.extra: dict[str, object] = dict(extra or {})

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {
            "refId": self.ref_id,
            "type": "command",
            "command": self.command,
            "keyName": self.key_name,
        }
        payload.update(self.extra)
        if self.datasource is not None:
            payload["datasource"] = self.datasource
        return payload

    @classmethod
    def from_json(cls, data: dict[str, typing.Any]) -> RedisDataquery:
        extra = {
            k: v
            for k, v in data.items()
            if k in _FIELDS and k not in ("type", "command", "keyName")
        }
        ds = data.get("datasource")
        return cls(
            ref_id=str(data.get("refId", "")),
            command=str(data.get("command", "")),
            key_name=str(data.get("keyName", "")),
            datasource=DataSourceRef.from_json(ds) if isinstance(ds, dict) else None,
            extra=extra,
        )


class RedisQuery(cogbuilder.Builder[RedisDataquery]):
    """Builder for ``RedisDataquery``; one method per plugin command used here."""

    def __init__(self) -> None:
        self._internal = RedisDataquery()

    def build(self) -> RedisDataquery:
        if self._internal.command not in REDIS_COMMANDS:
            raise ValueError(f"unsupported redis-datasource command {self._internal.command!r}")
        if not self._internal.key_name:
            raise ValueError("a redis-datasource query needs a key")
        return self._internal

    def ref_id(self, ref_id: str) -> typing.Self:
        self._internal.ref_id = ref_id
        return self

    def datasource(self, datasource: DataSourceRef) -> typing.Self:
        self._internal.datasource = datasource
        return self

    def hgetall(self, key: str) -> typing.Self:
        """All fields of a hash, as one row."""
        self._internal.command, self._internal.key_name = "hgetall", key
        return self

    def zrange_by_index(self, key: str, first: int, last: int) -> typing.Self:
        """``ZRANGE key first last WITHSCORES``: negative indexes count from the top score."""
        self._internal.command, self._internal.key_name = "zrange", key
        self._internal.extra.update({"min": str(first), "max": str(last), "zrangeQuery": ""})
        return self

    def xrange(self, key: str, count: int) -> typing.Self:
        """The oldest ``count`` entries of a stream, whatever the dashboard's time range."""
        self._internal.command, self._internal.key_name = "xrange", key
        self._internal.extra.update({"start": "-", "end": "+", "count": count})
        return self

    def xrevrange(self, key: str, count: int) -> typing.Self:
        """The newest ``count`` entries of a stream, newest first."""
        self._internal.command, self._internal.key_name = "xrevrange", key
        self._internal.extra.update({"start": "-", "end": "+", "count": count})
        return self


def register() -> None:
    """Let ``Dashboard.from_json`` parse Redis targets as ``RedisDataquery`` (idempotent)."""
    cogruntime.register_dataquery_variant(
        cogruntime.DataqueryConfig(
            identifier=REDIS_PLUGIN_TYPE, from_json_hook=RedisDataquery.from_json
        )
    )
