"""`moor describe service|task|node NAME`: everything about one object, for a person.

A service shows its spec as a manifest, its status and every task it has had
(states, exit codes, and the reason a task is pending or failed: placement and
runtime messages). A node shows its resources and the tasks on it. Each ends with
the recent events the answering controller has seen about it (describing.py prints).
"""

from typing import Annotated

import typer

from moorage.cli.common import ControllerOption
from moorage.cli.config import connect
from moorage.cli.reporting import reporting

app = typer.Typer(
    help="Show everything about one service, task or node.\n\nExample: moor describe service hello",
    no_args_is_help=True,
)


@app.command("service")
@reporting
def describe_service(
    name: Annotated[str, typer.Argument(help="Service name.")], controller: ControllerOption = None
) -> None:
    """Spec, status and every task of a service, with states, exit codes and why tasks are not running.

    Example: moor describe service hello
    """
    from moorage.cli.describing import print_service

    with connect(controller) as client:
        print_service(client, name)


@app.command("task")
@reporting
def describe_task(
    task: Annotated[str, typer.Argument(help="Task id, id prefix or SERVICE.SLOT.")],
    controller: ControllerOption = None,
) -> None:
    """State, exit code, placement and messages of one task.

    Example: moor describe task hello.1
    """
    from moorage.cli.describing import print_task

    with connect(controller) as client:
        print_task(client, task)


@app.command("node")
@reporting
def describe_node(node: Annotated[str, typer.Argument(help="Node id.")], controller: ControllerOption = None) -> None:
    """Resources, labels, availability and the tasks of one node.

    Example: moor describe node h1
    """
    from moorage.cli.describing import print_node

    with connect(controller) as client:
        print_node(client, node)
