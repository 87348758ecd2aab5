"""`moor get services|tasks|nodes`: tables, or the API messages as JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import Enum
from typing import Annotated

import typer
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from rich.table import Table

from moorage.cli.common import ControllerOption, stdout_console
from moorage.cli.reporting import reporting
from moorage.cli.render import nodes_table, services_table, tasks_table
from moorage.client import ControlClient, controller_address
from moorage.v1 import control_pb2


class Output(str, Enum):
    table = "table"
    json = "json"


OutputOption = Annotated[Output, typer.Option("--output", "-o", help="table or json.")]

app = typer.Typer(
    help="List services, tasks or nodes.\n\nExample: moor get tasks --service hello", no_args_is_help=True
)


def _show(output: Output, response: Message, table: Table) -> None:
    if output is Output.json:
        typer.echo(json.dumps(MessageToDict(response), indent=2, sort_keys=True))
    else:
        stdout_console().print(table)


@app.command("services")
@reporting
def get_services(output: OutputOption = Output.table, controller: ControllerOption = None) -> None:
    """List services with their desired and running replicas.

    Example: moor get services
    """
    with ControlClient(controller_address(controller)) as client:
        services = client.list_services()
        tasks = client.list_tasks() if output is Output.table else []
    _show(output, control_pb2.ListServicesResponse(services=services), services_table(services, tasks))


@app.command("tasks")
@reporting
def get_tasks(
    service: Annotated[str, typer.Option("--service", "-s", help="Only this service's tasks.")] = "",
    output: OutputOption = Output.table,
    controller: ControllerOption = None,
) -> None:
    """List tasks: where each replica runs and in which state.

    Example: moor get tasks --service hello
    """
    with ControlClient(controller_address(controller)) as client:
        tasks = client.list_tasks(service)
    _show(output, control_pb2.ListTasksResponse(tasks=tasks), tasks_table(tasks, datetime.now(UTC)))


@app.command("nodes")
@reporting
def get_nodes(output: OutputOption = Output.table, controller: ControllerOption = None) -> None:
    """List the hosts that joined the cluster and their resources.

    Example: moor get nodes -o json
    """
    with ControlClient(controller_address(controller)) as client:
        nodes = client.list_nodes()
    _show(output, control_pb2.ListNodesResponse(nodes=nodes), nodes_table(nodes))
