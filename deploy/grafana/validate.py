"""A focused structural check of dashboard JSON against Grafana's dashboard schema.

Two layers:

1. Round trip through grafana-foundation-sdk's models, which are generated from
   Grafana's own dashboard schema: parsing drops keys the schema does not know and
   fills keys it requires, so a model that comes back different is not what
   Grafana's schema describes.
2. What the schema cannot say but Grafana needs to render the dashboard: types of
   the layout fields, a 24-column grid without overlaps, unique panel ids and
   refIds, data sources that exist (by uid), known panel types, transformations
   and Redis commands, PromQL present, and every ``$variable`` defined.

``problems(model)`` returns human-readable problems; an empty list means valid.
"""

from __future__ import annotations

import json
import re
import typing

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

from deploy.grafana.datasources import PROMETHEUS_UID, REDIS_UID
from deploy.grafana.panels import DashboardJSON
from deploy.grafana.redis_query import REDIS_COMMANDS, register

GRID_COLUMNS = 24
PANEL_TYPES = frozenset({"row", "stat", "timeseries", "table", "bargauge", "heatmap"})
TRANSFORMATIONS = frozenset(
    {"convertFieldType", "filterFieldsByName", "sortBy", "organize", "reduce"}
)
KNOWN_DATASOURCES = {PROMETHEUS_UID: "prometheus", REDIS_UID: "redis-datasource"}
# Grafana's built-in variables and macros that dashboards may reference
BUILTIN_VARIABLES = frozenset(
    {"__range", "__rate_interval", "__interval", "__value", "__url_time_range", "__data", "__field"}
)
_UID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
_VARIABLE = re.compile(r"\$(?:\{([A-Za-z0-9_]+)(?:[.:][^}]*)?\}|([A-Za-z0-9_]+))")


def problems(model: DashboardJSON) -> list[str]:
    found = _schema_round_trip(model)
    found += _top_level(model)
    variables = {v.get("name") for v in model.get("templating", {}).get("list", [])}
    panels = list(_panels(model))
    found += _layout(panels)
    for panel in panels:
        found += _panel(panel, variables)
    return found


def _schema_round_trip(model: DashboardJSON) -> list[str]:
    register()
    try:
        parsed = Dashboard.from_json(model)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        return [f"not parseable as a Grafana dashboard: {error!r}"]
    again = json.loads(json.dumps(parsed, cls=JSONEncoder))
    return [f"schema: {difference}" for difference in _differences(model, again, "")]


def _differences(ours: object, schema: object, path: str) -> typing.Iterator[str]:
    if isinstance(ours, dict) and isinstance(schema, dict):
        for key in sorted(set(ours) | set(schema)):
            if key not in schema:
                yield f"{path}/{key} is not in Grafana's dashboard schema"
            elif key not in ours:
                yield f"{path}/{key} is required by the schema but missing"
            else:
                yield from _differences(ours[key], schema[key], f"{path}/{key}")
    elif isinstance(ours, list) and isinstance(schema, list) and len(ours) == len(schema):
        for index, (mine, theirs) in enumerate(zip(ours, schema, strict=True)):
            yield from _differences(mine, theirs, f"{path}[{index}]")
    elif ours != schema:
        yield f"{path}: {ours!r} reads back as {schema!r}"


def _top_level(model: DashboardJSON) -> list[str]:
    found = []
    expected: dict[str, type | tuple[type, ...]] = {
        "title": str,
        "uid": str,
        "schemaVersion": int,
        "panels": list,
        "tags": list,
        "time": dict,
        "templating": dict,
        "annotations": dict,
    }
    for key, kind in expected.items():
        if not isinstance(model.get(key), kind):
            found.append(f"top level: {key} must be {kind}")
    if isinstance(model.get("uid"), str) and not _UID.match(model["uid"]):
        found.append(f"uid {model['uid']!r}: 1-40 characters of [A-Za-z0-9_-]")
    if model.get("id") is not None:
        found.append("a provisioned dashboard must not carry a database id")
    if not isinstance(model.get("templating", {}).get("list"), list):
        found.append("templating.list must be a list")
    if not isinstance(model.get("annotations", {}).get("list"), list):
        found.append("annotations.list must be a list")
    return found


def _layout(panels: list[dict[str, typing.Any]]) -> list[str]:
    found = []
    ids = [panel.get("id") for panel in panels]
    if len(ids) != len(set(ids)) or not all(isinstance(i, int) and i > 0 for i in ids):
        found.append(f"panel ids must be unique positive integers: {ids}")
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        title = panel.get("title", "?")
        grid = panel.get("gridPos", {})
        h, w, x, y = (grid.get(k) for k in ("h", "w", "x", "y"))
        if not all(isinstance(v, int) for v in (h, w, x, y)):
            found.append(f"{title}: gridPos needs integer h, w, x, y: {grid}")
            continue
        h, w, x, y = typing.cast(tuple[int, int, int, int], (h, w, x, y))
        if h < 1 or w < 1 or x < 0 or y < 0 or x + w > GRID_COLUMNS:
            found.append(f"{title}: gridPos outside the {GRID_COLUMNS}-column grid: {grid}")
            continue
        for row in range(y, y + h):
            for column in range(x, x + w):
                if (row, column) in cells:
                    found.append(f"{title}: overlaps {cells[(row, column)]} at ({column}, {row})")
                    break
                cells[(row, column)] = title
            else:
                continue
            break
    return found


def _panel(panel: dict[str, typing.Any], variables: set[object]) -> list[str]:
    title = panel.get("title") or f"panel {panel.get('id')}"
    kind = panel.get("type")
    if kind not in PANEL_TYPES:
        return [f"{title}: unknown panel type {kind!r}"]
    if kind == "row":
        return []
    found = []
    datasource = panel.get("datasource") or {}
    uid = str(datasource.get("uid"))
    if KNOWN_DATASOURCES.get(uid) != datasource.get("type"):
        found.append(f"{title}: data source {datasource} is not one meterwatch provisions")
    targets = panel.get("targets") or []
    if not targets:
        found.append(f"{title}: no queries")
    ref_ids = [target.get("refId") for target in targets]
    if len(set(ref_ids)) != len(ref_ids) or not all(ref_ids):
        found.append(f"{title}: refIds must be unique and non-empty: {ref_ids}")
    texts: list[str] = []
    for target in targets:
        if target.get("datasource", datasource) != datasource:
            found.append(f"{title}: query {target.get('refId')} uses another data source")
        if datasource.get("type") == "prometheus":
            if not str(target.get("expr", "")).strip():
                found.append(f"{title}: query {target.get('refId')} has no PromQL")
            texts.append(str(target.get("expr", "")))
        else:
            if target.get("command") not in REDIS_COMMANDS or not target.get("keyName"):
                found.append(f"{title}: bad Redis query {target}")
            texts.append(str(target.get("keyName", "")))
    for transformation in panel.get("transformations", []):
        if transformation.get("id") not in TRANSFORMATIONS or not isinstance(
            transformation.get("options"), dict
        ):
            found.append(f"{title}: unknown transformation {transformation}")
    texts.append(json.dumps(panel.get("fieldConfig", {})))
    texts.append(str(panel.get("title", "")))
    for text in texts:
        for braced, bare in _VARIABLE.findall(text):
            name = braced or bare
            if name not in variables and name not in BUILTIN_VARIABLES:
                found.append(f"{title}: ${name} is not a dashboard variable")
    return found


def _panels(model: DashboardJSON) -> typing.Iterator[dict[str, typing.Any]]:
    for panel in model.get("panels", []):
        yield panel
        yield from panel.get("panels", [])
