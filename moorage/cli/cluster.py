"""`moor cluster ...`: the cluster's identity — init, join tokens, user certificates.

``init`` runs on a controller host and talks to etcd directly (the cluster has no CA to
authenticate anyone yet); the others are admin calls to a controller.
"""

from pathlib import Path
from typing import Annotated

import typer

from moorage.cli.common import EXIT_INVALID, CommandError, ControllerOption
from moorage.cli.daemons import DEFAULT_ETCD, EtcdCAOption, EtcdCertOption, EtcdKeyOption, EtcdOption, etcd_tls
from moorage.cli.reporting import reporting

app = typer.Typer(
    help="The cluster's identity: init, join tokens, user certificates.\n\nExample: moor cluster join-token worker",
    no_args_is_help=True,
)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="Where to write the config file (default: $MOOR_CONFIG or ~/.config/moorage/config.yaml)."),
]


@app.command("init")
@reporting
def init(
    etcd: EtcdOption = None,
    etcd_ca: EtcdCAOption = None,
    etcd_cert: EtcdCertOption = None,
    etcd_key: EtcdKeyOption = None,
    controller: Annotated[
        list[str] | None,
        typer.Option("--controller", help="Controller address to write into the admin config; repeatable."),
    ] = None,
    cluster_id: Annotated[str | None, typer.Option("--cluster-id", help="The cluster's name (default: random).")] = None,
    admin: Annotated[str, typer.Option("--admin", help="Name of the first admin user.")] = "admin",
    config: ConfigOption = None,
) -> None:
    """Make the cluster's CA and join tokens in etcd, and an admin config for this user.

    Run once, before the first controller starts, on a host that reaches etcd. Prints the
    worker join token for the agents.

    Example: moor cluster init --etcd 10.0.0.5:2379 --controller 10.0.0.2:7420
    """
    import asyncio

    from controller import identity
    from controller.store import Store
    from moorage import pki
    from moorage.cli.config import config_path, write

    async def run() -> identity.Bootstrap:
        store = await Store.connect(etcd or [DEFAULT_ETCD], tls=etcd_tls(etcd_ca, etcd_cert, etcd_key))
        try:
            return await identity.bootstrap(store, cluster_id=cluster_id, admin=admin)
        finally:
            await store.close()

    try:
        made = asyncio.run(run())
    except (identity.IdentityError, pki.PKIError) as e:
        raise CommandError(str(e), EXIT_INVALID) from None
    path = write(config or config_path(), controller or ["127.0.0.1:7420"], made.ca, made.admin_cert, made.admin_key, name=admin)
    typer.echo(f"cluster initialised; admin config written to {path}")
    typer.echo(f"join agents with: moor agent --controller ... --join-token {made.worker_token}")


@app.command("join-token")
@reporting
def join_token(
    role: Annotated[str, typer.Argument(help="worker (agents) or admin (users).", metavar="worker|admin")],
    rotate: Annotated[bool, typer.Option("--rotate", help="Replace the secret: the old token stops working.")] = False,
    ttl: Annotated[
        float, typer.Option("--ttl", min=0, help="Seconds until the token expires (0: never; sets a new expiry).")
    ] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print the token only.")] = False,
    controller: ControllerOption = None,
) -> None:
    """Print a join token; rotating it stops new joins with the old one (joined nodes stay).

    Example: moor cluster join-token worker --rotate
    """
    from moorage.cli.config import connect

    with connect(controller) as client:
        token = client.join_token(role, rotate=rotate, ttl=ttl)
    if quiet:
        typer.echo(token.token)
        return
    expiry = f" (expires {token.expires_at.ToDatetime():%Y-%m-%d %H:%M} UTC)" if token.HasField("expires_at") else ""
    typer.echo(f"{token.role} join token{expiry}:\n{token.token}")


@app.command("user-cert")
@reporting
def user_cert(
    name: Annotated[str, typer.Argument(help="The user's name (the certificate's CN).")],
    role: Annotated[str, typer.Option("--role", help="admin, or readonly (get, describe, logs, events).")] = "readonly",
    out: Annotated[Path, typer.Option("--out", help="Where to write the user's config file.")] = Path("moor-user/config.yaml"),
    lifetime: Annotated[float, typer.Option("--lifetime", min=0, help="Seconds (0: 365 days).")] = 0,
    controller: ControllerOption = None,
) -> None:
    """Issue a certificate for a user and write a config file for them (key made here).

    Example: moor cluster user-cert alice --role readonly --out alice/config.yaml
    """
    from moorage import pki
    from moorage.cli.config import connect, write

    key = pki.new_key()
    with connect(controller) as client:
        issued = client.issue_user_certificate(name, role, pki.make_csr(key, name), lifetime)
        controllers = client.addresses
    path = write(out, controllers, issued.ca_certificate, issued.certificate, key, name=name)
    typer.echo(f"{issued.role} certificate for {issued.name} written with its config to {path} (use MOOR_CONFIG={path})")


@app.command("join")
@reporting
def join(
    token: Annotated[str, typer.Option("--token", envvar="MOOR_JOIN_TOKEN", help="An admin join token.")],
    name: Annotated[str, typer.Option("--name", help="Your user name (the certificate's CN).")],
    controller: Annotated[
        list[str], typer.Option("--controller", help="Controller address HOST:PORT; repeatable.")
    ],
    config: ConfigOption = None,
) -> None:
    """Join as an admin user with an admin join token: a key made here, a certificate, a config.

    Example: moor cluster join --token MOOR1-... --name alice --controller 10.0.0.2:7420
    """
    import asyncio

    import grpc

    from moorage import pki, tlsconfig
    from moorage.cli.config import config_path, write

    key = pki.new_key()
    try:
        joined = asyncio.run(tlsconfig.join(controller[0], token, key, name))
    except pki.PKIError as e:
        raise CommandError(str(e), EXIT_INVALID) from None
    except grpc.aio.AioRpcError as e:
        raise CommandError(f"join refused by {controller[0]}: {e.details()}") from None
    if joined.role != pki.ADMIN:
        raise CommandError(f"that token is a {joined.role} token: agents join with it, users need an admin token")
    path = write(config or config_path(), controller, joined.ca_certificate, joined.certificate, key, name=name)
    typer.echo(f"joined cluster {joined.cluster_id} as admin {joined.name}; config written to {path}")
