"""`moor events`: what happens in the cluster, as it happens."""

import json
from typing import TYPE_CHECKING, Annotated

import typer

from moorage.cli.common import ControllerOption
from moorage.cli.config import connect
from moorage.cli.reporting import reporting

if TYPE_CHECKING:
    from moorage.v1 import types_pb2


def format_event(event: "types_pb2.Event") -> str:
    """``2024-05-01T12:00:00Z task started id=… service=web node=h1: message``."""
    parts = [event.time.ToJsonString(), event.kind, event.action]
    parts += [f"{key}={value}" for key, value in (("id", event.id), ("service", event.service),
                                                  ("node", event.node_id)) if value]  # fmt: skip
    line = " ".join(parts)
    return f"{line}: {event.message}" if event.message else line


@reporting
def events(
    kind: Annotated[
        list[str] | None, typer.Option("--kind", "-k", help="Only these kinds: task, service, node, controller.")
    ] = None,
    service: Annotated[str, typer.Option("--service", "-s", help="Only events of this service.")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    controller: ControllerOption = None,
) -> None:
    """Print the cluster's events as they happen (tasks placed, started, failed; nodes down; ...), until Ctrl-C.

    Example: moor events --kind task --service hello
    """
    from moorage.cli.output import as_data

    with connect(controller) as client:
        try:
            for event in client.events(kind or ()):
                if service and event.service != service:
                    continue
                typer.echo(json.dumps(as_data(event), sort_keys=True) if as_json else format_event(event))
        except KeyboardInterrupt:
            return
