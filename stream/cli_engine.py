"""Placeholder: the owning area replaces this module."""

import typer


def replay_command() -> None:
    raise typer.Exit(code=3)


def evaluate_command() -> None:
    raise typer.Exit(code=3)
