"""What every `moor` command shares: exit codes, the one-line error, the controller option."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console

from moorage.client import DEFAULT_CONTROLLER, ENV_CONTROLLER

EXIT_FAILURE = 1
EXIT_INVALID = 2
EXIT_NOT_FOUND = 3


class CommandError(Exception):
    """A command failed in a way the user can read in one line."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


ControllerOption = Annotated[
    str | None,
    typer.Option(
        "--controller",
        help=f"Controller address HOST:PORT (default: ${ENV_CONTROLLER}, else {DEFAULT_CONTROLLER}).",
        show_default=False,
    ),
]


def stdout_console() -> Console:
    """Rich console for tables: the terminal's width, or unlimited when piped.

    A table written to a pipe or file is for grep and awk, so it is never folded.
    """
    return Console(highlight=False, width=None if sys.stdout.isatty() else 100_000)


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False)
