"""Commands that run on a host: the controller and agent daemons (images: image.py).

Their implementations (and asyncio, structlog, the scheduler) are imported only when
the command runs, so `moor get` does not load a container runtime.
"""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from moorage.addresses import DEFAULT_CONTROLLER, controller_address
from moorage.cli.common import CommandError, ControllerOption
from moorage.cli.image_limits import ImageLimitOption, image_limits
from moorage.cli.registry_options import InsecureOption, RegistryOption, registry_settings
from moorage.cli.reporting import reporting

if TYPE_CHECKING:
    from controller.etcdtls import EtcdTLS

DEFAULT_STATE_DIR = Path("/var/lib/moorage")
DEFAULT_ETCD = "127.0.0.1:2379"

StateDirOption = Annotated[Path, typer.Option("--state-dir", help="Where the host keeps images, containers and logs.")]
EtcdOption = Annotated[
    list[str] | None, typer.Option("--etcd", help=f"etcd endpoint HOST:PORT; repeatable (default: {DEFAULT_ETCD}).")
]
EtcdCAOption = Annotated[Path | None, typer.Option("--etcd-ca", help="Speak TLS to etcd: the CA of its certificates.")]
EtcdCertOption = Annotated[Path | None, typer.Option("--etcd-cert", help="Client certificate for etcd (with --etcd-ca).")]
EtcdKeyOption = Annotated[Path | None, typer.Option("--etcd-key", help="Client key for etcd (with --etcd-ca).")]
InsecureServingOption = Annotated[
    bool, typer.Option("--insecure", help="Development only: plaintext gRPC, no certificates, no access checks.")
]
# The values of scheduler.Strategy, spelled out so that building the command tree does not
# import the scheduler (a test checks they match).
StrategyName = Literal["spread", "binpack"]

@reporting
def controller(
    listen: Annotated[
        list[str] | None,
        typer.Option("--listen", help=f"Address to serve the API on; repeatable (default: {DEFAULT_CONTROLLER})."),
    ] = None,
    etcd: EtcdOption = None,
    etcd_ca: EtcdCAOption = None,
    etcd_cert: EtcdCertOption = None,
    etcd_key: EtcdKeyOption = None,
    insecure: InsecureServingOption = False,
    join_listen: Annotated[
        list[str] | None,
        typer.Option("--join-listen", help="Where agents without a certificate join; repeatable (default: each --listen port + 1)."),
    ] = None,
    node_cert_ttl: Annotated[
        float, typer.Option("--node-cert-ttl", min=5, help="Seconds a node certificate is valid (default: 7 days).")
    ] = 7 * 86400,
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

    It serves mutual TLS with the cluster CA that `moor cluster init` made in etcd.

    Example: moor controller --listen 0.0.0.0:7420 --etcd 10.0.0.5:2379
    """
    import asyncio
    import datetime as dt

    from controller import server
    from controller.identity import IdentityError
    from moorage import log
    from scheduler import Config, Strategy

    log.configure(json=True)
    try:
        asyncio.run(
            server.serve(
                listen or [DEFAULT_CONTROLLER],
                etcd or [DEFAULT_ETCD],
                node_ttl=node_ttl,
                controller_id=controller_id,
                placement=Config(strategy=Strategy(placement_strategy)),
                cluster_cidr=cluster_cidr,
                masquerade=masquerade,
                insecure=insecure,
                etcd_tls=etcd_tls(etcd_ca, etcd_cert, etcd_key),
                node_cert_lifetime=dt.timedelta(seconds=node_cert_ttl),
                join_listen=join_listen,
            )
        )
    except IdentityError as e:
        raise CommandError(str(e)) from None


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
    join_token: Annotated[
        str | None,
        typer.Option(
            "--join-token", envvar="MOOR_JOIN_TOKEN", show_envvar=False,
            help="Join the cluster with this token when the node has no valid certificate (or $MOOR_JOIN_TOKEN).",
        ),
    ] = None,
    join_token_file: Annotated[
        Path | None, typer.Option("--join-token-file", help="Read the join token from this file.")
    ] = None,
    insecure: InsecureServingOption = False,
    image_limit: ImageLimitOption = None,
) -> None:
    """Run the agent of this host: it joins the controller and runs the containers assigned to it.

    Example: moor agent --controller 10.0.0.2:7420 --label zone=a
    """
    labels = parse_labels(label or [])
    limits = image_limits(image_limit)
    import asyncio

    from agent import main as agent_main
    from agent.identity import JoinError
    from moorage import log

    if join_token_file is not None:
        join_token = join_token_file.read_text().strip()
    log.configure(json=True)
    try:
        asyncio.run(
            agent_main.serve(
                controller=controller_address(controller),
                state_dir=state_dir,
                node_id=node_id,
                address=address,
                labels=labels,
                registry=registry_settings(registry, insecure_registry),
                cleanup=cleanup,
                join_token=join_token,
                insecure=insecure,
                image_limits=limits,
            )
        )
    except JoinError as e:
        raise CommandError(str(e)) from None


def etcd_tls(ca: Path | None, cert: Path | None, key: Path | None) -> "EtcdTLS | None":
    """TLS settings for the controller's etcd client, from the --etcd-* options."""
    if ca is None:
        if cert is not None or key is not None:
            raise typer.BadParameter("--etcd-cert and --etcd-key need --etcd-ca", param_hint="--etcd-ca")
        return None
    from controller.etcdtls import EtcdTLS

    return EtcdTLS.from_files(ca, cert, key)


def parse_labels(items: list[str]) -> dict[str, str]:
    """``["zone=a", "disk=ssd"]`` → ``{"zone": "a", "disk": "ssd"}``."""
    labels: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--label")
        labels[key] = value
    return labels
