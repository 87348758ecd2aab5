"""`moor apply` and `moor diff`: manifests against the cluster."""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from moorage.cli.common import ControllerOption, stderr_console
from moorage.cli.config import connect
from moorage.cli.reporting import reporting
from moorage.manifest.units import parse_duration

if TYPE_CHECKING:
    from moorage.client import ControlClient
    from moorage.manifest import Loaded
    from moorage.v1 import types_pb2


def duration(value: str | float) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


FilesOption = Annotated[
    list[Path],
    typer.Option("--file", "-f", metavar="PATH", help="Manifest file or directory of *.yaml/*.yml; repeatable."),
]
TimeoutOption = Annotated[
    float,
    typer.Option(
        "--timeout",
        parser=duration,
        metavar="DURATION",
        help="How long --wait waits, e.g. 90s or 2m (default: 60s).",
        show_default=False,
    ),
]


def load_against(client: "ControlClient", files: list[Path]) -> "tuple[list[Loaded], dict[str, types_pb2.Service]]":
    """The manifests, checked (links, volumes_from) against what the cluster has; and what it has."""
    from moorage.manifest import check_references, load

    loaded = load(files)
    existing = {service.spec.name: service for service in client.list_services()}
    check_references(loaded, existing)
    return loaded, existing


def planned_action(spec: "types_pb2.ServiceSpec", existing: "dict[str, types_pb2.Service]") -> str:
    if spec.name not in existing:
        return "created"
    return "unchanged" if existing[spec.name].spec == spec else "updated"


@reporting
def apply(
    files: FilesOption,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would change; write nothing.")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Show the tasks' progress until every replica runs.")] = False,
    timeout: TimeoutOption = 60.0,
    controller: ControllerOption = None,
) -> None:
    """Create or update the services described in manifest files.

    Every manifest is checked before anything is sent; all problems are listed at
    once, and a failed apply changes nothing. Prints created, updated or unchanged
    per service.

    Example: moor apply -f examples/ --dry-run && moor apply -f examples/hello.yaml --wait
    """
    from moorage.cli.waiting import poll, rollout_check
    from moorage.v1 import control_pb2

    with connect(controller) as client:
        loaded, existing = load_against(client, files)
        specs = [item.service.to_spec() for item in loaded]
        if dry_run:
            for spec in specs:
                typer.echo(f"service/{spec.name} {planned_action(spec, existing)} (dry run)")
            return
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
def diff(
    files: FilesOption,
    exit_code: Annotated[
        bool, typer.Option("--exit-code", help="Exit 1 when something would change (as git diff --exit-code).")
    ] = False,
    controller: ControllerOption = None,
) -> None:
    """Show, field by field, what applying the manifests would change in the cluster.

    Lines start with + (added), - (removed) or ~ (changed: old -> new).

    Example: moor diff -f examples/hello.yaml
    """
    from moorage.cli.diffing import changes
    from moorage.manifest import ServiceManifest

    with connect(controller) as client:
        loaded, existing = load_against(client, files)
    changed = False
    for item in loaded:
        name = item.service.name
        old = ServiceManifest.from_spec(existing[name].spec) if name in existing else None
        found = changes(old, item.service)
        if not found:
            typer.echo(f"service/{name} unchanged")
            continue
        changed = True
        typer.echo(f"service/{name} {'updated' if old is not None else 'created'}")
        for change in found:
            typer.echo(f"  {change}")
    if changed and exit_code:
        raise typer.Exit(1)
