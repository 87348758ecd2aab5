"""What every `moor` command shares: exit codes, the one-line error, options, consoles."""

from __future__ import annotations

import sys
from enum import Enum
from typing import TYPE_CHECKING, Annotated

import typer

from moorage.addresses import DEFAULT_CONTROLLER, ENV_CONTROLLER

if TYPE_CHECKING:
    from rich.console import Console

EXIT_FAILURE = 1
EXIT_INVALID = 2
EXIT_NOT_FOUND = 3


class CommandError(Exception):
    """A command failed in a way the user can read in one line."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class NotFound(CommandError):
    def __init__(self, what: str) -> None:
        super().__init__(f"{what} not found", EXIT_NOT_FOUND)


ControllerOption = Annotated[
    str | None,
    typer.Option(
        "--controller",
        help=f"Controller address HOST:PORT, or several comma-separated to fail over between "
        f"(default: ${ENV_CONTROLLER}, else ~/.config/moorage/config.yaml, else {DEFAULT_CONTROLLER}).",
        show_default=False,
    ),
]


class Output(str, Enum):
    table = "table"
    wide = "wide"
    json = "json"
    yaml = "yaml"

    @property
    def structured(self) -> bool:
        """JSON or YAML: the API's messages, for scripts."""
        return self in (Output.json, Output.yaml)


OutputOption = Annotated[Output, typer.Option("--output", "-o", help="table, wide, json or yaml.")]


def stdout_console() -> Console:
    """Rich console for tables: the terminal's width, or unlimited when piped.

    A table written to a pipe or file is for grep and awk, so it is never folded.
    """
    from rich.console import Console

    return Console(highlight=False, width=None if sys.stdout.isatty() else 100_000)


def stderr_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False)
