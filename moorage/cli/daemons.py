"""Commands that run on a host: the controller and agent daemons (images: image.py).

Their implementations (and asyncio, structlog, the scheduler) are imported only when
the command runs, so `moor get` does not load a container runtime.
"""

from pathlib import Path
from typing import Annotated, Literal

import typer

from moorage.addresses import DEFAULT_CONTROLLER, controller_address
from moorage.cli.common import ControllerOption
from moorage.cli.image_limits import ImageLimitOption, image_limits
from moorage.cli.registry_options import InsecureOption, RegistryOption, registry_settings
from moorage.cli.reporting import reporting

DEFAULT_STATE_DIR = Path("/var/lib/moorage")
DEFAULT_ETCD = "127.0.0.1:2379"

StateDirOption = Annotated[Path, typer.Option("--state-dir", help="Where the host keeps images, containers and logs.")]
# The values of scheduler.Strategy, spelled out so that building the command tree does not
# import the scheduler (a test checks they match).
StrategyName = Literal["spread", "binpack"]

@reporting
def controller(
    listen: Annotated[
        list[str] | None,
        typer.Option("--listen", help=f"Address to serve the API on; repeatable (default: {DEFAULT_CONTROLLER})."),
    ] = None,
    etcd: Annotated[
        list[str] | None,
        typer.Option("--etcd", help=f"etcd endpoint HOST:PORT; repeatable (default: {DEFAULT_ETCD})."),
    ] = None,
    node_ttl: Annotated[
        float, typer.Option("--node-ttl", min=2, help="Seconds without a heartbeat before a node is marked down.")
    ] = 3.0,
    controller_id: Annotated[
        str | None, typer.Option("--id", help="This controller's name (default: hostname-pid).")
    ] = None,
    placement_strategy: Annotated[
        StrategyName,
        typer.Option("--placement-strategy", help="Spread tasks over the least loaded nodes, or bin-pack them."),
    ] = "spread",
    cluster_cidr: Annotated[
        str, typer.Option("--cluster-cidr", help="Network that node subnets (a /24 each) are taken from.")
    ] = "10.244.0.0/16",
    masquerade: Annotated[
        bool,
        typer.Option(
            "--masquerade/--no-masquerade", help="NAT containers' outbound traffic through their host's address."
        ),
    ] = True,
) -> None:
    """Run a controller: the API server that keeps the cluster's state in etcd.

    Example: moor controller --listen 0.0.0.0:7420 --etcd 10.0.0.5:2379
    """
    import asyncio

    from controller import server
    from moorage import log
    from scheduler import Config, Strategy

    log.configure(json=True)
    asyncio.run(
        server.serve(
            listen or [DEFAULT_CONTROLLER],
            etcd or [DEFAULT_ETCD],
            node_ttl=node_ttl,
            controller_id=controller_id,
            placement=Config(strategy=Strategy(placement_strategy)),
            cluster_cidr=cluster_cidr,
            masquerade=masquerade,
        )
    )


@reporting
def agent(
    controller: ControllerOption = None,
    state_dir: StateDirOption = DEFAULT_STATE_DIR,
    node_id: Annotated[str | None, typer.Option("--node-id", help="Node name (default: the host name).")] = None,
    address: Annotated[
        str | None,
        typer.Option("--address", help="Address other hosts reach this one at (default: chosen by the agent)."),
    ] = None,
    label: Annotated[
        list[str] | None, typer.Option("--label", help="Node label KEY=VALUE; repeatable.", metavar="KEY=VALUE")
    ] = None,
    registry: RegistryOption = None,
    insecure_registry: InsecureOption = None,
    cleanup: Annotated[
        bool, typer.Option("--cleanup", help="On SIGTERM/SIGINT, remove this host's bridge, routes and NAT table.")
    ] = False,
    image_limit: ImageLimitOption = None,
) -> None:
    """Run the agent of this host: it joins the controller and runs the containers assigned to it.

    Example: moor agent --controller 10.0.0.2:7420 --label zone=a
    """
    labels = parse_labels(label or [])
    limits = image_limits(image_limit)
    import asyncio

    from agent import main as agent_main
    from moorage import log

    log.configure(json=True)
    asyncio.run(
        agent_main.serve(
            controller=controller_address(controller),
            state_dir=state_dir,
            node_id=node_id,
            address=address,
            labels=labels,
            registry=registry_settings(registry, insecure_registry),
            cleanup=cleanup,
            image_limits=limits,
        )
    )


def parse_labels(items: list[str]) -> dict[str, str]:
    """``["zone=a", "disk=ssd"]`` → ``{"zone": "a", "disk": "ssd"}``."""
    labels: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--label")
        labels[key] = value
    return labels
