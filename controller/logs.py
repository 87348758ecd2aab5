"""Control.Logs relayed over the agent sessions of the tasks' nodes.

    client ◄─LogEntry stream── controller ──LogsQuery (in ControllerMessage)──► agent(s)
                                          ◄─LogChunk (in AgentMessage)────────

One query per task with a container, each on its node's session; a node without a session
is skipped. With ``follow`` the lines are passed on as they come; without it, every line is
gathered first and the tasks' lines are merged by time. When the caller stops listening,
each agent still answering is told ``cancel``; a query whose session ends is ended with an
error chunk (logged).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterable

import structlog

from controller.routes import Routes, Session
from moorage.v1 import agent_pb2, control_pb2, types_pb2

log = structlog.get_logger("controller.logs")

LogRoutes = Routes[agent_pb2.LogChunk]


def log_routes(session_of: Callable[[str], Session | None]) -> LogRoutes:
    """The open log queries; one whose session ends gets a last chunk with the reason."""
    return Routes(session_of, lambda request_id, why: agent_pb2.LogChunk(request_id=request_id, eof=True, error=why))


async def relay(
    routes: LogRoutes, tasks: Iterable[types_pb2.Task], request: control_pb2.LogsRequest
) -> AsyncIterator[types_pb2.LogEntry]:
    """The lines of ``tasks`` as ``request`` asks for them (the body of Control.Logs)."""
    sink: asyncio.Queue[agent_pb2.LogChunk] = asyncio.Queue()
    open_queries: dict[str, types_pb2.Task] = {}
    for task in sorted(tasks, key=lambda t: (t.slot, t.id)):
        if not (task.node_id and task.container_id):
            continue
        request_id = uuid.uuid4().hex
        query = agent_pb2.LogsQuery(
            request_id=request_id, task_id=task.id, follow=request.follow, tail=request.tail, since=request.since
        )
        if routes.open(task.node_id, request_id, agent_pb2.ControllerMessage(logs_query=query), sink):
            open_queries[request_id] = task
        else:
            log.info("no session for the node of a task, skipping its logs", task=task.id, node=task.node_id)
    backlog: list[types_pb2.LogEntry] = []
    try:
        while open_queries:
            chunk = await sink.get()
            task = open_queries[chunk.request_id]
            if chunk.eof:
                del open_queries[chunk.request_id]
                if chunk.error:
                    log.warning("agent could not send logs", task=task.id, node=task.node_id, error=chunk.error)
            for entry in chunk.entries:
                merged = types_pb2.LogEntry()
                merged.CopyFrom(entry)
                merged.task_id, merged.slot, merged.node_id = task.id, task.slot, task.node_id
                if request.follow:
                    yield merged
                else:
                    backlog.append(merged)
        # Without follow, every line is in hand: merge the tasks' lines by time.
        for entry in sorted(backlog, key=lambda e: e.time.ToNanoseconds()):
            yield entry
    finally:
        for request_id in open_queries:  # the caller stopped listening: the agent stops too
            cancel = agent_pb2.LogsQuery(request_id=request_id, cancel=True)
            routes.close(request_id, agent_pb2.ControllerMessage(logs_query=cancel))
