"""How `moor` reports errors: once, at the edge of each command.

Commands raise; ``reporting`` prints one line on stderr (every problem, for
invalid manifests) and exits 2 for invalid input, 3 for not found, 1 otherwise.
With the global ``--debug`` the exception propagates with its traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextvars import ContextVar
from typing import ParamSpec

import typer

from moorage.cli.common import EXIT_FAILURE, EXIT_INVALID, EXIT_NOT_FOUND, CommandError
from moorage.manifest.errors import ManifestError

_P = ParamSpec("_P")

debug: ContextVar[bool] = ContextVar("moor_debug", default=False)


def report(exc: Exception) -> int:
    """Print ``exc`` for a user on stderr and return the exit code it deserves."""
    if isinstance(exc, ManifestError):
        for problem in exc.problems:
            typer.echo(str(problem), err=True)
        return EXIT_INVALID
    typer.echo(f"error: {exc}", err=True)
    if isinstance(exc, CommandError):
        return exc.exit_code
    import grpc  # here, on the error path, so that commands without a controller never load it

    from moorage.client import ClientError

    if isinstance(exc, ClientError) and exc.code is grpc.StatusCode.NOT_FOUND:
        return EXIT_NOT_FOUND
    return EXIT_FAILURE


def reporting(command: Callable[_P, None]) -> Callable[_P, None]:
    """Wrap a command so its errors end as ``report`` says (unless ``--debug``)."""

    @functools.wraps(command)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> None:
        try:
            command(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.BadParameter):
            raise
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        except Exception as exc:
            if debug.get():
                raise
            raise typer.Exit(report(exc)) from None

    return run
