"""Placeholder: the owning area replaces this module."""

import typer


def simulate_command() -> None:
    raise typer.Exit(code=3)
