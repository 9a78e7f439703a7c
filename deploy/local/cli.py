"""Placeholder: the owning area replaces this module."""

import typer

stack_app = typer.Typer(no_args_is_help=True)


@stack_app.command("todo")
def _todo() -> None:
    raise typer.Exit(code=3)
