"""Control.Exec relayed over the agent session of the task's node.

    client ──ExecInput stream──► controller ──ExecRelay (in ControllerMessage)──► agent
           ◄─ExecOutput stream──            ◄─ExecChunk (in AgentMessage)────────

The first ExecInput must be ``start``; later ones carry stdin or a TTY resize. When the
client ends its stream (or goes away), the agent is told ``close``: the command's stdin
reaches EOF (a TTY hangs up). The last ExecOutput is the exit code; an agent-side failure
(no such container, not running, command not found) ends the call with FAILED_PRECONDITION,
a node without a session with UNAVAILABLE.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import structlog

from controller.routes import Routes, Session
from controller.store import Store
from moorage.v1 import agent_pb2, control_pb2, types_pb2

log = structlog.get_logger("controller.exec")

Context = grpc.aio.ServicerContext  # type: ignore[type-arg]


ExecRoutes = Routes[agent_pb2.ExecChunk]


def exec_routes(session_of: Callable[[str], Session | None]) -> ExecRoutes:
    """The open exec calls; one whose session ends gets an error chunk (FAILED_PRECONDITION)."""
    return Routes(session_of, lambda request_id, why: agent_pb2.ExecChunk(request_id=request_id, error=why))


def _start_relay(start: control_pb2.ExecStart) -> agent_pb2.ExecStartRelay:
    return agent_pb2.ExecStartRelay(task_id=start.task_id, command=list(start.command), tty=start.tty,
                                    env=dict(start.env), rows=start.size.rows, cols=start.size.cols)


async def serve(store: Store, router: ExecRoutes, requests: AsyncIterator[control_pb2.ExecInput],
                context: Context) -> AsyncIterator[control_pb2.ExecOutput]:
    """The body of Control.Exec."""
    inputs = aiter(requests)
    first = await anext(inputs, None)
    if first is None or first.WhichOneof("body") != "start":
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the first ExecInput must be start")
        return
    start = first.start
    if not start.command:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "exec needs a command")
        return
    task = await store.get_task(start.task_id)
    if task is None:
        await context.abort(grpc.StatusCode.NOT_FOUND, f"task {start.task_id!r} not found")
        return
    if task.observed_state != types_pb2.TASK_STATE_RUNNING or not task.node_id:
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                            f"task {task.id} is not running ({types_pb2.TaskState.Name(task.observed_state)})")
        return
    request_id = uuid.uuid4().hex
    sink: asyncio.Queue[agent_pb2.ExecChunk] = asyncio.Queue()
    def relay(**body: Any) -> agent_pb2.ControllerMessage:
        return agent_pb2.ControllerMessage(exec=agent_pb2.ExecRelay(request_id=request_id, **body))

    if not router.open(task.node_id, request_id, relay(start=_start_relay(start)), sink):
        await context.abort(grpc.StatusCode.UNAVAILABLE, f"node {task.node_id} of task {task.id} has no session")
        return
    log.info("exec", task=task.id, node=task.node_id, command=list(start.command), tty=start.tty)

    async def pump_input() -> None:
        async for message in inputs:
            kind = message.WhichOneof("body")
            if kind == "stdin":
                router.send(request_id, relay(stdin=message.stdin))
            elif kind == "resize":
                router.send(request_id, relay(
                    resize=agent_pb2.TerminalSizeRelay(rows=message.resize.rows, cols=message.resize.cols)))
        router.send(request_id, relay(close=True))

    feeder = asyncio.create_task(pump_input())
    try:
        while True:
            chunk = await sink.get()
            kind = chunk.WhichOneof("body")
            if kind == "error":
                await context.abort(grpc.StatusCode.FAILED_PRECONDITION, chunk.error)
                return
            if kind == "exit_code":
                yield control_pb2.ExecOutput(exit_code=chunk.exit_code)
                return
            if kind == "stdout":
                yield control_pb2.ExecOutput(stdout=chunk.stdout)
            elif kind == "stderr":
                yield control_pb2.ExecOutput(stderr=chunk.stderr)
    finally:
        feeder.cancel()
        with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
            await feeder
        router.close(request_id, relay(close=True))
