"""Calls relayed over agent sessions (log queries, exec): which open call each chunk an agent
sends back belongs to, and the session the call went out on — only that agent knows the
request, so a call whose session ends or is replaced is ended with an error chunk instead
of waiting for an answer that will never come."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import structlog

from moorage.v1 import agent_pb2

log = structlog.get_logger("controller.routes")

C = TypeVar("C")  # the chunk type agents answer with (LogChunk, ExecChunk)


class Session(Protocol):
    """An agent session: where a call's messages go."""

    node_id: str

    def send(self, message: agent_pb2.ControllerMessage) -> None: ...


@dataclass
class _Route(Generic[C]):
    session: Session
    sink: asyncio.Queue[C]


class Routes(Generic[C]):
    def __init__(self, session_of: Callable[[str], Session | None], ended: Callable[[str, str], C]) -> None:
        self._session_of = session_of  # a node's current session, if it has one
        self._ended = ended  # (request id, reason) -> the last chunk of a call whose session ended
        self._routes: dict[str, _Route[C]] = {}

    def open(self, node_id: str, request_id: str, message: agent_pb2.ControllerMessage,
             sink: asyncio.Queue[C]) -> bool:
        """Send ``message`` on ``node_id``'s session; the call's chunks go to ``sink``. False if
        the node has no session."""
        session = self._session_of(node_id)
        if session is None:
            return False
        self._routes[request_id] = _Route(session, sink)
        session.send(message)
        return True

    def send(self, request_id: str, message: agent_pb2.ControllerMessage) -> None:
        """``message`` to the agent of an open call."""
        route = self._routes.get(request_id)
        if route is not None:
            route.session.send(message)

    def close(self, request_id: str, message: agent_pb2.ControllerMessage) -> None:
        """The caller is done: forget the call, and tell its agent ``message`` if it was still open."""
        route = self._routes.pop(request_id, None)
        if route is not None:
            route.session.send(message)

    def deliver(self, sender: Session, request_id: str, chunk: C, *, last: bool = False) -> None:
        """A chunk from ``sender``'s agent, to its call's sink; ``last`` ends the call. A chunk from
        any session but the one the call went out on is dropped: another node cannot answer it."""
        route = self._routes.get(request_id)
        if route is None:
            return
        if route.session is not sender:
            log.warning("dropped a chunk from another session", request=request_id[:64], node=sender.node_id)
            return
        if last:
            del self._routes[request_id]
        route.sink.put_nowait(chunk)

    def session_ended(self, session: Session) -> None:
        """End the calls that went out on ``session``: its stream is gone, or a newer session of the
        node replaced it (an agent restarted before the old stream was seen to break never answers)."""
        for request_id, route in list(self._routes.items()):
            if route.session is session:
                del self._routes[request_id]
                route.sink.put_nowait(self._ended(request_id, f"node {session.node_id} disconnected"))
