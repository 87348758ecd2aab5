"""The controller process: the gRPC API, agent sessions, watches and reconciler."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import grpc
import structlog

from controller.api import ControlService
from controller.reconciler import Reconciler
from controller.sessions import Sessions
from controller.store import Store
from controller.watches import Router, follow
from moorage.v1 import agent_pb2_grpc, control_pb2_grpc

log = structlog.get_logger("controller")

SHUTDOWN_GRACE = 2.0


async def serve(listen: Sequence[str], etcd_endpoints: Sequence[str], *, stop: asyncio.Event | None = None) -> None:
    """Serve Control and AgentSession on every ``listen`` address until ``stop`` is set."""
    store = await Store.connect(etcd_endpoints)
    sessions = Sessions(store)
    reconciler = Reconciler(store)
    server = grpc.aio.server()
    control_pb2_grpc.add_ControlServicer_to_server(ControlService(store, sessions), server)
    agent_pb2_grpc.add_AgentSessionServicer_to_server(sessions, server)
    background: list[asyncio.Task[None]] = []
    try:
        for address in listen:
            if server.add_insecure_port(address) == 0:
                raise OSError(f"cannot listen on {address}")
        background.append(asyncio.create_task(reconciler.run(), name="reconciler"))
        for prefix, handle in Router(reconciler, sessions).handlers().items():
            background.append(asyncio.create_task(follow(store, prefix, handle), name=f"watch {prefix}"))
        await server.start()
        log.info("controller ready", listen=list(listen), etcd=store.endpoint)
        await (stop.wait() if stop is not None else asyncio.Event().wait())
    finally:
        sessions.close()
        await server.stop(SHUTDOWN_GRACE)
        for task in background:
            task.cancel()
        for task in background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await store.close()
        log.info("controller stopped")
