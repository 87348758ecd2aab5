"""The controller process: the gRPC API, agent sessions, watches, and — while
it leads — the reconciler."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import socket
from collections.abc import Sequence

import grpc
import structlog

from controller import identity
from controller.api import ControlService
from controller.authz import Authorizer
from controller.cache import Cache
from controller.etcdtls import EtcdTLS
from controller.events import EventHub
from controller.identity import Authority
from controller.identity_api import IdentityService
from controller.leader import Election
from controller.network import DEFAULT_CLUSTER_CIDR
from controller.reconciler import Reconciler
from controller.sessions import Sessions
from controller.store import Store
from controller.tls import ServerCertificate, server_names
from controller.watches import Router, follow
from moorage import pki
from moorage.tlsconfig import join_address
from moorage.v1 import agent_pb2_grpc, control_pb2_grpc, identity_pb2_grpc
from scheduler import Config

log = structlog.get_logger("controller")

SHUTDOWN_GRACE = 2.0
DEFAULT_NODE_TTL = 3.0
LEADER_TTL = 2
# Both ends of an agent session ping it, so a silent peer (a killed host, a cut link) ends
# the stream within a few seconds: its log and exec routes end then, not at the node's TTL.
# Agents ping every second or so (agent.main.CHANNEL_OPTIONS): let them, however idle the
# stream. In current gRPC Core the wait for a ping's ack is ping_timeout_ms (60 s by default),
# keepalive_timeout_ms alone does not end the transport; and pings go on without data frames.
SERVER_OPTIONS = [
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 500),
    ("grpc.http2.max_ping_strikes", 0),
    ("grpc.keepalive_time_ms", 2000),
    ("grpc.keepalive_timeout_ms", 2000),
    ("grpc.http2.ping_timeout_ms", 2000),
    ("grpc.http2.max_pings_without_data", 0),
]


async def _authority(store: Store, node_cert_lifetime: dt.timedelta) -> Authority:
    record = await identity.load_cluster(store)
    if record is None:
        await store.close()
        raise identity.IdentityError(
            "etcd holds no cluster identity: run `moor cluster init` first (or start with --insecure for development)"
        )
    return Authority(store, record, node_cert_lifetime=node_cert_lifetime)


def default_controller_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


async def serve(
    listen: Sequence[str],
    etcd_endpoints: Sequence[str],
    *,
    stop: asyncio.Event | None = None,
    node_ttl: float = DEFAULT_NODE_TTL,
    controller_id: str | None = None,
    placement: Config = Config(),
    cluster_cidr: str = DEFAULT_CLUSTER_CIDR,
    masquerade: bool = True,
    insecure: bool = False,
    etcd_tls: EtcdTLS | None = None,
    node_cert_lifetime: dt.timedelta = pki.NODE_CERT_LIFETIME,
    join_listen: Sequence[str] | None = None,
) -> None:
    """Serve Control, Identity and AgentSession on every ``listen`` address until ``stop`` is set.

    Over mutual TLS with the cluster CA (made in etcd by `moor cluster init`), each call checked
    against its caller's certificate (controller/authz.py); ``insecure``: plaintext and no checks,
    for development only. ``join_listen``: where agents without a certificate yet join (server
    TLS only; default: each listen address's port + 1). ``etcd_tls``: speak TLS to etcd.

    ``node_ttl``: seconds without a heartbeat after which a node is marked down.
    ``placement``: the cluster's placement settings (strategy spread or binpack).
    ``cluster_cidr``: where node subnets (a /24 each) come from; ``masquerade``: whether
    agents NAT their containers' outbound traffic through their host address.
    """
    store = await Store.connect(etcd_endpoints, tls=etcd_tls)
    controller_id = controller_id or default_controller_id()
    authority = None if insecure else await _authority(store, node_cert_lifetime)
    events = EventHub()
    cache = Cache(store)
    sessions = Sessions(store, cache, node_ttl=node_ttl, cluster_cidr=cluster_cidr, masquerade=masquerade)
    reconciler = Reconciler(store, cache, node_ttl=node_ttl, placement=placement)
    election = Election(store, controller_id, ttl=LEADER_TTL)
    server = grpc.aio.server(options=SERVER_OPTIONS, interceptors=[Authorizer(authority)])
    control = ControlService(store, sessions, events, election, authority)
    control_pb2_grpc.add_ControlServicer_to_server(control, server)
    agent_pb2_grpc.add_AgentSessionServicer_to_server(sessions, server)
    background: list[asyncio.Task[None]] = []
    try:
        if authority is None:
            log.warning("serving without TLS and without access checks (--insecure): for development only")
            ports = [(address, server.add_insecure_port) for address in listen]
        else:
            identity_pb2_grpc.add_IdentityServicer_to_server(IdentityService(authority), server)
            certificate = ServerCertificate(authority, controller_id, server_names(listen))
            # A credentials object per port: gRPC asks each port's fetcher for its own first configuration.
            ports = [
                (address, lambda a, c=client_certificates: server.add_secure_port(a, certificate.credentials(client_certificates=c)))
                for addresses, client_certificates in ((listen, True), (join_listen or [join_address(a) for a in listen], False))
                for address in addresses
            ]
            background.append(asyncio.create_task(certificate.renew_forever(), name="certificate"))
            background.append(
                asyncio.create_task(authority.follow_revocations(sessions.certificate_revoked), name="revocations")
            )
        for address, add in ports:
            if add(address) == 0:
                raise OSError(f"cannot listen on {address}")
        background.append(asyncio.create_task(follow(store, cache, Router(reconciler, sessions, events)), name="watch"))
        await server.start()
        background.append(asyncio.create_task(election.run(reconciler.lead), name="election"))
        log.info(
            "controller ready", listen=list(listen), etcd=store.endpoint, id=controller_id, node_ttl=node_ttl,
            tls=authority is not None, cluster=authority.cluster_id if authority else None,
        )  # fmt: skip
        await (stop.wait() if stop is not None else asyncio.Event().wait())
    finally:
        await server.stop(SHUTDOWN_GRACE)
        for task in reversed(background):
            task.cancel()
        for task in background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await store.close()
        log.info("controller stopped")
