"""The `moor` command: the Typer app, its global options and its sub-commands."""

from __future__ import annotations

from typing import Annotated

import typer

from moorage import __version__
from moorage.cli import daemons, get, reporting, services

app = typer.Typer(
    name="moor",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _global_options(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks instead of one-line errors.")] = False,
) -> None:
    """Moorage: run services on a cluster of hosts.

    Example: moor apply -f examples/hello.yaml --wait && moor get tasks
    """
    reporting.debug.set(debug)


@app.command()
def version() -> None:
    """Print the version of moor.

    Example: moor version
    """
    typer.echo(f"moor {__version__}")


app.command()(services.apply)
app.add_typer(get.app, name="get")
app.command()(services.logs)
app.command()(services.delete)
app.add_typer(daemons.image_app, name="image")
app.command()(daemons.controller)
app.command()(daemons.agent)


def main() -> None:
    """Entry point of the `moor` console script."""
    app()
