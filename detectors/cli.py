"""Placeholder: the owning area replaces this module."""

import typer


def train_ae_command() -> None:
    raise typer.Exit(code=3)
