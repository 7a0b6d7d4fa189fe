"""The typer application: one command per module (file, run, sources, dev).

Imported by ``stream.cli.main`` only after it has taken charge of Ctrl-C and SIGTERM, because
these imports (torch, diffusers) take seconds.
"""

from __future__ import annotations

import platform
from importlib import metadata

import typer

from stream.cli.dev import dev_app
from stream.cli.file import file_command
from stream.cli.help_format import PanelledCommand
from stream.cli.rig import rig_command
from stream.cli.run import run_command
from stream.cli.sources import sources_command

app = typer.Typer(
    name="rdstream",
    help="RollingDepth video-to-depth: offline files and a live node for Syphon/Spout/NDI.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # click's plain help: it wraps cleanly at 80 columns (rich's boxed tables cut names and defaults)
    rich_markup_mode=None,
)
PACKAGE = "rollingdepth-stream"


def version_text() -> str:
    """``rdstream --version``: this package's version, and Python's and torch's for bug reports,
    read from the installed packages' metadata (torch is not imported: that takes seconds)."""

    def installed(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    return f"rdstream {installed(PACKAGE)} (Python {platform.python_version()}, torch {installed('torch')})"


def _print_version(wanted: bool) -> None:
    if wanted:
        typer.echo(version_text())
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="print the version of rdstream (and of Python and torch) and exit"),
) -> None:
    # No docstring: the app's help above stays the text of `rdstream --help`.
    pass


# Short lines for the command list (the docstrings' first lines are cut at 80 columns).
app.command("file", short_help="Offline: video files to depth .npy and colour-mapped videos.",
            cls=PanelledCommand)(file_command)
app.command("run", short_help="Live node: a source through the model to Syphon, Spout, NDI or files.",
            cls=PanelledCommand)(run_command)
app.command("rig", short_help="Several cameras, one model: every stream of a rig file at once.",
            cls=PanelledCommand)(rig_command)
app.command("sources", short_help="List cameras, NDI sources, Syphon servers and Spout senders.")(sources_command)
app.add_typer(dev_app, name="dev")
