"""Small helpers over grafana-foundation-sdk for the meterwatch dashboards.

They keep the dashboard modules declarative (a title, a query, a unit) and make the
generated JSON deterministic: panel ids and query refIds are assigned in layout
order, and the JSON is written with sorted keys, so regenerating from unchanged
code gives byte-identical files.
"""

from __future__ import annotations

import json
import string
import typing

from grafana_foundation_sdk.builders import dashboard as dashboard_builder
from grafana_foundation_sdk.builders import prometheus
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dashboard_model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from deploy.grafana.datasources import PROMETHEUS

DashboardJSON = dict[str, typing.Any]


def prom(
    expr: str,
    legend: str | None = None,
    *,
    instant: bool = False,
    table: bool = False,
    heatmap: bool = False,
) -> prometheus.Dataquery:
    """One PromQL target on the meterwatch Prometheus data source."""
    query = prometheus.Dataquery().expr(expr).datasource(PROMETHEUS)
    if legend is not None:
        query = query.legend_format(legend)
    if instant:
        query = query.instant()
    if table:
        query = query.format(PromQueryFormat.TABLE)
    if heatmap:
        query = query.format(PromQueryFormat.HEATMAP)
    return query


def transformation(
    transform_id: str, options: dict[str, object]
) -> dashboard_model.DataTransformerConfig:
    return dashboard_model.DataTransformerConfig(id_val=transform_id, options=options)


def convert_fields(
    destination: str, names: typing.Iterable[str]
) -> dashboard_model.DataTransformerConfig:
    """Redis returns strings: convert the named fields to ``number`` or ``time``."""
    conversions = [{"targetField": name, "destinationType": destination} for name in names]
    return transformation("convertFieldType", {"conversions": conversions, "fields": {}})


def keep_fields(names: typing.Iterable[str]) -> dashboard_model.DataTransformerConfig:
    return transformation("filterFieldsByName", {"include": {"names": list(names)}})


def sort_by(name: str, *, descending: bool) -> dashboard_model.DataTransformerConfig:
    return transformation("sortBy", {"fields": {}, "sort": [{"field": name, "desc": descending}]})


def organize(
    order: typing.Sequence[str],
    rename: dict[str, str] | None = None,
    exclude: typing.Iterable[str] = (),
) -> dashboard_model.DataTransformerConfig:
    return transformation(
        "organize",
        {
            "excludeByName": {name: True for name in exclude},
            "indexByName": {name: index for index, name in enumerate(order)},
            "renameByName": dict(rename or {}),
        },
    )


def link_to(title: str, url: str) -> dashboard_model.DynamicConfigValue:
    """A field override that turns a cell into a link (e.g. to the meter drill-down)."""
    return dashboard_model.DynamicConfigValue(
        id_val="links", value=[{"title": title, "url": url, "targetBlank": False}]
    )


def to_json(builder: cogbuilder.Builder[dashboard_model.Dashboard]) -> DashboardJSON:
    """Build the dashboard and give every panel an id and every query a refId.

    Ids follow layout order (rows included) so they are stable across runs.
    """
    model: DashboardJSON = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    # Grafana reads templating.list; the SDK leaves templating empty without variables
    model.setdefault("templating", {}).setdefault("list", [])
    next_id = 1
    for panel in _all_panels(model):
        panel["id"] = next_id
        next_id += 1
        for index, target in enumerate(panel.get("targets", [])):
            if not target.get("refId"):
                target["refId"] = string.ascii_uppercase[index]
    return model


def _all_panels(model: DashboardJSON) -> typing.Iterator[dict[str, typing.Any]]:
    for panel in model.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # collapsed rows keep their panels inside


def render(model: DashboardJSON) -> str:
    """The committed form of a dashboard: 2-space JSON, sorted keys, trailing newline."""
    return json.dumps(model, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def builtin_annotations() -> dashboard_builder.AnnotationQuery:
    """Grafana's own 'Annotations & Alerts' entry that every dashboard carries."""
    return (
        dashboard_builder.AnnotationQuery()
        .name("Annotations & Alerts")
        .datasource(dashboard_model.DataSourceRef(type_val="grafana", uid="-- Grafana --"))
        .enable(True)
        .hide(True)
        .icon_color("rgba(0, 211, 255, 1)")
        .type("dashboard")
        .built_in(1)
    )
