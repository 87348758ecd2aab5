"""The agent daemon: one session to a controller, converging this host.

The agent knows every controller's address and keeps a session with one of
them, moving to the next when a session breaks or cannot be opened. While a
session lasts it heartbeats at the interval the controller asked for; gRPC
keepalive pings detect a silent peer (a partition), so a dead session ends
within a few seconds instead of hanging. An agent that hears no controller for
a node TTL fences itself (agent.fence): it removes every container, and takes
up assignments again only in a new session.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import socket
import time
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import structlog

from agent import host
from agent.converge import Converger
from agent.exec import ExecServer
from agent.fence import Fence
from agent.identity import NodeIdentity
from agent.logs import LogServer
from agent.network import NetworkError, NodeNetwork
from agent.runtime.containers import forkserver
from agent.runtime.containers.containers import Runtime
from agent.runtime.images.spec import Limits
from agent.runtime.images.store import ImageStore
from agent.runtime.images.registry import RegistrySettings
from moorage import tlsconfig
from moorage.v1 import agent_pb2, agent_pb2_grpc

log = structlog.get_logger("moorage.agent")

RECONNECT_MIN = 0.2
RECONNECT_MAX = 5.0
RUNTIME_THREADS = 16
DEFAULT_HEARTBEAT = 1.0
FENCE_CHECK = 0.1  # seconds between looks at the fence clock
CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 1000),
    ("grpc.keepalive_timeout_ms", 2000),
    ("grpc.http2.ping_timeout_ms", 2000),  # current gRPC Core waits this long for an ack, not the above
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]


def controller_list(value: str) -> list[str]:
    """``"a:1,b:2"`` → ``["a:1", "b:2"]``; at least one address."""
    addresses = [part.strip() for part in value.split(",") if part.strip()]
    if not addresses:
        raise ValueError(f"no controller address in {value!r}")
    return addresses


class Agent:
    """Holds the outbound message queue that outlives each session."""

    def __init__(
        self,
        controllers: list[str],
        state_dir: Path,
        register: agent_pb2.Register,
        *,
        identity: NodeIdentity | None = None,
        join_token: str | None = None,
        image_limits: Limits | None = None,
    ) -> None:
        self.controllers = controllers
        self.register = register
        self.identity = identity  # None: an --insecure cluster, plaintext
        self.join_token = join_token
        self.images = ImageStore(state_dir / "images", image_limits)
        self.runtime = Runtime(state_dir, self.images)
        self.pool = ThreadPoolExecutor(RUNTIME_THREADS, thread_name_prefix="runtime")
        self.outbox: asyncio.Queue[agent_pb2.AgentMessage] = asyncio.Queue()
        self.registered = False  # the current session got as far as Registered
        self.fence = Fence()
        self.network = NodeNetwork(state_dir, register.address)
        self.converger = Converger(self.runtime, self.images, self._report, self.pool, self.network)
        loop = asyncio.get_running_loop()
        self.logs = LogServer(
            self.runtime,
            lambda chunk: loop.call_soon_threadsafe(self.outbox.put_nowait, agent_pb2.AgentMessage(logs=chunk)),
        )
        self.execs = ExecServer(
            self.runtime,
            lambda chunk: loop.call_soon_threadsafe(self.outbox.put_nowait, agent_pb2.AgentMessage(exec=chunk)),
        )

    def _report(self, status: agent_pb2.TaskStatus) -> None:
        log.info("task status", task=status.task_id, state=status.state, exit_code=status.exit_code)
        self.outbox.put_nowait(agent_pb2.AgentMessage(status=status))

    async def _outgoing(self) -> AsyncIterator[agent_pb2.AgentMessage]:
        yield agent_pb2.AgentMessage(register=self.register)
        while True:
            yield await self.outbox.get()

    async def _heartbeat(self, interval: float) -> None:
        while True:
            self.outbox.put_nowait(agent_pb2.AgentMessage(heartbeat=agent_pb2.Heartbeat()))
            await asyncio.sleep(interval)

    async def session(self, controller: str) -> None:
        """One session: register, then apply what the controller sends until the stream breaks."""
        heartbeat: asyncio.Task[None] | None = None
        renewal: asyncio.Task[None] | None = None
        tls = None
        if self.identity is not None:
            tls = await self.identity.ensure(self.controllers, self.join_token)  # a certificate that expired offline: rejoin
        try:
            async with tlsconfig.aio_channel(controller, tls, options=CHANNEL_OPTIONS) as channel:
                if self.identity is not None:
                    renewal = asyncio.create_task(self.identity.renew_forever(channel))
                call = agent_pb2_grpc.AgentSessionStub(channel).Session(self._outgoing())
                async for message in call:
                    kind = message.WhichOneof("body")
                    if kind != "registered" and self.fence.fenced:
                        # The assignments it dropped are sent again only to a new session.
                        log.info("ending the session of a fenced agent", controller=controller)
                        return
                    self.fence.heard(time.monotonic())
                    if kind == "registered":
                        log.info("registered", controller=controller)
                        self.registered = True
                        self.fence.registered(message.registered.node_ttl)
                        interval = message.registered.heartbeat_interval or DEFAULT_HEARTBEAT
                        heartbeat = heartbeat or asyncio.create_task(self._heartbeat(interval))
                    await self._network_changes(message)
                    self._handle(message)
        finally:
            for helper in (heartbeat, renewal):
                if helper is not None:
                    helper.cancel()

    async def _watch_fence(self) -> None:
        """Fence once the controllers have been silent for a node TTL."""
        while True:
            await asyncio.sleep(FENCE_CHECK)
            now = time.monotonic()
            if self.fence.due(now):
                silence = self.fence.silence(now)
                log.warning(f"fenced: no word from any controller for {silence:.1f} s", ttl=self.fence.ttl)
                self.converger.assign({})  # nothing is ours any more: every container is stopped and removed

    async def _network_changes(self, message: agent_pb2.ControllerMessage) -> None:
        """The bridge and NAT after Registered (before any assignment), routes after Peers."""
        loop = asyncio.get_running_loop()
        kind = message.WhichOneof("body")
        try:
            if kind == "registered" and message.registered.subnet:
                r = message.registered
                await loop.run_in_executor(self.pool, self.network.configure, r.subnet, r.cluster_cidr, r.masquerade)
            elif kind == "peers":
                peers = {node.subnet: node.address for node in message.peers.nodes if node.id != self.register.node_id}
                await loop.run_in_executor(self.pool, self.network.set_peers, peers)
        except (NetworkError, OSError) as err:
            log.error("could not set up the host network", step=kind, reason=str(err))

    def _handle(self, message: agent_pb2.ControllerMessage) -> None:
        kind = message.WhichOneof("body")
        if kind == "registered":
            self.converger.resend_all()
        elif kind == "assignments":
            tasks = {task.id: task for task in message.assignments.tasks}
            log.info("assignments", version=message.assignments.version, tasks=len(tasks))
            endpoints = {
                linked.service: [e.address for e in linked.endpoints if e.address]
                for linked in message.assignments.endpoints
            }
            self.converger.assign(tasks, endpoints)
        elif kind == "logs_query":
            self.logs.handle(message.logs_query)
        elif kind == "exec":
            self.execs.handle(message.exec)

    async def run(self) -> None:
        """Keep a session with some controller: after a failure try the next
        one at once, and back off only once every controller has failed."""
        # The fork server (an interpreter importing the runtime, then its first standby) is
        # started now rather than by the first container start, which would wait for it.
        await asyncio.get_running_loop().run_in_executor(self.pool, forkserver.start)
        converge = asyncio.create_task(self.converger.run())
        fence = asyncio.create_task(self._watch_fence())
        delay = RECONNECT_MIN
        failures = 0
        try:
            for attempt in itertools.count():
                controller = self.controllers[attempt % len(self.controllers)]
                self.registered = False
                try:
                    await self.session(controller)
                except grpc.aio.AioRpcError as err:
                    log.warning("session ended", controller=controller, code=err.code().name, reason=err.details())
                failures, delay = (0, RECONNECT_MIN) if self.registered else (failures + 1, delay)
                # Messages queued for a dead session are stale: the next one resends every status.
                while not self.outbox.empty():
                    self.outbox.get_nowait()
                if not failures:
                    await asyncio.sleep(RECONNECT_MIN)
                elif failures % len(self.controllers) == 0:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RECONNECT_MAX)
        finally:
            converge.cancel()
            fence.cancel()
            self.pool.shutdown(wait=False, cancel_futures=True)


async def serve(
    controller: str,
    state_dir: Path,
    node_id: str | None = None,
    address: str | None = None,
    labels: Mapping[str, str] | None = None,
    registry: RegistrySettings | None = None,
    cleanup: bool = False,
    join_token: str | None = None,
    insecure: bool = False,
    image_limits: Limits | None = None,
) -> None:
    """Run the agent until cancelled; ``controller`` may list several addresses, comma-separated.

    The node talks to the controllers over mutual TLS with the certificate in its state
    directory, joining with ``join_token`` when it has none valid (agent/identity.py);
    ``insecure``: plaintext, for an --insecure controller.

    With ``cleanup``, SIGTERM/SIGINT end it gracefully and the host network (bridge, routes,
    NAT table) is removed on the way out.
    """
    hostname = socket.gethostname()
    register = agent_pb2.Register(
        node_id=node_id or hostname,
        hostname=hostname,
        address=address or host.default_address(),
        resources=host.resources(),
        labels=dict(labels or {}),
    )
    structlog.contextvars.bind_contextvars(node=register.node_id)
    state_dir.mkdir(parents=True, exist_ok=True)
    log.info("agent starting", controller=controller, state_dir=str(state_dir), address=register.address)
    identity = None if insecure else NodeIdentity(state_dir, register.node_id)
    agent = Agent(controller_list(controller), state_dir, register, identity=identity, join_token=join_token,
                  image_limits=image_limits)
    agent.converger.registry = registry or RegistrySettings()
    if not cleanup:
        await agent.run()
        return
    loop = asyncio.get_running_loop()
    running = asyncio.current_task()
    assert running is not None
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, running.cancel)
    try:
        await agent.run()
    except asyncio.CancelledError:
        log.info("agent stopping: removing the host network")
    finally:
        await asyncio.to_thread(agent.network.cleanup)  # netlink off the event loop
