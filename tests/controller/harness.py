"""In-process controller and a fake agent that speaks the real AgentSession protocol."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aetcd
import grpc

from controller import identity
from controller.etcdtls import EtcdTLS
from controller.server import serve
from controller.store import Store
from moorage import pki, tlsconfig
from moorage.localcluster.procs import free_port_pair, port_open
from moorage.tlsconfig import ClientTLS
from moorage.v1 import agent_pb2, agent_pb2_grpc, control_pb2_grpc, identity_pb2, types_pb2

Predicate = Callable[[], bool] | Callable[[], Awaitable[bool]]


async def eventually(predicate: Predicate, what: str, timeout: float = 10.0, interval: float = 0.02) -> None:
    """Poll ``predicate`` (sync or async) until it holds; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}")
        await asyncio.sleep(interval)


@dataclass(frozen=True)
class TestPKI:
    """The cluster CA of a test's etcd: it signs the certificates the test's clients present."""

    record: identity_pb2.ClusterIdentity

    def credentials(self, name: str, role: str = pki.ADMIN) -> ClientTLS:
        key = pki.new_key()
        cert = pki.issue(
            self.record.ca_certificate, self.record.ca_key, pki.make_csr(key, name),
            name=name, role=role, lifetime=pki.NODE_CERT_LIFETIME,
        )  # fmt: skip
        return ClientTLS(self.record.ca_certificate, cert, key)


# Controller address -> its cluster's CA (absent for an --insecure controller).
CLUSTERS: dict[str, TestPKI] = {}


async def cluster_pki(endpoints: list[str], etcd_tls: EtcdTLS | None = None) -> TestPKI:
    """The CA in this etcd, made (as `moor cluster init` does) if there is none yet."""
    store = await Store.connect(endpoints, tls=etcd_tls)
    try:
        record = await identity.load_cluster(store) or await identity.init_cluster(store)
    finally:
        await store.close()
    return TestPKI(record)


def credentials(address: str, name: str = "test-admin", role: str = pki.ADMIN) -> ClientTLS | None:
    """Credentials for a client of the controller at ``address`` (None: it is --insecure)."""
    found = CLUSTERS.get(address)
    return found.credentials(name, role) if found is not None else None


@contextlib.asynccontextmanager
async def running_controller(etcd_endpoint: str | list[str], **options: Any) -> AsyncIterator[str]:
    """A controller serving on a free loopback port (``options`` go to ``serve``); yields its address.

    It serves TLS with the CA of its etcd (made on first use), unless ``insecure=True``.
    """
    port = free_port_pair()
    address = f"127.0.0.1:{port}"
    stop = asyncio.Event()
    endpoints = [etcd_endpoint] if isinstance(etcd_endpoint, str) else etcd_endpoint
    if not options.get("insecure"):
        CLUSTERS[address] = await cluster_pki(endpoints, options.get("etcd_tls"))
    server = asyncio.create_task(serve([address], endpoints, stop=stop, **options))

    def listening() -> bool:
        if server.done():
            server.result()  # raises what made the controller fail
            raise AssertionError("controller returned before it was stopped")
        return port_open("127.0.0.1", port)

    try:
        await eventually(listening, f"controller listening on {address}")
        yield address
    finally:
        stop.set()
        CLUSTERS.pop(address, None)
        await server


@contextlib.asynccontextmanager
async def control(address: str, role: str = pki.ADMIN) -> AsyncIterator[control_pb2_grpc.ControlStub]:
    """A Control stub of the controller at ``address``, as a user of ``role``."""
    async with tlsconfig.aio_channel(address, credentials(address, f"test-{role}", role)) as channel:
        yield control_pb2_grpc.ControlStub(channel)


async def etcd_keys(endpoint: str, prefix: str = "/moorage/") -> dict[str, bytes]:
    """Every key under ``prefix``, read straight from etcd."""
    host, _, port = endpoint.rpartition(":")
    async with aetcd.Client(host=host, port=int(port)) as client:
        return {kv.key.decode(): kv.value for kv in await client.get_prefix(prefix.encode())}


@dataclass
class FakeAgent:
    """A real gRPC client of AgentSession, driven by the test instead of a runtime.

    It answers every LogsQuery for a task in ``log_lines`` with one chunk.
    """

    address: str
    node_id: str
    log_lines: dict[str, list[str]] = field(default_factory=dict)
    cluster: str = ""  # the controller whose CA signs this agent's certificate (default: ``address``)
    assignments: agent_pb2.Assignments | None = None
    versions: list[int] = field(default_factory=list)
    registered: str | None = None
    node_ttl: float = 0.0  # as Registered told it
    answered_heartbeats: int = 0
    cancelled_queries: list[str] = field(default_factory=list)
    _outbox: asyncio.Queue[agent_pb2.AgentMessage | None] = field(default_factory=asyncio.Queue)
    _channel: grpc.aio.Channel | None = None
    _reader: asyncio.Task[None] | None = None

    async def start(self) -> FakeAgent:
        tls = credentials(self.cluster or self.address, self.node_id, pki.WORKER)
        self._channel = tlsconfig.aio_channel(self.address, tls)
        call = agent_pb2_grpc.AgentSessionStub(self._channel).Session(self._requests())
        register = agent_pb2.Register(
            node_id=self.node_id,
            hostname=self.node_id,
            address="10.231.0.9",
            resources=types_pb2.Resources(cpu_millis=2000, memory_bytes=1 << 30),
            labels={"zone": "test"},
        )
        self.send(agent_pb2.AgentMessage(register=register))
        self._reader = asyncio.create_task(self._read(call))
        await eventually(lambda: self.registered is not None, f"{self.node_id} registered")
        return self

    async def close(self) -> None:
        self._outbox.put_nowait(None)
        if self._reader is not None:
            await asyncio.wait_for(self._reader, 10)
        if self._channel is not None:
            await self._channel.close()

    def send(self, message: agent_pb2.AgentMessage) -> None:
        self._outbox.put_nowait(message)

    def heartbeat(self) -> None:
        self.send(agent_pb2.AgentMessage(heartbeat=agent_pb2.Heartbeat()))

    def report(self, task_id: str, state: types_pb2.TaskState, container_id: str = "") -> None:
        status = agent_pb2.TaskStatus(task_id=task_id, state=state, container_id=container_id or f"ctr-{task_id}")
        self.send(agent_pb2.AgentMessage(status=status))

    def tasks(self, desired: types_pb2.TaskState | None = None) -> list[types_pb2.Task]:
        tasks = list(self.assignments.tasks) if self.assignments is not None else []
        return [t for t in tasks if desired is None or t.desired_state == desired]

    async def _requests(self) -> AsyncIterator[agent_pb2.AgentMessage]:
        while (message := await self._outbox.get()) is not None:
            yield message

    async def _read(self, call: AsyncIterator[agent_pb2.ControllerMessage]) -> None:
        with contextlib.suppress(grpc.aio.AioRpcError):
            async for message in call:
                kind = message.WhichOneof("body")
                if kind == "registered":
                    self.registered = message.registered.node_id
                    self.node_ttl = message.registered.node_ttl
                elif kind == "heartbeat":
                    self.answered_heartbeats += 1
                elif kind == "assignments":
                    self.assignments = message.assignments
                    self.versions.append(message.assignments.version)
                elif kind == "logs_query":
                    self._answer(message.logs_query)

    def _answer(self, query: agent_pb2.LogsQuery) -> None:
        if query.cancel:
            self.cancelled_queries.append(query.request_id)
            return
        entries = [
            types_pb2.LogEntry(stream="stdout", line=line, time={"seconds": 1_700_000_000 + i})
            for i, line in enumerate(self.log_lines.get(query.task_id, []))
        ]
        chunk = agent_pb2.LogChunk(request_id=query.request_id, entries=entries, eof=not query.follow)
        self.send(agent_pb2.AgentMessage(logs=chunk))


@contextlib.asynccontextmanager
async def agents(address: str, *node_ids: str) -> AsyncIterator[list[FakeAgent]]:
    started: list[FakeAgent] = []
    try:
        for node_id in node_ids:
            started.append(await FakeAgent(address, node_id).start())
        yield started
    finally:
        for agent in started:
            await agent.close()
