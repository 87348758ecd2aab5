"""Commands that change or read services: apply, delete, logs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import grpc
import typer

from moorage.cli.common import EXIT_NOT_FOUND, CommandError, ControllerOption, stderr_console
from moorage.cli.reporting import reporting
from moorage.cli.waiting import drain_check, poll, rollout_check
from moorage.client import ClientError, ControlClient, controller_address
from moorage.manifest import load_paths, parse_duration
from moorage.v1 import control_pb2, types_pb2


def _duration(value: str | float) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


TimeoutOption = Annotated[
    float,
    typer.Option(
        "--timeout",
        parser=_duration,
        metavar="DURATION",
        help="How long --wait waits, e.g. 90s or 2m (default: 60s).",
        show_default=False,
    ),
]


@reporting
def apply(
    files: Annotated[
        list[Path],
        typer.Option("--file", "-f", metavar="PATH", help="Manifest file or directory of *.yaml/*.yml; repeatable."),
    ],
    wait: Annotated[bool, typer.Option("--wait", help="Wait until every replica is running.")] = False,
    timeout: TimeoutOption = 60.0,
    controller: ControllerOption = None,
) -> None:
    """Create or update the services described in manifest files.

    Every manifest is checked before anything is sent; all problems are listed at once.

    Example: moor apply -f examples/hello.yaml --wait
    """
    specs = [manifest.to_spec() for manifest in load_paths(files)]
    with ControlClient(controller_address(controller)) as client:
        for result in client.apply(specs):
            action = control_pb2.ApplyAction.Name(result.action).removeprefix("APPLY_ACTION_").lower()
            typer.echo(f"service/{result.name} {action}")
        if wait:
            names = {spec.name for spec in specs}
            poll(
                lambda: rollout_check(specs, [t for t in client.list_tasks() if t.service in names]),
                timeout,
                stderr_console(),
            )
            typer.echo("all replicas running")


@reporting
def delete(
    service: Annotated[str, typer.Argument(help="Service name.")],
    wait: Annotated[bool, typer.Option("--wait", help="Wait until all its tasks have stopped.")] = False,
    timeout: TimeoutOption = 60.0,
    controller: ControllerOption = None,
) -> None:
    """Delete a service and stop its tasks.

    Example: moor delete hello --wait
    """
    with ControlClient(controller_address(controller)) as client:
        try:
            client.delete_service(service)
        except ClientError as exc:
            if exc.code is grpc.StatusCode.NOT_FOUND:
                raise CommandError(f"service {service!r} not found", EXIT_NOT_FOUND) from exc
            raise
        typer.echo(f"service/{service} deleted")
        if wait:
            poll(lambda: drain_check(service, client.list_tasks(service)), timeout, stderr_console())
            typer.echo(f"service/{service} stopped")


@reporting
def logs(
    service: Annotated[str, typer.Argument(help="Service name.")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines.")] = False,
    tail: Annotated[int, typer.Option("--tail", min=0, help="Last N lines per task; 0 = all.")] = 0,
    timestamps: Annotated[bool, typer.Option("--timestamps", "-t", help="Prefix each line with its time.")] = False,
    controller: ControllerOption = None,
) -> None:
    """Print the output of every task of a service, prefixed with service.slot.

    Lines the container wrote to stderr go to stderr.

    Example: moor logs hello -f --tail 10
    """
    with ControlClient(controller_address(controller)) as client:
        for entry in client.logs(service, follow=follow, tail=tail):
            typer.echo(format_entry(service, entry, timestamps), err=entry.stream == "stderr")


def format_entry(service: str, entry: types_pb2.LogEntry, timestamps: bool) -> str:
    """``hello.1  line``, or ``2024-05-01T10:00:00.5Z hello.1  line`` with timestamps."""
    prefix = f"{entry.time.ToJsonString()} " if timestamps else ""
    line = entry.line.rstrip("\n")
    return f"{prefix}{service}.{entry.slot}  {line}"

