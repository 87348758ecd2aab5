"""Agent sessions: one long-lived bidirectional stream per node.

The agent registers (``controller.registration``, with its subnet claim in
``controller.subnets``), then receives the full set of its node's tasks
(``Assignments``, ``controller.assignments``) whenever they change, every node's
address and subnet (``controller.peers``), and reports ``TaskStatus``
(recorded in bursts, ``controller.status``). Log queries and exec calls travel
over the same stream (``controller.routes``). This module multiplexes the
stream: every message to an agent goes through its connection's outbox,
written by one writer task, so the stream is never written from two places at
once; every message from it is handed to the part it is for.

Liveness: each session holds an etcd lease with the node's TTL and keeps the
key ``/moorage/alive/<node>`` on it (``controller.heartbeats``); every
``Heartbeat`` renews the lease and is answered with a ``Heartbeat`` (the agent
fences itself, stopping its containers, after a node TTL without any message
from a controller). A node whose agent stops heartbeating (host dead,
partitioned, or its controller gone and no other one reached in time) loses
the key when the lease runs out, and the leader marks it down
(``controller.liveness``). A session that merely ends does not mark anything:
an agent restarted within the TTL finds its node still up. Any controller may
hold any node's session.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

import grpc
import structlog

from controller import authz, network
from controller.assignments import Assigner
from controller.cache import Cache
from controller.errors import StoreError
from controller.exec import exec_routes
from controller.heartbeats import NodeLease
from controller.logs import log_routes
from controller.peers import PeerUpdates
from controller.registration import register_node
from controller.status import StatusRecorder
from controller.store import Store
from moorage.v1 import agent_pb2, agent_pb2_grpc

log = structlog.get_logger("controller.sessions")

Context = grpc.aio.ServicerContext[agent_pb2.AgentMessage, agent_pb2.ControllerMessage]


async def _until(messages: AsyncIterator[agent_pb2.AgentMessage], ended: asyncio.Event) -> AsyncIterator[agent_pb2.AgentMessage]:
    """The session's messages until the stream ends or ``ended`` is set."""
    stop = asyncio.ensure_future(ended.wait())
    try:
        while True:
            message = asyncio.ensure_future(anext(messages, None))
            await asyncio.wait((message, stop), return_when=asyncio.FIRST_COMPLETED)
            if stop.done():
                message.cancel()
                return
            if (received := message.result()) is None:
                return
            yield received
    finally:
        stop.cancel()


@dataclass(eq=False)
class _Connection:
    node_id: str
    register: agent_pb2.Register
    lease: NodeLease
    assignments: Assigner
    peers: PeerUpdates
    statuses: StatusRecorder
    subnet: str = ""
    outbox: asyncio.Queue[agent_pb2.ControllerMessage] = field(default_factory=asyncio.Queue)
    serial: str = ""  # the serial of the certificate the session was opened with ("" when --insecure)
    ended: asyncio.Event = field(default_factory=asyncio.Event)  # set to end the session from outside
    end_reason: str = ""

    def send(self, message: agent_pb2.ControllerMessage) -> None:
        self.outbox.put_nowait(message)

    def end(self, reason: str) -> None:
        self.end_reason = reason
        self.ended.set()

    async def write(self, context: Context) -> None:
        """Write the outbox to the stream, in order (the only writer)."""
        while True:
            await context.write(await self.outbox.get())


class Sessions(agent_pb2_grpc.AgentSessionServicer):
    def __init__(
        self,
        store: Store,
        cache: Cache,
        *,
        node_ttl: float = 3.0,
        cluster_cidr: str = network.DEFAULT_CLUSTER_CIDR,
        masquerade: bool = True,
    ) -> None:
        self._store = store
        self._cache = cache  # assignments are read from it: a node's tasks, not every task
        self._cluster_cidr = str(network.check_cluster_cidr(cluster_cidr))
        self._masquerade = masquerade
        self._ttl = max(2, round(node_ttl))  # etcd leases count whole seconds (2 at least)
        self._connections: dict[str, _Connection] = {}
        # Calls relayed over the sessions: Control.Logs queries and Control.Exec calls.
        self.logs = log_routes(self._connections.get)
        self.execs = exec_routes(self._connections.get)

    # -- notifications from the task watch -------------------------------------------

    def nodes_changed(self, node_ids: Iterable[str]) -> None:
        for node_id in node_ids:
            if (conn := self._connections.get(node_id)) is not None:
                conn.assignments.changed()
        for conn in self._connections.values():
            if conn.assignments.links:  # a linked service's task may have moved: its endpoints are re-read
                conn.assignments.changed()

    def peers_changed(self) -> None:
        for conn in self._connections.values():
            conn.peers.changed()

    def all_changed(self) -> None:
        self.nodes_changed(list(self._connections))

    @property
    def heartbeat_interval(self) -> float:
        return self._ttl / 3

    def _end_routes(self, conn: _Connection) -> None:
        """End the log queries and exec calls that went out on ``conn`` (see Routes.session_ended)."""
        self.logs.session_ended(conn)
        self.execs.session_ended(conn)

    def disconnect(self, node_id: str) -> None:
        """End ``node_id``'s session here, if it has one (the node was removed)."""
        conn = self._connections.get(node_id)
        if conn is not None:
            log.info("ending the session of a removed node", node=node_id)
            conn.end(f"node {node_id} was removed")

    def certificate_revoked(self, serial: str) -> None:
        """End the session opened with the certificate ``serial``, if this controller holds it."""
        for conn in list(self._connections.values()):
            if conn.serial == serial:
                log.warning("ending a session: its certificate was revoked", node=conn.node_id, serial=serial)
                conn.end(f"the certificate of node {conn.node_id} was revoked")

    def _connect(self, node_id: str, register: agent_pb2.Register, serial: str) -> _Connection:
        outbox: asyncio.Queue[agent_pb2.ControllerMessage] = asyncio.Queue()
        return _Connection(
            node_id,
            register,
            serial=serial,
            lease=NodeLease(self._store, node_id, self._ttl),
            assignments=Assigner(node_id, self._cache, outbox.put_nowait),
            peers=PeerUpdates(node_id, self._store, outbox.put_nowait),
            statuses=StatusRecorder(node_id, self._store, self._cache),
            outbox=outbox,
        )

    # -- the session ----------------------------------------------------------------

    async def Session(  # noqa: N802 (gRPC method name)
        self,
        request_iterator: AsyncIterator[agent_pb2.AgentMessage],
        context: Context,
    ) -> None:
        messages = aiter(request_iterator)
        first = await anext(messages, None)
        if first is None or first.WhichOneof("body") != "register":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the first message of a session must be Register")
            return
        register = first.register
        node_id = register.node_id or register.hostname
        if not node_id:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Register needs a node_id or a hostname")
            return
        who = authz.caller()
        if who is not None and who.name != node_id:
            log.warning("session refused: node id is not the certificate's", node=node_id[:64], certificate=who.name)
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED, f"this certificate is node {who.name!r}'s, not {node_id[:64]!r}'s"
            )
            return
        bound = log.bind(node=node_id)
        conn = self._connect(node_id, register, who.serial_hex if who else "")
        await self._register(conn)
        if (replaced := self._connections.get(node_id)) is not None:
            self._end_routes(replaced)
        self._connections[node_id] = conn  # a newer session of the node replaces an older one
        registered = agent_pb2.Registered(
            node_id=node_id,
            heartbeat_interval=self.heartbeat_interval,
            subnet=conn.subnet,
            cluster_cidr=self._cluster_cidr,
            masquerade=self._masquerade,
            node_ttl=self._ttl,
        )
        conn.send(agent_pb2.ControllerMessage(registered=registered))
        conn.assignments.changed()
        conn.peers.changed()
        bound.info("agent registered", address=register.address, subnet=conn.subnet)
        helpers = [
            asyncio.create_task(conn.write(context)),
            asyncio.create_task(conn.assignments.run()),
            asyncio.create_task(conn.peers.run()),
            asyncio.create_task(conn.statuses.run()),
        ]
        try:
            async for message in _until(messages, conn.ended):
                await self._receive(conn, message)
            if conn.ended.is_set():
                await context.abort(grpc.StatusCode.PERMISSION_DENIED, conn.end_reason)
        finally:
            # Everything that must happen is done before the first await: once its peer is gone,
            # gRPC cancels this handler, and that cancellation lands in whatever it awaits next.
            self._end_routes(conn)
            if self._connections.get(node_id) is conn:
                del self._connections[node_id]
            # The lease is left to run out: an agent back within the TTL keeps its node up.
            bound.info("agent session ended")
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)

    async def _register(self, conn: _Connection) -> None:
        """Mark the node alive (a fresh lease) and READY."""
        await conn.lease.grant()
        conn.subnet = await register_node(self._store, conn.node_id, conn.register, self._cluster_cidr)

    async def _heartbeat(self, conn: _Connection) -> None:
        """Renew the node's lease; if it ran out meanwhile, the node was (or
        is about to be) marked down: register it afresh. Then answer, so that
        an agent whose lease is renewed never fences itself."""
        if not await conn.lease.renew():
            log.info("node lease had expired, registering again", node=conn.node_id)
            await self._register(conn)
        conn.send(agent_pb2.ControllerMessage(heartbeat=agent_pb2.Heartbeat()))

    async def _receive(self, conn: _Connection, message: agent_pb2.AgentMessage) -> None:
        kind = message.WhichOneof("body")
        if kind == "status":
            conn.statuses.report(message.status)
        elif kind == "heartbeat":
            try:
                await self._heartbeat(conn)
            except StoreError:
                log.warning("could not renew the node's lease", node=conn.node_id, exc_info=True)
        elif kind == "logs":
            self.logs.deliver(conn, message.logs.request_id, message.logs, last=message.logs.eof)
        elif kind == "exec":
            self.execs.deliver(conn, message.exec.request_id, message.exec)
        else:
            log.warning("unexpected agent message", node=conn.node_id, kind=kind)
