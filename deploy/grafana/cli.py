"""Placeholder: the owning area replaces this module."""

import typer

grafana_app = typer.Typer(no_args_is_help=True)


@grafana_app.command("todo")
def _todo() -> None:
    raise typer.Exit(code=3)
