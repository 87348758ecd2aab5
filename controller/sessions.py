"""Agent sessions: one long-lived bidirectional stream per node.

The agent registers, then receives the full set of its node's tasks
(``Assignments``) whenever they change, and reports ``TaskStatus``. Log queries
of ``Logs`` calls travel over the same stream (``LogsQuery`` down, ``LogChunk``
up). Every message to an agent goes through its connection's outbox, written
by one writer task, so the stream is never written from two places at once.

Liveness: each session holds an etcd lease with the node's TTL and keeps the
key ``/moorage/alive/<node>`` on it; every ``Heartbeat`` renews the lease and
is answered with a ``Heartbeat`` (the agent fences itself, stopping its
containers, after a node TTL without any message from a controller). A
node whose agent stops heartbeating (host dead, partitioned, or its
controller gone and no other one reached in time) loses the key when the
lease runs out, and the leader marks it down (``controller.liveness``). A
session that merely ends does not mark anything: an agent restarted within
the TTL finds its node still up. Any controller may hold any node's session.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

import grpc
import structlog

from controller import authz, network
from controller.cache import Cache
from controller.clock import now
from controller.errors import StoreError
from controller.exec import exec_routes
from controller.routes import Routes
from controller.slots import FINISHED
from controller.store import Put, Store, alive_key, node_key, retry_on_conflict, task_key
from moorage.v1 import agent_pb2, agent_pb2_grpc, types_pb2

log = structlog.get_logger("controller.sessions")

MAX_TXN_OPS = 128  # etcd's default --max-txn-ops: the most reports one transaction records
MAX_PENDING_STATUSES = 10_000  # unrecorded reports one session may hold (one per task it names)


def apply_status(task: types_pb2.Task, status: agent_pb2.TaskStatus) -> types_pb2.Task:
    """``task`` with what its agent observed (``updated_at`` untouched, so an
    unchanged report compares equal to the task)."""
    updated = types_pb2.Task()
    updated.CopyFrom(task)
    updated.observed_state = status.state
    updated.container_id = status.container_id
    updated.exit_code = status.exit_code
    updated.message = status.message
    updated.address = status.address
    if status.HasField("started_at"):
        updated.started_at.CopyFrom(status.started_at)
    if status.HasField("finished_at"):
        updated.finished_at.CopyFrom(status.finished_at)
    return updated


def recorded_shutdown(task: types_pb2.Task, status: agent_pb2.TaskStatus) -> types_pb2.Task:
    """``task`` once its agent stopped its container: an exit it had already
    reported (code and all) stays the task's final state, for the history."""
    if task.observed_state in FINISHED:
        return task
    updated = apply_status(task, status)
    if not status.HasField("finished_at"):
        updated.finished_at.CopyFrom(now())
    return updated


def recorded(task: types_pb2.Task, status: agent_pb2.TaskStatus) -> types_pb2.Task | None:
    """``task`` as it is to be written with its agent's report, stamped; None if the report changes nothing."""
    if task.desired_state == types_pb2.TASK_STATE_SHUTDOWN and status.state == types_pb2.TASK_STATE_SHUTDOWN:
        updated = recorded_shutdown(task, status)
    else:
        updated = apply_status(task, status)
    if updated == task:
        return None
    updated.updated_at.CopyFrom(now())
    return updated


def desired_view(tasks: Iterable[types_pb2.Task]) -> list[tuple[str, int, bytes]]:
    """What an agent must act on: which tasks, their desired state and spec.

    Status reports change the observed fields of a task; resending Assignments
    for those alone would only echo the agent's own report back to it.
    """
    return sorted((t.id, t.desired_state, t.spec.SerializeToString(deterministic=True)) for t in tasks)


def _log_query_ended(request_id: str, why: str) -> agent_pb2.LogChunk:
    """The last chunk of a log query whose session ended."""
    return agent_pb2.LogChunk(request_id=request_id, eof=True, error=why)


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
    lease: int = 0
    # The latest unrecorded status of each task: a burst of reports is coalesced
    # and never holds up the heartbeats behind it.
    statuses: dict[str, agent_pb2.TaskStatus] = field(default_factory=dict)
    reported: asyncio.Event = field(default_factory=asyncio.Event)
    subnet: str = ""
    links: list[str] = field(default_factory=list)  # services its tasks link to
    outbox: asyncio.Queue[agent_pb2.ControllerMessage] = field(default_factory=asyncio.Queue)
    dirty: asyncio.Event = field(default_factory=asyncio.Event)
    peers_dirty: asyncio.Event = field(default_factory=asyncio.Event)
    serial: str = ""  # the serial of the certificate the session was opened with ("" when --insecure)
    ended: asyncio.Event = field(default_factory=asyncio.Event)  # set to end the session from outside
    end_reason: str = ""

    def end(self, reason: str) -> None:
        self.end_reason = reason
        self.ended.set()

    def send(self, message: agent_pb2.ControllerMessage) -> None:
        self.outbox.put_nowait(message)


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
        self.logs: Routes[agent_pb2.LogChunk] = Routes(self._connections.get, _log_query_ended)
        self.execs = exec_routes(self._connections.get)

    # -- notifications from the task watch -------------------------------------------

    def nodes_changed(self, node_ids: Iterable[str]) -> None:
        for node_id in node_ids:
            if (conn := self._connections.get(node_id)) is not None:
                conn.dirty.set()
        for conn in self._connections.values():
            if conn.links:  # a linked service's task may have moved: its endpoints are re-read
                conn.dirty.set()

    def peers_changed(self) -> None:
        for conn in self._connections.values():
            conn.peers_dirty.set()

    def all_changed(self) -> None:
        self.nodes_changed(list(self._connections))

    @property
    def heartbeat_interval(self) -> float:
        return self._ttl / 3

    def _end_routes(self, conn: _Connection) -> None:
        """End the log queries and exec calls that went out on ``conn`` (see Routes.session_ended)."""
        self.logs.session_ended(conn)
        self.execs.session_ended(conn)

    # -- the session ----------------------------------------------------------------

    async def Session(  # noqa: N802 (gRPC method name)
        self,
        request_iterator: AsyncIterator[agent_pb2.AgentMessage],
        context: grpc.aio.ServicerContext[agent_pb2.AgentMessage, agent_pb2.ControllerMessage],
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
        conn = _Connection(node_id, register, serial=who.serial_hex if who else "")
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
        conn.dirty.set()
        conn.peers_dirty.set()
        bound.info("agent registered", address=register.address, subnet=conn.subnet)
        helpers = [
            asyncio.create_task(self._write(conn, context)),
            asyncio.create_task(self._assign(conn)),
            asyncio.create_task(self._peers(conn)),
            asyncio.create_task(self._record(conn)),
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

    async def _register(self, conn: _Connection) -> None:
        """Mark the node alive (a fresh lease) and READY, keeping what the
        cluster set on it (availability, labels, subnet) under the agent's own."""
        register = conn.register
        conn.lease = await self._store.grant(self._ttl)
        await self._store.put_leased(alive_key(conn.node_id), b"", conn.lease)

        async def upsert() -> None:
            existing = await self._store.get_node(conn.node_id)
            stamp = now()
            node = types_pb2.Node()
            if existing is not None:
                node.CopyFrom(existing)
            else:
                node.registered_at.CopyFrom(stamp)
            node.id, node.hostname, node.address = conn.node_id, register.hostname, register.address
            node.labels.update(register.labels)
            node.state = types_pb2.NODE_STATE_READY
            node.resources.CopyFrom(register.resources)
            node.last_seen.CopyFrom(stamp)
            claim = [] if node.subnet else await self._claim_subnet(node)
            await self._store.commit([Put(node_key(conn.node_id), node, existing.version if existing else 0), *claim])
            conn.subnet = node.subnet

        await retry_on_conflict(upsert)

    async def _claim_subnet(self, node: types_pb2.Node) -> list[Put]:
        """Give ``node`` the first free /24 of the cluster CIDR; the claim to commit with it (none if
        the node had claimed it before). A claim made meanwhile by another node fails the commit."""
        used = [n.subnet for n in (await self._store.list_nodes()).items if n.id != node.id]
        for subnet in network.candidates(self._cluster_cidr, used):
            raw = await self._store.get_raw(network.subnet_key(subnet))
            owner = types_pb2.Node.FromString(raw).id if raw is not None else None
            if owner is None or owner == node.id:
                node.subnet = subnet
                return [Put(network.subnet_key(subnet), types_pb2.Node(id=node.id), 0)] if owner is None else []
        raise StoreError(f"no free /{network.NODE_PREFIX} left in the cluster CIDR {self._cluster_cidr}")

    async def _heartbeat(self, conn: _Connection) -> None:
        """Renew the node's lease; if it ran out meanwhile, the node was (or
        is about to be) marked down: register it afresh. Then answer, so that
        an agent whose lease is renewed never fences itself."""
        if not await self._store.refresh(conn.lease):
            log.info("node lease had expired, registering again", node=conn.node_id)
            await self._register(conn)
        conn.send(agent_pb2.ControllerMessage(heartbeat=agent_pb2.Heartbeat()))

    async def _write(
        self,
        conn: _Connection,
        context: grpc.aio.ServicerContext[agent_pb2.AgentMessage, agent_pb2.ControllerMessage],
    ) -> None:
        while True:
            await context.write(await conn.outbox.get())

    async def _assign(self, conn: _Connection) -> None:
        """Send the node its tasks each time they (may) have changed."""
        sent: tuple[list[tuple[str, int, bytes]], list[bytes]] | None = None
        while True:
            await conn.dirty.wait()
            conn.dirty.clear()
            try:
                await self._cache.fresh()
                listing = self._cache.tasks(node_id=conn.node_id)
            except Exception:
                log.warning("could not read assignments, retrying", node=conn.node_id, exc_info=True)
                await asyncio.sleep(0.5)
                conn.dirty.set()
                continue
            # All of them, the ended history too: the agent keeps its containers (and logs) until it is pruned.
            tasks = listing.items
            conn.links = network.linked_services(tasks)
            linked = [network.endpoints(service, self._cache.tasks(service=service).items) for service in conn.links]
            view = (desired_view(tasks), [e.SerializeToString(deterministic=True) for e in linked])
            if view == sent:
                continue
            sent = view
            # The etcd revision of the read: increases across sessions and controllers.
            assignments = agent_pb2.Assignments(version=listing.revision, tasks=tasks, endpoints=linked)
            conn.send(agent_pb2.ControllerMessage(assignments=assignments))

    async def _peers(self, conn: _Connection) -> None:
        """Send the node every node's address and subnet (for its routes) each time they change."""
        sent: agent_pb2.Peers | None = None
        while True:
            await conn.peers_dirty.wait()
            conn.peers_dirty.clear()
            try:
                peers = network.peers((await self._store.list_nodes()).items)
            except StoreError:
                log.warning("could not read the nodes, retrying", node=conn.node_id, exc_info=True)
                await asyncio.sleep(0.5)
                conn.peers_dirty.set()
                continue
            if peers != sent:
                sent = peers
                conn.send(agent_pb2.ControllerMessage(peers=peers))

    async def _receive(self, conn: _Connection, message: agent_pb2.AgentMessage) -> None:
        kind = message.WhichOneof("body")
        if kind == "status":
            if len(conn.statuses) >= MAX_PENDING_STATUSES and message.status.task_id not in conn.statuses:
                log.warning("dropping a status report: too many unrecorded ones", node=conn.node_id)
                return
            conn.statuses[message.status.task_id] = message.status
            conn.reported.set()
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

    async def _record(self, conn: _Connection) -> None:
        """Write the agent's reports to etcd, in the background of the session.

        Whatever arrived since the last write is one burst, recorded in one transaction
        (``MAX_TXN_OPS`` reports at most): an apply's thirty containers starting at
        once cost a few transactions, not a read and a transaction each.
        """
        while True:
            await conn.reported.wait()
            conn.reported.clear()
            batch, conn.statuses = list(conn.statuses.values()), {}
            for start in range(0, len(batch), MAX_TXN_OPS):
                burst = batch[start : start + MAX_TXN_OPS]
                try:
                    await self._record_burst(conn.node_id, burst)
                except Exception:
                    tasks = [status.task_id for status in burst]
                    log.error("could not record task statuses", node=conn.node_id, tasks=tasks, exc_info=True)

    async def _record_burst(self, node_id: str, statuses: list[agent_pb2.TaskStatus]) -> None:
        """Write the tasks these reports change in one transaction comparing each one's revision.

        The tasks are read from the cache as it is when every report changes its task: a stale
        read then only fails the compare. A report that would change nothing (or whose task the
        cache does not hold) is decided on a read as fresh as etcd, as is every retry after a
        conflict, which drops the reports that no longer change anything and recomputes the
        tasks that moved; the others are written as before.
        """
        attempts = 0

        async def step() -> None:
            nonlocal attempts
            first, attempts = attempts == 0, attempts + 1
            if not first:  # a conflict: the cache was behind etcd
                await self._cache.fresh()
            puts = self._changes(node_id, statuses, final=not first)
            if first and len(puts) < len(statuses):
                await self._cache.fresh()
                puts = self._changes(node_id, statuses, final=True)
            if puts:
                await self._store.commit(puts)

        await retry_on_conflict(step)

    def _changes(self, node_id: str, statuses: list[agent_pb2.TaskStatus], *, final: bool) -> list[Put]:
        """The writes ``statuses`` make to the cached tasks of ``node_id``; ``final``: log the ignored ones."""
        held = {task.id: task for task in self._cache.tasks(node_id=node_id).items}
        puts = []
        for status in statuses:
            task = held.get(status.task_id)
            if task is None:
                if final:
                    log.info("ignoring status of a task this node does not hold", node=node_id, task=status.task_id)
            elif (updated := recorded(task, status)) is not None:
                puts.append(Put(task_key(task.id), updated, task.version))
        return puts
