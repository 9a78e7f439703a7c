"""``meterwatch grafana``: generate the dashboards, list their queries, publish them."""

from __future__ import annotations

from typing import Annotated

import typer

grafana_app = typer.Typer(
    no_args_is_help=True,
    help="Grafana dashboards as code: generate the JSON, list the queries, publish to a server.",
)


@grafana_app.command("generate")
def generate_command(
    check: Annotated[
        bool,
        typer.Option("--check", help="Only compare: exit 1 if a committed file is stale."),
    ] = False,
) -> None:
    """Regenerate deploy/grafana/dashboards/*.json and the provisioning files from code."""
    from deploy.grafana.generate import GRAFANA_DIR, stale_files, write_all

    if check:
        stale = stale_files()
        for relative in stale:
            typer.echo(f"stale: {GRAFANA_DIR / relative}")
        if stale:
            typer.echo("run `meterwatch grafana generate` and commit the result")
            raise typer.Exit(code=1)
        typer.echo("generated files are up to date")
        return
    changed = write_all()
    for relative in changed:
        typer.echo(f"wrote {GRAFANA_DIR / relative}")
    typer.echo(f"{len(changed)} file(s) changed")


@grafana_app.command("queries")
def queries_command() -> None:
    """Print every panel and rule with the PromQL behind it."""
    from deploy.grafana.dashboards import DASHBOARDS
    from deploy.grafana.promql import dashboard_queries, rule_queries

    boards = {name: build() for name, build in DASHBOARDS.items()}
    for query in dashboard_queries(boards) + rule_queries():
        typer.echo(f"{query.origin:15} {query.where}\n    {' '.join(query.expr.split())}")


@grafana_app.command("publish")
def publish_command(
    url: Annotated[str, typer.Option("--url", help="Grafana base URL, e.g. http://127.0.0.1:3000")],
    token: Annotated[
        str,
        typer.Option(
            "--token",
            envvar="METERWATCH_GRAFANA_TOKEN",
            help="Grafana service-account token (Editor or Admin); env METERWATCH_GRAFANA_TOKEN.",
        ),
    ],
    timeout_s: Annotated[float, typer.Option("--timeout", help="HTTP timeout, seconds")] = 10.0,
) -> None:
    """Create or update the data sources, the meterwatch folder and the three dashboards."""
    import requests
    from grafana_api.grafana_api import GrafanaException

    from deploy.grafana.dashboards import DASHBOARDS, FOLDER_TITLE, FOLDER_UID
    from deploy.grafana.datasources import datasource_specs
    from deploy.grafana.publish import UNCHANGED, GrafanaPublisher, client_for
    from stream.settings import Settings

    settings = Settings()
    try:
        client = client_for(url, token, timeout_s)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--url") from error
    publisher = GrafanaPublisher(
        client,
        datasource_specs(settings.prometheus_url, settings.redis_url),
        {name: build() for name, build in DASHBOARDS.items()},
        FOLDER_UID,
        FOLDER_TITLE,
    )
    try:
        changes = publisher.publish()
    except GrafanaException as error:
        typer.echo(f"Grafana at {url} refused: HTTP {error.status_code}: {error.message}", err=True)
        raise typer.Exit(code=2) from error
    except requests.RequestException as error:
        typer.echo(f"cannot reach Grafana at {url}: {error}", err=True)
        raise typer.Exit(code=2) from error
    for change in changes:
        typer.echo(f"{change.action:9} {change.kind:10} {change.name}")
    changed = sum(change.action != UNCHANGED for change in changes)
    typer.echo(f"{changed} changed, {len(changes) - changed} unchanged")
