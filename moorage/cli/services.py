"""Commands that remove or resize services: delete, scale."""

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from moorage.cli.apply import TimeoutOption
from moorage.cli.common import EXIT_INVALID, EXIT_NOT_FOUND, CommandError, ControllerOption, stderr_console
from moorage.cli.config import connect
from moorage.cli.reporting import reporting

if TYPE_CHECKING:
    from moorage.cli.waiting import Check
    from moorage.client import ControlClient


@reporting
def delete(
    services: Annotated[list[str] | None, typer.Argument(help="Service names.", show_default=False)] = None,
    files: Annotated[
        list[Path] | None,
        typer.Option("--file", "-f", metavar="PATH", help="Delete the services these manifests describe."),
    ] = None,
    ignore_not_found: Annotated[
        bool, typer.Option("--ignore-not-found", help="A service that does not exist is not an error.")
    ] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until all their tasks have stopped.")] = False,
    timeout: TimeoutOption = 60.0,
    controller: ControllerOption = None,
) -> None:
    """Delete services and stop their tasks.

    Example: moor delete hello --wait   or   moor delete -f examples/
    """
    import grpc

    from moorage.cli.waiting import poll
    from moorage.client import ClientError

    if files:
        from moorage.manifest import load_paths

        services = [*(services or []), *(service.name for service in load_paths(files))]
    names = list(services or [])
    if not names:
        raise CommandError("name a service or give -f PATH", EXIT_INVALID)
    missing: list[str] = []
    with connect(controller) as client:
        for name in dict.fromkeys(names):
            try:
                client.delete_service(name)
            except ClientError as exc:
                if exc.code is not grpc.StatusCode.NOT_FOUND:
                    raise
                missing.append(name)
                if not ignore_not_found:
                    typer.echo(f"error: service {name!r} not found", err=True)
                continue
            typer.echo(f"service/{name} deleted")
        if wait:
            for name in dict.fromkeys(names):
                if name not in missing:
                    poll(functools.partial(_drained, client, name), timeout, stderr_console())
                    typer.echo(f"service/{name} stopped")
    if missing and not ignore_not_found:
        raise typer.Exit(EXIT_NOT_FOUND)


def _drained(client: "ControlClient", name: str) -> "Check":
    from moorage.cli.waiting import drain_check

    return drain_check(name, client.list_tasks(name))


def parse_scale(item: str) -> tuple[str, int]:
    """``"web=3"`` → ``("web", 3)``."""
    name, sep, count = item.partition("=")
    if not sep or not name or not count.isdigit():
        raise typer.BadParameter(f"{item!r} is not SERVICE=REPLICAS, e.g. web=3")
    return name, int(count)


@reporting
def scale(
    targets: Annotated[list[str], typer.Argument(help="SERVICE=REPLICAS; several at once.", metavar="SERVICE=N...")],
    controller: ControllerOption = None,
) -> None:
    """Set the number of replicas of services, without touching the rest of their spec.

    Example: moor scale hello=3 web=0
    """
    import grpc

    from moorage.client import ClientError

    wanted = [parse_scale(item) for item in targets]
    with connect(controller) as client:
        for name, replicas in wanted:
            try:
                client.scale(name, replicas)
            except ClientError as exc:
                if exc.code is grpc.StatusCode.NOT_FOUND:
                    raise CommandError(f"service {name!r} not found", EXIT_NOT_FOUND) from exc
                raise
            typer.echo(f"service/{name} scaled to {replicas}")
