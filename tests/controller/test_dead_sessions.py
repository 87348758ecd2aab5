"""Sessions that are gone without a word: an exec call sent on a session that a restarted agent
replaced, or on a session whose peer went silent (a partition: the controller's keepalive pings
end its stream), ends with an error instead of hanging. Status reports sent together are recorded."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc

from moorage.localcluster.etcd import Etcd
from moorage.localcluster.procs import free_port
from moorage.v1 import agent_pb2, control_pb2, control_pb2_grpc, types_pb2

from tests.controller.harness import FakeAgent, agents, control, eventually, running_controller
from tests.controller.test_controller import RUNNING, apply, run, spec, tasks

# Generous: the keepalive needs a few seconds, a loaded machine more.
ENDED_WITHIN = 40.0
NODE_TTL = 120.0  # the fake agents do not heartbeat: their node must not be marked down meanwhile


@dataclass
class ExecAgent(FakeAgent):
    """A fake agent that notes the exec calls relayed to it (and never answers them)."""

    exec_requests: set[str] = field(default_factory=set)  # the calls' ids (a start, then stdin's close)

    async def _read(self, call: AsyncIterator[agent_pb2.ControllerMessage]) -> None:
        async def noted() -> AsyncIterator[agent_pb2.ControllerMessage]:
            async for message in call:
                if message.WhichOneof("body") == "exec":
                    self.exec_requests.add(message.exec.request_id)
                yield message

        await super()._read(noted())


class Relay:
    """A loopback TCP relay to the controller that can be cut: it then stops passing bytes
    either way but keeps both connections open, as a dropped link does."""

    def __init__(self, target: str) -> None:
        self._host, _, port = target.rpartition(":")
        self._port = int(port)
        self._cut = asyncio.Event()
        self._writers: list[asyncio.StreamWriter] = []
        self._pumps: list[asyncio.Task[None]] = []
        self.address = ""
        self._server: asyncio.Server | None = None

    async def start(self) -> Relay:
        port = free_port()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", port)
        self.address = f"127.0.0.1:{port}"
        return self

    def cut(self) -> None:
        self._cut.set()

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for pump in self._pumps:
            pump.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(self._host, self._port)
        self._writers += [writer, upstream_writer]
        self._pumps += [
            asyncio.create_task(self._pump(reader, upstream_writer)),
            asyncio.create_task(self._pump(upstream_reader, writer)),
        ]

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            if self._cut.is_set():
                await asyncio.Event().wait()  # silently dropped, and nothing more is read
            writer.write(data)
            await writer.drain()


@contextlib.asynccontextmanager
async def relay_to(address: str) -> AsyncIterator[Relay]:
    relay = await Relay(address).start()
    try:
        yield relay
    finally:
        await relay.close()


async def running_web_task(stub: control_pb2_grpc.ControlStub, agent: FakeAgent) -> types_pb2.Task:
    await apply(stub, spec("web"))
    await eventually(lambda: len(agent.tasks(RUNNING)) == 1, "task assigned")
    (task,) = agent.tasks()
    agent.report(task.id, RUNNING)

    async def recorded() -> bool:
        return [t.observed_state for t in await tasks(stub, "web")] == [RUNNING]

    await eventually(recorded, "the task recorded running")
    return task


async def exec_error(stub: control_pb2_grpc.ControlStub, task_id: str) -> grpc.aio.AioRpcError:
    """Run ``sh`` in the task (the fake agent never answers) until the call fails; its error."""
    start = control_pb2.ExecStart(task_id=task_id, command=["sh"])
    call = stub.Exec(iter([control_pb2.ExecInput(start=start)]))
    try:
        async with asyncio.timeout(ENDED_WITHIN):
            async for output in call:
                raise AssertionError(f"the fake agent never answers an exec, got {output}")
    except grpc.aio.AioRpcError as error:
        return error
    raise AssertionError("the exec call ended without an error")


def assert_disconnected(error: grpc.aio.AioRpcError) -> None:
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error
    assert error.details() == "node node-a disconnected"


def test_an_exec_on_a_replaced_session_ends_with_an_error(etcd: Etcd) -> None:
    async def scenario() -> None:
        async with running_controller(etcd.endpoint, node_ttl=NODE_TTL) as address, control(address) as stub:
            old = await ExecAgent(address, "node-a").start()
            try:
                task = await running_web_task(stub, old)
                pending = asyncio.create_task(exec_error(stub, task.id))
                await eventually(lambda: len(old.exec_requests) == 1, "the exec sent on the old session")
                # The node's agent comes back (restarted) before the old stream is seen to break.
                new = await FakeAgent(address, "node-a").start()
                try:
                    assert_disconnected(await pending)
                finally:
                    await new.close()
            finally:
                await old.close()

    run(scenario())


def test_a_silent_peer_has_its_session_ended_by_keepalive(etcd: Etcd) -> None:
    async def scenario() -> None:
        async with running_controller(etcd.endpoint, node_ttl=NODE_TTL) as address, control(address) as stub:
            async with relay_to(address) as relay:
                agent = await ExecAgent(relay.address, "node-a", cluster=address).start()
                try:
                    task = await running_web_task(stub, agent)
                    pending = asyncio.create_task(exec_error(stub, task.id))
                    await eventually(lambda: len(agent.exec_requests) == 1, "the exec sent on the session")
                    relay.cut()
                    assert_disconnected(await pending)
                    error = await exec_error(stub, task.id)
                    assert error.code() == grpc.StatusCode.UNAVAILABLE, "the node has no session any more"
                finally:
                    await relay.close()  # the agent's side of the link breaks too
                    await agent.close()

    run(scenario())


def test_reports_sent_together_are_all_recorded(etcd: Etcd) -> None:
    async def scenario() -> None:
        async with running_controller(etcd.endpoint, node_ttl=NODE_TTL) as address, control(address) as stub:
            async with agents(address, "node-a") as (agent,):
                await apply(stub, spec("web", replicas=5))
                await eventually(lambda: len(agent.tasks(RUNNING)) == 5, "five tasks assigned")
                for state in (types_pb2.TASK_STATE_PREPARING, types_pb2.TASK_STATE_STARTING, RUNNING):
                    for task in agent.tasks():
                        agent.report(task.id, state)

                async def recorded() -> bool:
                    listed = await tasks(stub, "web")
                    return [(t.observed_state, t.container_id) for t in listed] == [
                        (RUNNING, f"ctr-{t.id}") for t in listed
                    ] and len(listed) == 5

                await eventually(recorded, "every report of the burst recorded")

    run(scenario())
