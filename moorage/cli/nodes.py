"""`moor node ls|inspect|drain|activate|pause|label|rm`: the hosts of the cluster."""

from typing import TYPE_CHECKING, Annotated

import typer

from moorage.cli.common import EXIT_INVALID, CommandError, ControllerOption, Output, OutputOption
from moorage.cli.config import connect
from moorage.cli.reporting import reporting

if TYPE_CHECKING:
    from moorage.v1 import types_pb2

app = typer.Typer(help="List and manage the cluster's nodes.\n\nExample: moor node drain h2", no_args_is_help=True)

NodeArgument = Annotated[str, typer.Argument(help="Node id.")]


@app.command("ls")
@reporting
def node_ls(output: OutputOption = Output.table, controller: ControllerOption = None) -> None:
    """List the nodes (the same as moor get nodes).

    Example: moor node ls -o wide
    """
    from moorage.cli.listing import nodes_listing, show

    with connect(controller) as client:
        show(lambda: nodes_listing(client, output), output, watch=False)


@app.command("inspect")
@reporting
def node_inspect(
    node: NodeArgument,
    output: Annotated[Output, typer.Option("--output", "-o", help="yaml or json.")] = Output.yaml,
    controller: ControllerOption = None,
) -> None:
    """Print a node as the API has it, in YAML or JSON.

    Example: moor node inspect h1 -o json
    """
    from moorage.cli.lookup import find_node
    from moorage.cli.output import as_data, dump

    with connect(controller) as client:
        found = find_node(client, node)
    typer.echo(dump(as_data(found), Output.json if output is Output.json else Output.yaml))


def _set_availability(
    controller: str | None, node: str, value: "types_pb2.NodeAvailability.ValueType", verb: str
) -> None:
    from moorage.cli.lookup import find_node

    with connect(controller) as client:
        found = find_node(client, node)
        client.update_node(found.id, availability=value)
    typer.echo(f"node/{found.id} {verb}")


@app.command("drain")
@reporting
def node_drain(node: NodeArgument, controller: ControllerOption = None) -> None:
    """Stop placing tasks on a node and move its tasks elsewhere.

    Example: moor node drain h2
    """
    from moorage.v1 import types_pb2

    _set_availability(controller, node, types_pb2.NODE_AVAILABILITY_DRAIN, "drained")


@app.command("pause")
@reporting
def node_pause(node: NodeArgument, controller: ControllerOption = None) -> None:
    """Stop placing new tasks on a node; its tasks stay.

    Example: moor node pause h2
    """
    from moorage.v1 import types_pb2

    _set_availability(controller, node, types_pb2.NODE_AVAILABILITY_PAUSE, "paused")


@app.command("activate")
@reporting
def node_activate(node: NodeArgument, controller: ControllerOption = None) -> None:
    """Let a drained or paused node take tasks again.

    Example: moor node activate h2
    """
    from moorage.v1 import types_pb2

    _set_availability(controller, node, types_pb2.NODE_AVAILABILITY_ACTIVE, "activated")


@app.command("rm")
@reporting
def node_rm(
    node: NodeArgument,
    force: Annotated[bool, typer.Option("--force", help="Remove a node that is still up.")] = False,
    controller: ControllerOption = None,
) -> None:
    """Remove a node: revoke its certificates, end its session, release its subnet.

    A node that is up is refused unless --force: drain it and stop its agent first.

    Example: moor node rm h3
    """
    from moorage.cli.lookup import find_node

    with connect(controller) as client:
        found = find_node(client, node)
        revoked = client.remove_node(found.id, force=force)
    typer.echo(f"node/{found.id} removed" + (f" ({len(revoked)} certificate(s) revoked)" if revoked else ""))


def parse_label_changes(items: list[str]) -> tuple[dict[str, str], list[str]]:
    """kubectl style: ``zone=a`` sets, ``zone-`` removes."""
    set_labels: dict[str, str] = {}
    remove: list[str] = []
    for item in items:
        key, sep, value = item.partition("=")
        if sep and key:
            set_labels[key] = value
        elif not sep and item.endswith("-") and len(item) > 1:
            remove.append(item[:-1])
        else:
            raise CommandError(f"{item!r} is neither KEY=VALUE (set) nor KEY- (remove)", EXIT_INVALID)
    return set_labels, remove


@app.command("label")
@reporting
def node_label(
    node: NodeArgument,
    changes: Annotated[
        list[str], typer.Argument(help="KEY=VALUE to set, KEY- to remove.", metavar="KEY=VALUE|KEY-...")
    ],
    controller: ControllerOption = None,
) -> None:
    """Set or remove labels of a node (placement constraints match them).

    Example: moor node label h1 zone=a disk=ssd old-
    """
    from moorage.cli.lookup import find_node

    set_labels, remove = parse_label_changes(changes)
    with connect(controller) as client:
        found = find_node(client, node)
        updated = client.update_node(found.id, set_labels=set_labels, remove_labels=remove)
    typer.echo(f"node/{updated.id} labels: {','.join(f'{k}={v}' for k, v in sorted(updated.labels.items())) or '-'}")
