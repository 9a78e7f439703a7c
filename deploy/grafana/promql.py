"""Every PromQL expression meterwatch ships, and the series each one reads.

Used by ``meterwatch grafana queries`` (the panel -> query list) and by the tests
that run each expression against the real Prometheus of the local stack.
"""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass
from pathlib import Path

import yaml

from deploy.grafana.panels import DashboardJSON

RULES_DIR = Path(__file__).resolve().parent.parent / "prometheus" / "rules"

# Grafana's interval macros, given values a short test run can satisfy: a range of
# at least two scrapes, like Grafana's $__rate_interval.
GRAFANA_MACROS_FOR_TESTS = {
    "$__rate_interval": "1m",
    "$__interval": "30s",
    "$__range": "10m",
}


@dataclass(frozen=True)
class Query:
    """One PromQL expression and where it comes from."""

    origin: str  # "dashboard" | "recording rule" | "alert rule"
    where: str  # dashboard title / panel title, or the rule's name
    expr: str


def dashboard_queries(dashboards: typing.Mapping[str, DashboardJSON]) -> list[Query]:
    queries = []
    for board in dashboards.values():
        for panel in _panels(board):
            for target in panel.get("targets", []):
                if "expr" in target:
                    where = f"{board['title']} / {panel.get('title', '')}"
                    queries.append(Query("dashboard", where, target["expr"]))
    return queries


def rule_queries(rules_dir: Path = RULES_DIR) -> list[Query]:
    queries = []
    for path in sorted(rules_dir.glob("*.yml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        for group in document["groups"]:
            for rule in group["rules"]:
                if "record" in rule:
                    queries.append(Query("recording rule", rule["record"], rule["expr"].strip()))
                else:
                    queries.append(Query("alert rule", rule["alert"], rule["expr"].strip()))
    return queries


def expand_macros(expr: str, macros: typing.Mapping[str, str] = GRAFANA_MACROS_FOR_TESTS) -> str:
    # longest first: $__rate_interval must not be eaten by $__interval's prefix
    for name in sorted(macros, key=len, reverse=True):
        expr = expr.replace(name, macros[name])
    return expr


def _panels(board: DashboardJSON) -> typing.Iterator[dict[str, typing.Any]]:
    for panel in board.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


# --- the series an expression reads ---------------------------------------------
_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
    "and", "or", "unless", "inf", "nan", "atan2",
}  # fmt: skip
_TOKEN = re.compile(
    r"""
    (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<braces>\{[^}]*\})
  | (?P<range>\[[^\]]*\])
  | (?P<duration>(?:\d+(?:ms|[smhdwy]))+)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)


def series_selectors(expr: str) -> list[str]:
    """The instant-vector selectors in ``expr`` (``name`` or ``name{matchers}``).

    A small tokenizer, enough for the expressions shipped here: names followed by
    ``(`` are functions or aggregations, names after ``by``/``without``/``on``/
    ``ignoring``/``group_*`` are label lists, keywords are skipped. Raises
    ValueError on a selector it cannot read (so a test fails, never passes vacuously).
    """
    tokens = [(m.lastgroup, m.group()) for m in _TOKEN.finditer(expr)]
    tokens = [(kind, text) for kind, text in tokens if not (kind == "other" and text.isspace())]
    selectors: list[str] = []
    in_label_list = False
    for index, (kind, text) in enumerate(tokens):
        following = tokens[index + 1] if index + 1 < len(tokens) else (None, "")
        if in_label_list:
            if kind == "other" and text == ")":
                in_label_list = False
            continue
        if kind == "name":
            if text in {"by", "without", "on", "ignoring", "group_left", "group_right"}:
                in_label_list = following[1] == "("
                continue
            # functions and aggregations: `rate(`, `sum(`, `sum by (...)`
            if text.lower() in _KEYWORDS or following[1] in {"(", "by", "without"}:
                continue
            selector = text + (following[1] if following[0] == "braces" else "")
            selectors.append(selector)
        elif kind == "braces" and (index == 0 or tokens[index - 1][0] != "name"):
            raise ValueError(f"selector without a metric name in {expr!r}: {text}")
    return selectors
