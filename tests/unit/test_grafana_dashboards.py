"""Dashboards as code: committed JSON is what the code generates, and it is valid."""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from deploy.grafana.dashboards import DASHBOARDS, METER_UID, fleet_overview, meter_drilldown
from deploy.grafana.datasources import PROMETHEUS_UID, REDIS_UID
from deploy.grafana.generate import GRAFANA_DIR, render_all, stale_files, write_all
from deploy.grafana.validate import problems


def test_regenerating_leaves_the_committed_files_unchanged() -> None:
    assert stale_files() == [], "run `meterwatch grafana generate` and commit the result"


def test_generation_is_deterministic() -> None:
    assert render_all() == render_all()


def test_stale_files_detects_a_hand_edit(tmp_path) -> None:
    write_all(tmp_path)
    assert stale_files(tmp_path) == []
    target = tmp_path / "dashboards" / "fleet-overview.json"
    target.write_text(target.read_text().replace("Fleet overview", "Fleet overvieW"))
    assert stale_files(tmp_path) == ["dashboards/fleet-overview.json"]
    assert write_all(tmp_path) == ["dashboards/fleet-overview.json"]


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_committed_dashboard_is_structurally_valid(name: str) -> None:
    model = json.loads((GRAFANA_DIR / "dashboards" / name).read_text())
    assert problems(model) == []


def _first_panel(model: dict, panel_type: str) -> dict:
    return next(p for p in model["panels"] if p["type"] == panel_type)


@pytest.mark.parametrize(
    ("break_it", "expected"),
    [
        (lambda m: m.update(bogus=1), "not in Grafana's dashboard schema"),
        (lambda m: m.update(uid="x" * 41), "1-40 characters"),
        (lambda m: _first_panel(m, "stat")["gridPos"].update(x=22), "outside the 24-column grid"),
        (lambda m: _first_panel(m, "stat")["gridPos"].update(w="4"), "integer h, w, x, y"),
        (lambda m: m["panels"][2]["gridPos"].update(x=0), "overlaps"),
        (lambda m: m["panels"][2].update(id=m["panels"][1]["id"]), "unique positive integers"),
        (lambda m: _first_panel(m, "stat").update(type="graph"), "unknown panel type"),
        (
            lambda m: _first_panel(m, "stat")["datasource"].update(uid="someone-elses"),
            "not one meterwatch provisions",
        ),
        (lambda m: _first_panel(m, "stat")["targets"][0].update(expr=" "), "has no PromQL"),
        (
            lambda m: _first_panel(m, "timeseries")["targets"][0].update(
                expr="rate(meterwatch_readings_total[$window])"
            ),
            "$window is not a dashboard variable",
        ),
        (
            lambda m: _first_panel(m, "table")["targets"][0].update(command="keys"),
            "bad Redis query",
        ),
        (
            lambda m: _first_panel(m, "table")["transformations"].append(
                {"id": "nope", "options": {}}
            ),
            "unknown transformation",
        ),
    ],
)
def test_the_structural_check_catches_broken_dashboards(break_it, expected: str) -> None:
    model = copy.deepcopy(fleet_overview())
    break_it(model)
    found = problems(model)
    assert any(expected in problem for problem in found), found


def test_refids_must_be_unique() -> None:
    model = copy.deepcopy(fleet_overview())
    panel = next(p for p in model["panels"] if len(p.get("targets", [])) > 1)
    for target in panel["targets"]:
        target["refId"] = "A"
    assert any("refIds must be unique" in p for p in problems(model))


def test_meter_drilldown_reads_the_meter_variable_from_redis() -> None:
    model = meter_drilldown()
    assert [v["name"] for v in model["templating"]["list"]] == ["meter_id"]
    redis_keys = {
        t["keyName"]
        for p in model["panels"]
        for t in p.get("targets", [])
        if p["datasource"]["uid"] == REDIS_UID
    }
    assert redis_keys == {
        "mw:meter:$meter_id",
        "mw:meter:$meter_id:windows",
        "mw:meter:$meter_id:events",
    }
    timelines = [p for p in model["panels"] if p["type"] == "timeseries"]
    plotted = {
        name
        for p in timelines
        for t in p["transformations"]
        if t["id"] == "filterFieldsByName"
        for name in t["options"]["include"]["names"]
    }
    assert {"hybrid", "hst", "ae", "p", "v", "i", "pf"} <= plotted


def test_fleet_tables_link_meters_to_the_drilldown() -> None:
    model = fleet_overview()
    tables = [p for p in model["panels"] if p["type"] == "table"]
    assert len(tables) == 2
    for panel in tables:
        links = [
            prop["value"][0]["url"]
            for override in panel["fieldConfig"]["overrides"]
            for prop in override["properties"]
            if prop["id"] == "links"
        ]
        assert links and all(f"/d/{METER_UID}/" in url and "var-meter_id" in url for url in links)


def test_provisioning_declares_the_uids_the_dashboards_use() -> None:
    provisioning = yaml.safe_load(
        (GRAFANA_DIR / "provisioning" / "datasources" / "meterwatch.yml").read_text()
    )
    declared = {d["uid"]: d["type"] for d in provisioning["datasources"]}
    assert declared == {PROMETHEUS_UID: "prometheus", REDIS_UID: "redis-datasource"}
    used = {
        (p["datasource"]["uid"], p["datasource"]["type"])
        for build in DASHBOARDS.values()
        for p in build()["panels"]
        if p["type"] != "row"
    }
    assert used == set(declared.items())
    dashboards = yaml.safe_load(
        (GRAFANA_DIR / "provisioning" / "dashboards" / "meterwatch.yml").read_text()
    )
    assert dashboards["providers"][0]["type"] == "file"
