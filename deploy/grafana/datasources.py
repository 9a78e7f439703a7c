"""The two Grafana data sources the dashboards use, defined once.

The same definitions feed the provisioning file (``provisioning/datasources``,
written by ``meterwatch grafana generate``) and ``meterwatch grafana publish``
(the HTTP API bodies), so the UIDs the dashboards reference cannot drift.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from grafana_foundation_sdk.models.dashboard import DataSourceRef

PROMETHEUS_UID = "meterwatch-prometheus"
REDIS_UID = "meterwatch-redis"

PROMETHEUS = DataSourceRef(type_val="prometheus", uid=PROMETHEUS_UID)
REDIS = DataSourceRef(type_val="redis-datasource", uid=REDIS_UID)


@dataclass(frozen=True)
class DataSourceSpec:
    """One data source as Grafana's data source API and provisioning describe it."""

    uid: str
    name: str
    type: str
    url: str
    is_default: bool = False
    json_data: dict[str, object] = field(default_factory=dict)

    def api_body(self) -> dict[str, object]:
        """Body of ``POST /api/datasources`` and ``PUT /api/datasources/uid/:uid``."""
        return {
            "uid": self.uid,
            "name": self.name,
            "type": self.type,
            "access": "proxy",
            "url": self.url,
            "isDefault": self.is_default,
            "jsonData": dict(self.json_data),
        }

    def provisioning_entry(self) -> dict[str, object]:
        """One item of ``datasources:`` in a provisioning file."""
        return {
            "name": self.name,
            "type": self.type,
            "uid": self.uid,
            "access": "proxy",
            "url": self.url,
            "isDefault": self.is_default,
            "editable": False,
            "jsonData": dict(self.json_data),
        }


def datasource_specs(prometheus_url: str, redis_url: str) -> list[DataSourceSpec]:
    """Prometheus (fleet metrics) and Redis (risk ranking, alerts, recent windows)."""
    return [
        DataSourceSpec(
            uid=PROMETHEUS_UID,
            name="meterwatch Prometheus",
            type="prometheus",
            url=prometheus_url,
            is_default=True,
            # the local stack scrapes every 5-15 s; this lets $__rate_interval fit it
            json_data={"httpMethod": "POST", "timeInterval": "15s"},
        ),
        DataSourceSpec(
            uid=REDIS_UID,
            name="meterwatch Redis",
            type="redis-datasource",
            url=redis_url,
            json_data={"client": "standalone", "poolSize": 5, "timeout": 10},
        ),
    ]
