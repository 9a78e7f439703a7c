"""Publish the data sources, the folder and the dashboards to a Grafana server.

Idempotent: each object is read first (by its fixed uid) and written only when it
is missing or differs, so a second run changes nothing and says so. Uses the
grafana-api client; endpoints (Grafana HTTP API, Grafana >= 9):

- data sources: GET /api/datasources/uid/:uid, POST /api/datasources,
  PUT /api/datasources/uid/:uid
- folder: GET /api/folders/:uid, POST /api/folders, PUT /api/folders/:uid
- dashboards: GET /api/dashboards/uid/:uid, POST /api/dashboards/db
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from urllib.parse import urlsplit

from grafana_api.grafana_api import GrafanaClientError
from grafana_api.grafana_face import GrafanaFace

from deploy.grafana.datasources import DataSourceSpec
from deploy.grafana.panels import DashboardJSON

CREATED, UPDATED, UNCHANGED = "created", "updated", "unchanged"

# keys Grafana manages itself on a stored dashboard: never a reason to update
_SERVER_KEYS = ("id", "version")


@dataclass(frozen=True)
class Change:
    kind: str  # "datasource" | "folder" | "dashboard"
    name: str
    action: str  # created | updated | unchanged


def client_for(url: str, token: str, timeout_s: float = 10.0) -> GrafanaFace:
    """A grafana-api client for a base URL such as ``https://grafana.example:3000/sub``."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) Grafana URL: {url!r}")
    prefix = parts.path.strip("/")
    return GrafanaFace(
        auth=token,
        host=parts.hostname,
        port=parts.port,
        url_path_prefix=f"{prefix}/" if prefix else "",
        protocol=parts.scheme,
        timeout=timeout_s,
    )


def _missing(error: GrafanaClientError) -> bool:
    return bool(error.status_code == 404)


class GrafanaPublisher:
    """Creates or updates meterwatch's Grafana objects; ``publish()`` reports each."""

    def __init__(
        self,
        client: GrafanaFace,
        datasources: typing.Sequence[DataSourceSpec],
        dashboards: typing.Mapping[str, DashboardJSON],
        folder_uid: str,
        folder_title: str,
    ) -> None:
        self._client = client
        self._datasources = list(datasources)
        self._dashboards = dict(dashboards)
        self._folder_uid = folder_uid
        self._folder_title = folder_title

    def publish(self) -> list[Change]:
        changes = [self._datasource(spec) for spec in self._datasources]
        changes.append(self._folder())
        changes.extend(self._dashboard(model) for model in self._dashboards.values())
        return changes

    def _datasource(self, spec: DataSourceSpec) -> Change:
        body = spec.api_body()
        try:
            current = self._client.api.GET(f"/datasources/uid/{spec.uid}")
        except GrafanaClientError as error:
            if not _missing(error):
                raise
            self._client.datasource.create_datasource(body)
            return Change("datasource", spec.name, CREATED)
        if _datasource_matches(current, body):
            return Change("datasource", spec.name, UNCHANGED)
        self._client.api.PUT(f"/datasources/uid/{spec.uid}", json=body)
        return Change("datasource", spec.name, UPDATED)

    def _folder(self) -> Change:
        try:
            current = self._client.folder.get_folder(self._folder_uid)
        except GrafanaClientError as error:
            if not _missing(error):
                raise
            self._client.folder.create_folder(self._folder_title, uid=self._folder_uid)
            return Change("folder", self._folder_title, CREATED)
        if current.get("title") == self._folder_title:
            return Change("folder", self._folder_title, UNCHANGED)
        self._client.folder.update_folder(
            self._folder_uid, self._folder_title, version=current.get("version"), overwrite=True
        )
        return Change("folder", self._folder_title, UPDATED)

    def _dashboard(self, model: DashboardJSON) -> Change:
        title = str(model["title"])
        try:
            current = self._client.dashboard.get_dashboard(model["uid"])
        except GrafanaClientError as error:
            if not _missing(error):
                raise
            self._save_dashboard(model, overwrite=False)
            return Change("dashboard", title, CREATED)
        stored = _without_server_keys(current.get("dashboard", {}))
        in_folder = current.get("meta", {}).get("folderUid") == self._folder_uid
        if stored == _without_server_keys(model) and in_folder:
            return Change("dashboard", title, UNCHANGED)
        self._save_dashboard(model, overwrite=True)
        return Change("dashboard", title, UPDATED)

    def _save_dashboard(self, model: DashboardJSON, *, overwrite: bool) -> None:
        self._client.dashboard.update_dashboard(
            {
                # id null + uid: Grafana creates, or with overwrite replaces, that uid
                "dashboard": {**model, "id": None},
                "folderUid": self._folder_uid,
                "message": "meterwatch grafana publish",
                "overwrite": overwrite,
            }
        )


def _without_server_keys(model: DashboardJSON) -> DashboardJSON:
    return {key: value for key, value in model.items() if key not in _SERVER_KEYS}


def _datasource_matches(current: dict[str, typing.Any], body: dict[str, object]) -> bool:
    for key, wanted in body.items():
        if key == "jsonData":
            stored = current.get("jsonData") or {}
            if any(stored.get(k) != v for k, v in typing.cast(dict[str, object], wanted).items()):
                return False
        elif current.get(key) != wanted:
            return False
    return True
