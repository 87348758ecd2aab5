"""Listings of services, tasks and nodes: fetched, rendered as tables or JSON/YAML, redrawn with ``--watch``.

The work behind `moor get` and `moor node ls`, which import it when they run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

import typer
from google.protobuf.message import Message
from rich.console import RenderableType
from rich.live import Live
from rich.table import Table

from moorage.cli.common import Output, stdout_console
from moorage.cli.render import nodes_table, services_table, tasks_table
from moorage.client import ControlClient
from moorage.v1 import control_pb2

WATCH_INTERVAL = 1.0

# A listing: what the API answered, and the table it makes.
Listing = tuple[Message, Table]


def show(fetch: Callable[[], Listing], output: Output, watch: bool) -> None:
    """Print one listing, or with ``watch`` redraw it whenever it changes (Ctrl-C ends)."""
    console = stdout_console()
    if not watch:
        response, table = fetch()
        if output.structured:
            typer.echo(_dump(response, output))
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
            text = _dump(response, output) if output.structured else _plain(table)
            if text != last:
                last = text
                _emit(live, text if output.structured else table)
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


def _dump(response: Message, output: Output) -> str:
    """``-o json|yaml``; imported here, so that a table does not load protobuf's json_format and PyYAML."""
    from moorage.cli.output import as_data, dump

    return dump(as_data(response), output)


def _plain(table: Table) -> str:
    console = stdout_console()
    with console.capture() as capture:
        console.print(table)
    return capture.get()


def services_listing(client: ControlClient, output: Output) -> Listing:
    services = client.list_services()
    tasks = client.list_tasks() if not output.structured else []
    return control_pb2.ListServicesResponse(services=services), services_table(services, tasks, output is Output.wide)


def tasks_listing(client: ControlClient, output: Output, service: str, all_tasks: bool, node: str) -> Listing:
    tasks = client.list_tasks(service, all=all_tasks, node_id=node)
    return control_pb2.ListTasksResponse(tasks=tasks), tasks_table(tasks, datetime.now(UTC), output is Output.wide)


def nodes_listing(client: ControlClient, output: Output) -> Listing:
    nodes = client.list_nodes()
    tasks = client.list_tasks() if output is Output.wide else []
    return control_pb2.ListNodesResponse(nodes=nodes), nodes_table(nodes, output is Output.wide, tasks)
