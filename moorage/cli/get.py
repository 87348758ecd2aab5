"""`moor get services|tasks|nodes`: tables (``-o wide`` for more columns), or the API messages as JSON/YAML.

``--watch`` redraws the listing whenever it changes, until interrupted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

import typer
from google.protobuf.message import Message
from rich.console import RenderableType
from rich.live import Live
from rich.table import Table

from moorage.cli.common import ControllerOption, Output, OutputOption, stdout_console
from moorage.cli.config import connect
from moorage.cli.output import as_data, dump, is_structured
from moorage.cli.render import nodes_table, services_table, tasks_table
from moorage.cli.reporting import reporting
from moorage.client import ControlClient
from moorage.v1 import control_pb2

WATCH_INTERVAL = 1.0

WatchOption = Annotated[bool, typer.Option("--watch", "-w", help="Keep the listing on screen, redrawn as it changes.")]

app = typer.Typer(
    help="List services, tasks or nodes.\n\nExample: moor get tasks --service hello -o wide", no_args_is_help=True
)

# A listing: what the API answered, and the table it makes.
Listing = tuple[Message, Table]


def show(fetch: Callable[[], Listing], output: Output, watch: bool) -> None:
    """Print one listing, or with ``watch`` redraw it whenever it changes (Ctrl-C ends)."""
    console = stdout_console()
    if not watch:
        response, table = fetch()
        if is_structured(output):
            typer.echo(dump(as_data(response), output))
        else:
            console.print(table)
        return
    last: str | None = None
    live = Live(console=console, auto_refresh=False) if console.is_terminal else None
    try:
        if live is not None:
            live.start()
        while True:
            response, table = fetch()
            text = dump(as_data(response), output) if is_structured(output) else _plain(table)
            if text != last:
                last = text
                _emit(live, table if not is_structured(output) else text)
            time.sleep(WATCH_INTERVAL)
    except KeyboardInterrupt:
        pass
    finally:
        if live is not None:
            live.stop()


def _emit(live: Live | None, renderable: RenderableType) -> None:
    if live is not None:
        live.update(renderable, refresh=True)
    elif isinstance(renderable, str):
        typer.echo(renderable)
    else:
        stdout_console().print(renderable)
        typer.echo("")


def _plain(table: Table) -> str:
    console = stdout_console()
    with console.capture() as capture:
        console.print(table)
    return capture.get()


def services_listing(client: ControlClient, output: Output) -> Listing:
    services = client.list_services()
    tasks = client.list_tasks() if not is_structured(output) else []
    return control_pb2.ListServicesResponse(services=services), services_table(services, tasks, output is Output.wide)


@app.command("services")
@reporting
def get_services(output: OutputOption = Output.table, watch: WatchOption = False,
                 controller: ControllerOption = None) -> None:  # fmt: skip
    """List services with their desired and running replicas.

    Example: moor get services -o wide
    """
    with connect(controller) as client:
        show(lambda: services_listing(client, output), output, watch)


@app.command("tasks")
@reporting
def get_tasks(
    service: Annotated[str, typer.Option("--service", "-s", help="Only this service's tasks.")] = "",
    node: Annotated[str, typer.Option("--node", "-n", help="Only the tasks on this node.")] = "",
    all_tasks: Annotated[bool, typer.Option("--all", "-a", help="Also tasks that have ended.")] = False,
    output: OutputOption = Output.table,
    watch: WatchOption = False,
    controller: ControllerOption = None,
) -> None:
    """List tasks: where each replica runs and in which state.

    Example: moor get tasks --service hello --all -o wide
    """

    def fetch() -> Listing:
        tasks = client.list_tasks(service, all=all_tasks, node_id=node)
        return control_pb2.ListTasksResponse(tasks=tasks), tasks_table(tasks, datetime.now(UTC), output is Output.wide)

    with connect(controller) as client:
        show(fetch, output, watch)


@app.command("nodes")
@reporting
def get_nodes(output: OutputOption = Output.table, watch: WatchOption = False,
              controller: ControllerOption = None) -> None:  # fmt: skip
    """List the hosts that joined the cluster and their resources.

    Example: moor get nodes -o wide
    """
    with connect(controller) as client:
        show(lambda: nodes_listing(client, output), output, watch)


def nodes_listing(client: ControlClient, output: Output) -> Listing:
    nodes = client.list_nodes()
    tasks = client.list_tasks() if output is Output.wide else []
    return control_pb2.ListNodesResponse(nodes=nodes), nodes_table(nodes, output is Output.wide, tasks)
