"""The three control-room dashboards, as code (grafana-foundation-sdk).

- Fleet overview: throughput, meters reporting, alerts by severity, top cues,
  estimated unbilled kWh, the top-risk meters and the latest alerts (from Redis).
- Meter drill-down: a ``meter_id`` variable; the meter's latest state, its score
  and P/V/I/PF timelines from the recent windows in Redis, and its events.
- Detector health: workers, latency, consumer lag, dead letters, state size, score
  distribution and model versions.

Metric names: stream/schemas/README.md section 6; recording rules:
deploy/prometheus/rules/meterwatch-recording.yml; Redis keys and fields: section 7.
``meterwatch grafana generate`` writes the JSON into ``deploy/grafana/dashboards/``.
"""

from __future__ import annotations

from collections.abc import Callable

from grafana_foundation_sdk.builders import bargauge, heatmap, stat, table, timeseries
from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard as dashboard_builder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dashboard_model

from deploy.grafana.datasources import PROMETHEUS, REDIS
from deploy.grafana.panels import (
    DashboardJSON,
    builtin_annotations,
    convert_fields,
    keep_fields,
    link_to,
    organize,
    prom,
    sort_by,
    to_json,
    transformation,
)
from deploy.grafana.redis_query import RedisQuery

FOLDER_UID = "meterwatch"
FOLDER_TITLE = "meterwatch"
FLEET_UID = "meterwatch-fleet"
METER_UID = "meterwatch-meter"
HEALTH_UID = "meterwatch-health"
WORKER_JOB = "meterwatch-worker"  # the scrape job of deploy/prometheus/prometheus.yml.tmpl

# Fields of the alert/event stream entries (stream/schemas/README.md section 7).
EVENT_COLUMNS = [
    "detected_at",
    "meter_id",
    "gateway_id",
    "severity",
    "status",
    "theft_likely",
    "peak_score",
    "est_unbilled_kwh",
    "cues",
    "event",
]
_EVENT_NUMBERS = ["peak_score", "est_unbilled_kwh", "theft_likely"]
_EVENT_RENAME = {
    "detected_at": "detected at",
    "peak_score": "peak score",
    "est_unbilled_kwh": "est. unbilled kWh",
    "theft_likely": "theft likely",
    "event": "evidence (event JSON)",
}
_METER_LINK = (
    "/d/" + METER_UID + "/meter-drill-down?var-meter_id=${__value.raw}&${__url_time_range}"
)


def _dashboard(title: str, uid: str, description: str) -> dashboard_builder.Dashboard:
    return (
        dashboard_builder.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["meterwatch"])
        .editable()
        .timezone("utc")
        .time("now-6h", "now")
        .refresh("30s")
        .tooltip(dashboard_model.DashboardCursorSync.CROSSHAIR)
        .annotation(builtin_annotations())
        .link(
            dashboard_builder.DashboardLink("meterwatch")
            .type(dashboard_model.DashboardLinkType.DASHBOARDS)
            .tags(["meterwatch"])
            .as_dropdown(True)
            .include_vars(False)
            .keep_time(True)
        )
    )


def _last_value() -> common_builder.ReduceDataOptions:
    """Show a series' latest value (Grafana's default, spelled out so JSON says so)."""
    return common_builder.ReduceDataOptions().calcs(["lastNotNull"]).values(False)


def _stat(title: str, description: str, expr: str, unit: str = "short") -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .with_target(prom(expr, instant=True))
        .unit(unit)
        .graph_mode(common.BigValueGraphMode.NONE)
        .reduce_options(_last_value())
        .height(4)
        .span(4)
    )


def _events_table(title: str, description: str, key: str, count: int) -> table.Panel:
    """Alert/event stream entries as a table; the event JSON is shown in a JSON cell."""
    return (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(REDIS)
        .with_target(RedisQuery().datasource(REDIS).xrevrange(key, count))
        .with_transformation(convert_fields("number", _EVENT_NUMBERS))
        .with_transformation(keep_fields(EVENT_COLUMNS))
        .with_transformation(organize(EVENT_COLUMNS, rename=_EVENT_RENAME))
        .override_by_name(
            "evidence (event JSON)",
            [
                dashboard_model.DynamicConfigValue(
                    id_val="custom.cellOptions", value={"type": "json-view"}
                )
            ],
        )
        .override_by_name("meter_id", [link_to("Meter drill-down", _METER_LINK)])
        .override_by_name(
            "theft likely",
            [
                dashboard_model.DynamicConfigValue(
                    id_val="mappings",
                    value=[
                        {
                            "type": "value",
                            "options": {
                                "0": {"text": "no", "index": 0},
                                "1": {"text": "yes", "color": "red", "index": 1},
                            },
                        }
                    ],
                )
            ],
        )
        .height(10)
        .span(24)
    )


# --------------------------------------------------------------------------- fleet
def fleet_overview() -> DashboardJSON:
    board = _dashboard(
        "Fleet overview",
        FLEET_UID,
        "meterwatch: fleet throughput, theft alerts, value at risk and the top-risk meters.",
    )
    board = (
        board.with_row(dashboard_builder.Row("Fleet now"))
        .with_panel(
            _stat(
                "Readings/s",
                "Readings accepted per second, whole fleet (recording rule).",
                "meterwatch:readings:rate1m",
                "reqps",
            )
        )
        .with_panel(
            _stat(
                "Meters reporting",
                "Meters with a reading in the last window, summed over workers.",
                "meterwatch:meters_reporting:sum",
            )
        )
        .with_panel(
            _stat(
                "Comms-gap share",
                "Share of scored windows with a comms gap (data quality, never theft).",
                "meterwatch:comms_gap_windows:ratio_rate5m",
                "percentunit",
            )
        )
        .with_panel(
            _stat(
                "Open events",
                "Anomaly events currently open (theft-likely or not).",
                "sum(meterwatch_open_events)",
            )
        )
        .with_panel(
            _stat(
                "Alerts in range",
                "Theft alerts raised in the dashboard's time range, all cues.",
                "sum(increase(meterwatch_alerts_total[$__range]))",
            )
        )
        .with_panel(
            _stat(
                "Est. unbilled kWh in range",
                "Estimated unbilled energy (baseline minus reported) of the alerts raised in "
                "the time range.",
                "sum(increase(meterwatch_est_unbilled_kwh_total[$__range]))",
                "kwatth",
            )
        )
        .with_row(dashboard_builder.Row("Throughput"))
        .with_panel(
            timeseries.Panel()
            .title("Readings/s and meters reporting")
            .description("Fleet readings per second (left) and meters reporting (right).")
            .datasource(PROMETHEUS)
            .with_target(prom("meterwatch:readings:rate1m", "readings/s"))
            .with_target(prom("meterwatch:meters_reporting:sum", "meters reporting"))
            .override_by_name(
                "meters reporting",
                [
                    dashboard_model.DynamicConfigValue(
                        id_val="custom.axisPlacement", value="right"
                    ),
                    dashboard_model.DynamicConfigValue(id_val="unit", value="short"),
                ],
            )
            .unit("reqps")
            .height(8)
            .span(12)
        )
        .with_panel(
            timeseries.Panel()
            .title("Comms-gap share over time")
            .description("Share of scored windows that had a comms gap, 5-minute rate.")
            .datasource(PROMETHEUS)
            .with_target(prom("meterwatch:comms_gap_windows:ratio_rate5m", "comms-gap share"))
            .unit("percentunit")
            .min(0)
            .height(8)
            .span(12)
        )
        .with_row(dashboard_builder.Row("Alerts"))
        .with_panel(
            timeseries.Panel()
            .title("Alerts by severity")
            .description("Theft alerts per hour by severity (5-minute rate, recording rule).")
            .datasource(PROMETHEUS)
            .with_target(
                prom("sum by (severity) (meterwatch:alerts:rate5m) * 3600", "{{severity}}")
            )
            .unit("short")
            .draw_style(common.GraphDrawStyle.BARS)
            .fill_opacity(80)
            .stacking(common_builder.StackingConfig().mode(common.StackingMode.NORMAL))
            .height(8)
            .span(12)
        )
        .with_panel(
            bargauge.Panel()
            .title("Top cues")
            .description("The ten rule cues behind most alerts in the time range.")
            .datasource(PROMETHEUS)
            .with_target(
                prom(
                    "topk(10, sum by (cue) (increase(meterwatch_alerts_total[$__range])))",
                    "{{cue}}",
                    instant=True,
                )
            )
            .reduce_options(_last_value())
            .orientation(common.VizOrientation.HORIZONTAL)
            .display_mode(common.BarGaugeDisplayMode.BASIC)
            .unit("short")
            .height(8)
            .span(12)
        )
        .with_panel(
            timeseries.Panel()
            .title("Estimated unbilled kWh by severity")
            .description(
                "Estimated unbilled energy of raised alerts over the last hour, by severity "
                "(recording rule)."
            )
            .datasource(PROMETHEUS)
            .with_target(prom("meterwatch:est_unbilled_kwh:increase1h", "{{severity}}"))
            .unit("kwatth")
            .stacking(common_builder.StackingConfig().mode(common.StackingMode.NORMAL))
            .fill_opacity(30)
            .height(8)
            .span(24)
        )
        .with_row(dashboard_builder.Row("Cases (Redis)"))
        .with_panel(
            table.Panel()
            .title("Top-risk meters now")
            .description(
                "The 20 highest risks of the ranking in Redis (sorted set mw:risk). Click a "
                "meter for its drill-down."
            )
            .datasource(REDIS)
            .with_target(RedisQuery().datasource(REDIS).zrange_by_index("mw:risk", -20, -1))
            # zrange gives one column per meter: turn them into rows of (meter, risk)
            .with_transformation(
                transformation("reduce", {"mode": "seriesToRows", "reducers": ["lastNotNull"]})
            )
            .with_transformation(
                organize(["Field", "Last *"], rename={"Field": "meter_id", "Last *": "risk"})
            )
            .with_transformation(sort_by("risk", descending=True))
            .override_by_name("meter_id", [link_to("Meter drill-down", _METER_LINK)])
            .height(10)
            .span(8)
        )
        .with_panel(
            _events_table(
                "Latest alerts with their evidence",
                "The 50 newest alert raises/updates/resolves (Redis stream mw:alerts); the "
                "evidence column holds the event JSON with each cue's evidence numbers.",
                "mw:alerts",
                50,
            ).span(16)
        )
    )
    return to_json(board)


# --------------------------------------------------------------------------- meter
def _window_panel(title: str, description: str, fields: list[str], unit: str) -> timeseries.Panel:
    """A timeline of some fields of the meter's recent windows (Redis stream)."""
    return (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(REDIS)
        .with_target(RedisQuery().datasource(REDIS).xrevrange("mw:meter:$meter_id:windows", 1440))
        .with_transformation(keep_fields(["ts_ms", *fields]))
        .with_transformation(convert_fields("number", ["ts_ms", *fields]))
        .with_transformation(convert_fields("time", ["ts_ms"]))
        .with_transformation(sort_by("ts_ms", descending=False))
        .unit(unit)
        .height(8)
        .span(12)
    )


def meter_drilldown() -> DashboardJSON:
    board = _dashboard(
        "Meter drill-down",
        METER_UID,
        "meterwatch: one meter's latest state, score and P/V/I/PF timelines of its recent "
        "windows, and its events (all from Redis).",
    ).with_variable(
        dashboard_builder.TextBoxVariable("meter_id")
        .label("Meter")
        .description("Meter id, e.g. MTR-000001 (the fleet overview links here).")
        .default_value("MTR-000001")
    )
    board = (
        board.with_row(dashboard_builder.Row("Meter $meter_id"))
        .with_panel(
            table.Panel()
            .title("Latest state")
            .description(
                "The meter's state hash (mw:meter:$meter_id): risk, gateway, last reading."
            )
            .datasource(REDIS)
            .with_target(RedisQuery().datasource(REDIS).hgetall("mw:meter:$meter_id"))
            .height(5)
            .span(24)
        )
        .with_panel(
            _window_panel(
                "Scores",
                "Hybrid, Half-Space Trees and autoencoder scores (0-100) of each window.",
                ["hybrid", "hst", "ae"],
                "short",
            )
            .min(0)
            .max(100)
            .span(24)
        )
        .with_panel(_window_panel("Active power P", "Window mean active power.", ["p"], "watt"))
        .with_panel(_window_panel("Voltage V", "Window mean voltage.", ["v"], "volt"))
        .with_panel(_window_panel("Current I", "Window mean current.", ["i"], "amp"))
        .with_panel(
            _window_panel("Power factor PF", "Window mean power factor.", ["pf"], "none")
            .min(-1)
            .max(1)
        )
        .with_panel(
            _events_table(
                "Events of this meter",
                "Every event update of this meter (Redis stream mw:meter:$meter_id:events).",
                "mw:meter:$meter_id:events",
                100,
            )
        )
    )
    return to_json(board)


# --------------------------------------------------------------------------- health
def detector_health() -> DashboardJSON:
    up = f'up{{job="{WORKER_JOB}"}}'
    board = _dashboard(
        "Detector health",
        HEALTH_UID,
        "meterwatch: workers, latency, Kafka lag, dead letters, state size, score "
        "distribution and model versions.",
    )
    board = (
        board.with_row(dashboard_builder.Row("Workers and models"))
        .with_panel(_stat("Workers up", "Workers Prometheus can scrape.", f"sum({up})"))
        .with_panel(
            _stat(
                "Autoencoder loaded",
                "1 on every worker when the frozen autoencoder artifact loaded; 0 means the "
                "MeterwatchModelArtifactMissing alert.",
                "min(meterwatch_model_artifact_loaded)",
            ).mappings(
                [
                    dashboard_model.ValueMap(
                        options={
                            "0": dashboard_model.ValueMappingResult(text="MISSING", color="red"),
                            "1": dashboard_model.ValueMappingResult(text="loaded", color="green"),
                        }
                    )
                ]
            )
        )
        .with_panel(
            _stat(
                "Meters tracked",
                "Meters with state in the engines, summed over workers.",
                "meterwatch:meters_tracked:sum",
            )
        )
        .with_panel(
            table.Panel()
            .title("Model versions")
            .description(
                "Detector and model version each worker runs (info metric meterwatch_model)."
            )
            .datasource(PROMETHEUS)
            .with_target(
                prom(
                    "count by (detector, model_version) (meterwatch_model_info)",
                    instant=True,
                    table=True,
                )
            )
            .with_transformation(
                organize(
                    ["detector", "model_version", "Value"],
                    rename={"Value": "workers"},
                    exclude=["Time"],
                )
            )
            .height(4)
            .span(12)
        )
        .with_row(dashboard_builder.Row("Latency"))
        .with_panel(
            timeseries.Panel()
            .title("Scoring latency")
            .description("Reading event time to window scored: p50, p95, p99 (recording rules).")
            .datasource(PROMETHEUS)
            .with_target(prom("meterwatch:scoring_latency_seconds:p50_5m", "p50"))
            .with_target(prom("meterwatch:scoring_latency_seconds:p95_5m", "p95"))
            .with_target(prom("meterwatch:scoring_latency_seconds:p99_5m", "p99"))
            .unit("s")
            .height(8)
            .span(12)
        )
        .with_panel(
            timeseries.Panel()
            .title("Alert latency and batch time")
            .description(
                "p95 reading-to-alert-in-Redis latency and p95 micro-batch processing time."
            )
            .datasource(PROMETHEUS)
            .with_target(prom("meterwatch:alert_latency_seconds:p95_5m", "alert latency p95"))
            .with_target(prom("meterwatch:batch_seconds:p95_5m", "batch time p95"))
            .unit("s")
            .height(8)
            .span(12)
        )
        .with_panel(
            timeseries.Panel()
            .title("Engine CPU by stage")
            .description(
                "Cores the detection engine uses, by stage (recording rule): admit (validate, "
                "order), pane_rounds (reading facts, windows, baselines, rules), models "
                "(features, Half-Space Trees, autoencoder), events. Where to look when the "
                "workers fall behind."
            )
            .datasource(PROMETHEUS)
            .with_target(prom("meterwatch:engine_seconds:rate5m", "{{stage}}"))
            .unit("none")
            .stacking(common_builder.StackingConfig().mode(common.StackingMode.NORMAL))
            .fill_opacity(30)
            .height(8)
            .span(24)
        )
        .with_row(dashboard_builder.Row("Kafka"))
        .with_panel(
            timeseries.Panel()
            .title("Consumer lag by partition")
            .description("Messages behind the head of the readings topic, per partition.")
            .datasource(PROMETHEUS)
            .with_target(
                prom(
                    "sum by (partition) (meterwatch_consumer_lag_messages)",
                    "partition {{partition}}",
                )
            )
            .unit("short")
            .height(8)
            .span(12)
        )
        .with_panel(
            timeseries.Panel()
            .title("Messages/s by form")
            .description("Kafka messages consumed per second: single readings or gateway batches.")
            .datasource(PROMETHEUS)
            .with_target(
                prom(
                    "sum by (form) (rate(meterwatch_messages_total[$__rate_interval]))", "{{form}}"
                )
            )
            .unit("short")
            .height(8)
            .span(12)
        )
        .with_row(dashboard_builder.Row("Dead letters and data quality"))
        .with_panel(
            timeseries.Panel()
            .title("Dead letters by reason")
            .description("Readings rejected to the dead-letter topic per second, by reason code.")
            .datasource(PROMETHEUS)
            .with_target(prom("meterwatch:rejected:rate5m", "{{reason}}"))
            .unit("short")
            .stacking(common_builder.StackingConfig().mode(common.StackingMode.NORMAL))
            .fill_opacity(40)
            .height(8)
            .span(12)
        )
        .with_panel(
            timeseries.Panel()
            .title("Dead-letter share and duplicates")
            .description(
                "Rejected share of incoming readings (left) and duplicates dropped/s (right)."
            )
            .datasource(PROMETHEUS)
            .with_target(prom("meterwatch:dead_letter:ratio_rate5m", "dead-letter share"))
            .with_target(
                prom("sum(rate(meterwatch_duplicates_total[$__rate_interval]))", "duplicates/s")
            )
            .override_by_name(
                "duplicates/s",
                [
                    dashboard_model.DynamicConfigValue(
                        id_val="custom.axisPlacement", value="right"
                    ),
                    dashboard_model.DynamicConfigValue(id_val="unit", value="short"),
                ],
            )
            .unit("percentunit")
            .height(8)
            .span(12)
        )
        .with_panel(
            timeseries.Panel()
            .title("Gateways seen and silent")
            .description("Gateways that have sent readings, and those silent past the tolerance.")
            .datasource(PROMETHEUS)
            .with_target(prom("sum(meterwatch_gateways_seen)", "seen"))
            .with_target(prom("sum(meterwatch_gateways_silent)", "silent"))
            .unit("short")
            .height(8)
            .span(12)
        )
        .with_panel(
            timeseries.Panel()
            .title("Sink retries by sink")
            .description("Retries per second writing to Redis, Alertmanager and Kafka.")
            .datasource(PROMETHEUS)
            .with_target(
                prom(
                    "sum by (sink) (rate(meterwatch_sink_retries_total[$__rate_interval]))",
                    "{{sink}}",
                )
            )
            .unit("short")
            .height(8)
            .span(12)
        )
        .with_row(dashboard_builder.Row("State and scores"))
        .with_panel(
            timeseries.Panel()
            .title("Engine state size")
            .description(
                "Engine state in memory (left) and per tracked meter (right; budget: a few KB)."
            )
            .datasource(PROMETHEUS)
            .with_target(prom("meterwatch:state_bytes:sum", "state"))
            .with_target(prom("meterwatch:state_bytes_per_meter:ratio", "per meter"))
            .override_by_name(
                "per meter",
                [dashboard_model.DynamicConfigValue(id_val="custom.axisPlacement", value="right")],
            )
            .unit("bytes")
            .height(8)
            .span(12)
        )
        .with_panel(
            timeseries.Panel()
            .title("Windows scored/s")
            .description("Windows scored per second, and those with a comms gap.")
            .datasource(PROMETHEUS)
            .with_target(
                prom("sum(rate(meterwatch_windows_scored_total[$__rate_interval]))", "scored")
            )
            .with_target(
                prom(
                    "sum(rate(meterwatch_comms_gap_windows_total[$__rate_interval]))",
                    "with comms gap",
                )
            )
            .unit("short")
            .height(8)
            .span(12)
        )
        .with_panel(
            heatmap.Panel()
            .title("Hybrid score distribution")
            # the buckets come from Prometheus already (format heatmap): do not re-bucket
            .calculate(False)
            .description("Windows per hybrid-score bucket (0-100) over time.")
            .datasource(PROMETHEUS)
            .with_target(
                prom(
                    'sum by (le) (increase(meterwatch_window_score_bucket{detector="hybrid"}'
                    "[$__rate_interval]))",
                    "{{le}}",
                    heatmap=True,
                )
            )
            .height(8)
            .span(12)
        )
        .with_panel(
            timeseries.Panel()
            .title("p95 score by detector")
            .description("95th percentile window score of each detector (hst, ae, hybrid).")
            .datasource(PROMETHEUS)
            .with_target(
                prom(
                    "histogram_quantile(0.95, sum by (detector, le) "
                    "(rate(meterwatch_window_score_bucket[$__rate_interval])))",
                    "{{detector}}",
                )
            )
            .unit("short")
            .min(0)
            .max(100)
            .height(8)
            .span(12)
        )
    )
    return to_json(board)


DASHBOARDS: dict[str, Callable[[], DashboardJSON]] = {
    "fleet-overview.json": fleet_overview,
    "meter-drilldown.json": meter_drilldown,
    "detector-health.json": detector_health,
}
