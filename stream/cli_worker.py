"""Placeholder: the owning area replaces this module."""

import typer


def worker_command() -> None:
    raise typer.Exit(code=3)


def demo_command() -> None:
    raise typer.Exit(code=3)
