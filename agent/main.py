"""The agent daemon: one session to a controller, converging this host."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import structlog

from agent import host
from agent.converge import Converger
from agent.logs import LogServer
from agent.runtime.containers import Runtime
from agent.runtime.images import ImageStore
from moorage.v1 import agent_pb2, agent_pb2_grpc

log = structlog.get_logger("moorage.agent")

RECONNECT_MIN = 0.2
RECONNECT_MAX = 5.0
RUNTIME_THREADS = 16


class Agent:
    """Holds the outbound message queue that outlives each session."""

    def __init__(self, controller: str, state_dir: Path, register: agent_pb2.Register) -> None:
        self.controller = controller
        self.register = register
        self.images = ImageStore(state_dir / "images")
        self.runtime = Runtime(state_dir, self.images)
        self.pool = ThreadPoolExecutor(RUNTIME_THREADS, thread_name_prefix="runtime")
        self.outbox: asyncio.Queue[agent_pb2.AgentMessage] = asyncio.Queue()
        self.converger = Converger(self.runtime, self.images, self._report, self.pool)
        loop = asyncio.get_running_loop()
        self.logs = LogServer(
            self.runtime,
            lambda chunk: loop.call_soon_threadsafe(self.outbox.put_nowait, agent_pb2.AgentMessage(logs=chunk)),
        )

    def _report(self, status: agent_pb2.TaskStatus) -> None:
        log.info("task status", task=status.task_id, state=status.state, exit_code=status.exit_code)
        self.outbox.put_nowait(agent_pb2.AgentMessage(status=status))

    async def _outgoing(self) -> AsyncIterator[agent_pb2.AgentMessage]:
        yield agent_pb2.AgentMessage(register=self.register)
        while True:
            yield await self.outbox.get()

    async def session(self) -> None:
        """One session: register, then apply what the controller sends until the stream breaks."""
        async with grpc.aio.insecure_channel(self.controller) as channel:
            stub = agent_pb2_grpc.AgentSessionStub(channel)
            call = stub.Session(self._outgoing())
            async for message in call:
                kind = message.WhichOneof("body")
                if kind == "registered":
                    log.info("registered", controller=self.controller)
                    self.converger.resend_all()
                elif kind == "assignments":
                    tasks = {task.id: task for task in message.assignments.tasks}
                    log.info("assignments", version=message.assignments.version, tasks=len(tasks))
                    self.converger.assign(tasks)
                elif kind == "logs_query":
                    self.logs.handle(message.logs_query)

    async def run(self) -> None:
        converge = asyncio.create_task(self.converger.run())
        delay = RECONNECT_MIN
        try:
            while True:
                try:
                    await self.session()
                    delay = RECONNECT_MIN
                except grpc.aio.AioRpcError as err:
                    log.warning("session ended", controller=self.controller, code=err.code().name, reason=err.details())
                # Messages queued for a dead session are stale: the next one resends every status.
                while not self.outbox.empty():
                    self.outbox.get_nowait()
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX)
        finally:
            converge.cancel()
            self.pool.shutdown(wait=False, cancel_futures=True)


async def serve(
    controller: str,
    state_dir: Path,
    node_id: str | None = None,
    address: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> None:
    """Run the agent until cancelled."""
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
    await Agent(controller, state_dir, register).run()
