"""``rdstream dev ...``: tools for developers and tests (the tiny random checkpoint)."""

from __future__ import annotations

import typer

dev_app = typer.Typer(help="Developer tools.", no_args_is_help=True, rich_markup_mode=None)


@dev_app.command("make-tiny-checkpoint")
def make_tiny_checkpoint(folder: str = typer.Argument(..., help="folder to write")) -> int:
    """Write a tiny RANDOM checkpoint in the real layout, for tests and demos (its output is NOT depth)."""
    from pipeline.tiny_checkpoint import write_tiny_checkpoint

    path = write_tiny_checkpoint(folder)
    typer.echo(f"wrote a tiny random checkpoint to {path} (for tests only: its output is not depth)")
    return 0
