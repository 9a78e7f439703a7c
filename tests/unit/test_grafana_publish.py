"""`meterwatch grafana publish` against a local stand-in for Grafana's HTTP API.

No Grafana server runs here. The stand-in (a threaded HTTP server in this test)
accepts only what Grafana's HTTP API documentation describes for the endpoints
publish uses, and answers in the documented shapes:

- auth: ``Authorization: Bearer <token>``, else 401 ``{"message": "Unauthorized"}``;
- data sources: ``GET /api/datasources/uid/:uid`` (404 when missing),
  ``POST /api/datasources`` (name, type, access required; 409 on a taken name or uid),
  ``PUT /api/datasources/uid/:uid``;
- folders: ``GET /api/folders/:uid``, ``POST /api/folders`` (title required, uid
  optional; 409 when the uid exists), ``PUT /api/folders/:uid`` (title; version or
  overwrite);
- dashboards: ``GET /api/dashboards/uid/:uid`` -> ``{"dashboard", "meta"}``,
  ``POST /api/dashboards/db`` with ``dashboard`` (``id`` null for a new one),
  ``folderUid``, ``message``, ``overwrite``; 412 when the uid exists and overwrite
  is false.

Any other method, path, header or body field is answered 400 and recorded as a
violation, which fails the test.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from typer.testing import CliRunner

from deploy.grafana.cli import grafana_app
from deploy.grafana.dashboards import DASHBOARDS, FOLDER_TITLE, FOLDER_UID
from deploy.grafana.datasources import PROMETHEUS_UID, REDIS_UID, datasource_specs
from deploy.grafana.publish import CREATED, UNCHANGED, UPDATED, GrafanaPublisher, client_for

TOKEN = "glsa_test_token_0123456789"  # noqa: S105 (a test value, not a secret)
DATASOURCE_FIELDS = {
    "name", "type", "access", "url", "uid", "isDefault", "jsonData", "secureJsonData",
    "basicAuth", "basicAuthUser", "user", "database", "withCredentials", "orgId",
}  # fmt: skip
DASHBOARD_DB_FIELDS = {"dashboard", "folderUid", "folderId", "message", "overwrite"}


@dataclass
class FakeGrafana:
    """State and request log of the stand-in."""

    prefix: str = ""
    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    next_id: int = 1
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def writes(self) -> list[tuple[str, str]]:
        return [(m, p) for m, p in self.requests if m != "GET"]

    # --- one request -> (status, body) ---------------------------------------------
    def handle(self, method: str, path: str, headers: Any, body: Any) -> tuple[int, Any]:
        with self.lock:
            self.requests.append((method, path))
            if headers.get("Authorization") != f"Bearer {TOKEN}":
                return 401, {"message": "Unauthorized"}
            if method in ("POST", "PUT") and "application/json" not in headers.get(
                "Content-Type", ""
            ):
                return self._violation(f"{method} {path} without a JSON content type")
            if not path.startswith(self.prefix + "/api/"):
                return self._violation(f"{method} {path}: not under {self.prefix}/api/")
            route = path[len(self.prefix) + len("/api") :].strip("/").split("/")
            return self._route(method, route, body)

    def _violation(self, what: str) -> tuple[int, Any]:
        self.violations.append(what)
        return 400, {"message": f"bad request: {what}"}

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id

    def _route(self, method: str, route: list[str], body: Any) -> tuple[int, Any]:
        match method, route:
            case "GET", ["datasources", "uid", uid]:
                if uid not in self.datasources:
                    return 404, {"message": "Data source not found"}
                return 200, self.datasources[uid]
            case "POST", ["datasources"]:
                return self._create_datasource(body)
            case "PUT", ["datasources", "uid", uid]:
                return self._update_datasource(uid, body)
            case "GET", ["folders", uid]:
                if uid not in self.folders:
                    return 404, {"message": "folder not found", "status": "not-found"}
                return 200, self.folders[uid]
            case "POST", ["folders"]:
                return self._create_folder(body)
            case "PUT", ["folders", uid]:
                return self._update_folder(uid, body)
            case "GET", ["dashboards", "uid", uid]:
                if uid not in self.dashboards:
                    return 404, {"message": "Dashboard not found"}
                return 200, copy.deepcopy(self.dashboards[uid])
            case "POST", ["dashboards", "db"]:
                return self._save_dashboard(body)
        return self._violation(
            f"{method} /api/{'/'.join(route)} is not an endpoint publish may use"
        )

    def _create_datasource(self, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict) or not {"name", "type", "access"} <= set(body):
            return self._violation(f"POST /api/datasources needs name, type, access: {body}")
        if set(body) - DATASOURCE_FIELDS:
            return self._violation(
                f"undocumented data source fields {set(body) - DATASOURCE_FIELDS}"
            )
        if body.get("uid") in self.datasources or any(
            ds["name"] == body["name"] for ds in self.datasources.values()
        ):
            return 409, {"message": "data source with the same name or uid already exists"}
        stored = {**body, "id": self._id(), "orgId": 1, "readOnly": False}
        self.datasources[body["uid"]] = stored
        return 200, {
            "datasource": stored,
            "id": stored["id"],
            "message": "Datasource added",
            "name": body["name"],
        }

    def _update_datasource(self, uid: str, body: Any) -> tuple[int, Any]:
        if uid not in self.datasources:
            return 404, {"message": "Data source not found"}
        if not isinstance(body, dict) or not {"name", "type", "access"} <= set(body):
            return self._violation(f"PUT /api/datasources/uid needs name, type, access: {body}")
        if set(body) - DATASOURCE_FIELDS:
            return self._violation(
                f"undocumented data source fields {set(body) - DATASOURCE_FIELDS}"
            )
        stored = {**body, "id": self.datasources[uid]["id"], "orgId": 1, "uid": uid}
        self.datasources[uid] = stored
        return 200, {
            "datasource": stored,
            "id": stored["id"],
            "message": "Datasource updated",
            "name": body["name"],
        }

    def _create_folder(self, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("title"), str):
            return self._violation(f"POST /api/folders needs a title: {body}")
        if set(body) - {"uid", "title", "parentUid", "description"}:
            return self._violation(f"undocumented folder fields in {body}")
        if body.get("uid") in self.folders:
            return 409, {"message": "a folder with the same uid already exists"}
        uid = body.get("uid") or f"f{self._id()}"
        folder = {"id": self._id(), "uid": uid, "title": body["title"], "version": 1}
        self.folders[uid] = folder
        return 200, folder

    def _update_folder(self, uid: str, body: Any) -> tuple[int, Any]:
        if uid not in self.folders:
            return 404, {"message": "folder not found"}
        if not isinstance(body, dict) or "title" not in body:
            return self._violation(f"PUT /api/folders needs a title: {body}")
        if "version" not in body and not body.get("overwrite"):
            return self._violation("PUT /api/folders needs version or overwrite")
        folder = self.folders[uid]
        folder.update(title=body["title"], version=folder["version"] + 1)
        return 200, folder

    def _save_dashboard(self, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("dashboard"), dict):
            return self._violation(f"POST /api/dashboards/db needs a dashboard object: {body}")
        if set(body) - DASHBOARD_DB_FIELDS:
            return self._violation(f"undocumented fields {set(body) - DASHBOARD_DB_FIELDS}")
        if not isinstance(body.get("overwrite", False), bool):
            return self._violation("overwrite must be a boolean")
        model = body["dashboard"]
        if "id" in model and model["id"] is not None:
            return self._violation("a dashboard saved by uid must have id null")
        if not model.get("title") or not model.get("uid"):
            return self._violation("dashboard needs title and uid")
        folder_uid = body.get("folderUid")
        if folder_uid not in self.folders:
            return 400, {"message": "folder not found"}
        uid = model["uid"]
        existing = self.dashboards.get(uid)
        if existing and not body.get("overwrite"):
            return 412, {
                "message": "A dashboard with the same uid already exists",
                "status": "name-exists",
            }
        version = existing["dashboard"]["version"] + 1 if existing else 1
        dashboard_id = existing["dashboard"]["id"] if existing else self._id()
        self.dashboards[uid] = {
            "dashboard": {**model, "id": dashboard_id, "version": version},
            "meta": {"folderUid": folder_uid, "folderTitle": self.folders[folder_uid]["title"]},
        }
        return 200, {
            "id": dashboard_id,
            "uid": uid,
            "url": f"/d/{uid}/slug",
            "status": "success",
            "version": version,
            "slug": "slug",
        }


@pytest.fixture
def grafana(request: pytest.FixtureRequest) -> Iterator[FakeGrafana]:
    fake = FakeGrafana(prefix=getattr(request, "param", ""))

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                status, answer = fake._violation(f"unparsable JSON body {raw[:80]!r}")
            else:
                status, answer = fake.handle(self.command, self.path, self.headers, body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = _answer  # noqa: N815 (http.server API)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}{fake.prefix}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _publisher(grafana: FakeGrafana, token: str = TOKEN) -> GrafanaPublisher:
    return GrafanaPublisher(
        client_for(grafana.url, token, timeout_s=5),
        datasource_specs("http://127.0.0.1:19090", "redis://127.0.0.1:16379"),
        {name: build() for name, build in DASHBOARDS.items()},
        FOLDER_UID,
        FOLDER_TITLE,
    )


def _actions(changes: list[Any]) -> dict[tuple[str, str], str]:
    return {(change.kind, change.name): change.action for change in changes}


def test_first_publish_creates_everything_in_the_folder(grafana: FakeGrafana) -> None:
    changes = _publisher(grafana).publish()
    assert grafana.violations == []
    assert [c.action for c in changes] == [CREATED] * 6
    assert set(grafana.datasources) == {PROMETHEUS_UID, REDIS_UID}
    assert grafana.datasources[REDIS_UID]["type"] == "redis-datasource"
    assert grafana.folders[FOLDER_UID]["title"] == FOLDER_TITLE
    for build in DASHBOARDS.values():
        model = build()
        stored = grafana.dashboards[model["uid"]]
        assert stored["meta"]["folderUid"] == FOLDER_UID
        assert {k: v for k, v in stored["dashboard"].items() if k not in ("id", "version")} == model


def test_second_publish_changes_nothing_and_writes_nothing(grafana: FakeGrafana) -> None:
    _publisher(grafana).publish()
    writes_before = len(grafana.writes())
    changes = _publisher(grafana).publish()
    assert [c.action for c in changes] == [UNCHANGED] * 6
    assert len(grafana.writes()) == writes_before
    assert grafana.violations == []


def test_publish_updates_only_what_drifted(grafana: FakeGrafana) -> None:
    _publisher(grafana).publish()
    grafana.datasources[PROMETHEUS_UID]["url"] = "http://elsewhere:9090"
    grafana.dashboards["meterwatch-health"]["dashboard"]["title"] = "edited by hand"
    grafana.dashboards["meterwatch-fleet"]["meta"]["folderUid"] = "general"
    grafana.folders[FOLDER_UID]["title"] = "renamed"
    actions = _actions(_publisher(grafana).publish())
    assert grafana.violations == []
    assert actions == {
        ("datasource", "meterwatch Prometheus"): UPDATED,
        ("datasource", "meterwatch Redis"): UNCHANGED,
        ("folder", FOLDER_TITLE): UPDATED,
        ("dashboard", "Fleet overview"): UPDATED,
        ("dashboard", "Meter drill-down"): UNCHANGED,
        ("dashboard", "Detector health"): UPDATED,
    }
    assert grafana.datasources[PROMETHEUS_UID]["url"] == "http://127.0.0.1:19090"
    assert grafana.dashboards["meterwatch-health"]["dashboard"]["title"] == "Detector health"
    assert grafana.dashboards["meterwatch-health"]["dashboard"]["version"] == 2
    assert grafana.folders[FOLDER_UID]["title"] == FOLDER_TITLE


@pytest.mark.parametrize("grafana", ["/grafana"], indirect=True)
def test_publish_under_a_sub_path(grafana: FakeGrafana) -> None:
    changes = _publisher(grafana).publish()
    assert grafana.violations == []
    assert all(path.startswith("/grafana/api/") for _, path in grafana.requests)
    assert [c.action for c in changes] == [CREATED] * 6


def test_cli_publish_reports_what_changed(grafana: FakeGrafana, monkeypatch) -> None:
    monkeypatch.setenv("METERWATCH_PROMETHEUS_URL", "http://prom.example:9090")
    runner = CliRunner()
    first = runner.invoke(grafana_app, ["publish", "--url", grafana.url, "--token", TOKEN])
    assert first.exit_code == 0, first.output
    assert "6 changed, 0 unchanged" in first.output
    assert grafana.datasources[PROMETHEUS_UID]["url"] == "http://prom.example:9090"
    second = runner.invoke(grafana_app, ["publish", "--url", grafana.url, "--token", TOKEN])
    assert second.exit_code == 0, second.output
    assert "0 changed, 6 unchanged" in second.output
    assert grafana.violations == []


def test_cli_publish_with_a_wrong_token_fails_plainly(grafana: FakeGrafana) -> None:
    result = CliRunner().invoke(grafana_app, ["publish", "--url", grafana.url, "--token", "wrong"])
    assert result.exit_code == 2
    assert "HTTP 401" in result.output
    assert grafana.writes() == []


def test_cli_publish_without_a_server_fails_plainly() -> None:
    result = CliRunner().invoke(
        grafana_app, ["publish", "--url", "http://127.0.0.1:9", "--token", TOKEN, "--timeout", "2"]
    )
    assert result.exit_code == 2
    assert "cannot reach Grafana" in result.output


def test_a_url_that_is_not_http_is_refused() -> None:
    with pytest.raises(ValueError, match="not an http"):
        client_for("ftp://grafana.example", TOKEN)
    result = CliRunner().invoke(grafana_app, ["publish", "--url", "grafana:3000", "--token", TOKEN])
    assert result.exit_code != 0
