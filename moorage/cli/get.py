"""`moor get services|tasks|nodes`: tables (``-o wide`` for more columns), or the API messages as JSON/YAML.

``--watch`` redraws the listing whenever it changes, until interrupted (listing.py does the work).
"""

from typing import Annotated

import typer

from moorage.cli.common import ControllerOption, Output, OutputOption
from moorage.cli.config import connect
from moorage.cli.reporting import reporting

WatchOption = Annotated[bool, typer.Option("--watch", "-w", help="Keep the listing on screen, redrawn as it changes.")]

app = typer.Typer(
    help="List services, tasks or nodes.\n\nExample: moor get tasks --service hello -o wide", no_args_is_help=True
)


@app.command("services")
@reporting
def get_services(output: OutputOption = Output.table, watch: WatchOption = False,
                 controller: ControllerOption = None) -> None:  # fmt: skip
    """List services with their desired and running replicas.

    Example: moor get services -o wide
    """
    from moorage.cli.listing import services_listing, show

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
    from moorage.cli.listing import show, tasks_listing

    with connect(controller) as client:
        show(lambda: tasks_listing(client, output, service, all_tasks, node), output, watch)


@app.command("nodes")
@reporting
def get_nodes(output: OutputOption = Output.table, watch: WatchOption = False,
              controller: ControllerOption = None) -> None:  # fmt: skip
    """List the hosts that joined the cluster and their resources.

    Example: moor get nodes -o wide
    """
    from moorage.cli.listing import nodes_listing, show

    with connect(controller) as client:
        show(lambda: nodes_listing(client, output), output, watch)
