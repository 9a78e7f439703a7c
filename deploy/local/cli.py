"""``meterwatch stack up|down|status|restart``: the local stack (see deploy/local/stack.py)."""

from __future__ import annotations

import typer
from pydantic import ValidationError

from stream.settings import Settings

stack_app = typer.Typer(no_args_is_help=True)


def _settings() -> Settings:
    """Build the Settings here, at the edge; a bad environment variable exits with code 2."""
    try:
        return Settings()
    except ValidationError as error:
        typer.echo(f"invalid meterwatch setting(s):\n{error}", err=True)
        raise typer.Exit(code=2) from error


@stack_app.command("up")
def up_command() -> None:
    """Start Kafka, Redis, Prometheus and Alertmanager (idempotent); wait until healthy."""
    from deploy.local.stack import stack_up

    raise typer.Exit(code=stack_up(_settings()))


@stack_app.command("down")
def down_command() -> None:
    """Stop the servers `stack up` started (by recorded pid); nothing else."""
    from deploy.local.stack import stack_down

    raise typer.Exit(code=stack_down(_settings()))


@stack_app.command("status")
def status_command() -> None:
    """Print each server's state; exit 1 unless all four are healthy."""
    from deploy.local.stack import stack_status

    raise typer.Exit(code=stack_status(_settings()))


@stack_app.command("restart")
def restart_command(
    server: str = typer.Argument(help="kafka, redis, prometheus or alertmanager"),
) -> None:
    """Stop one server `stack up` started (by recorded pid), start it again, wait for health."""
    from deploy.local.stack import restart_server

    raise typer.Exit(code=restart_server(_settings(), server))
