"""Cluster events for ``WatchEvents``, derived from the etcd watches.

Every controller already watches tasks, nodes and the leader key; an event is
what one change of those objects means to a person ("task placed", "node
down"). Deriving events from state changes needs no extra writes, and any
controller can serve ``WatchEvents`` because each sees the same changes. The
diffing is pure (``task_events``, ``node_events``); ``EventHub`` fans events
out to the open ``WatchEvents`` streams.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Collection

from controller.clock import now
from moorage.v1 import types_pb2

S = types_pb2.TaskState
SUBSCRIBER_BACKLOG = 1000
# Events kept for ListEvents (`moor describe`): in memory, per controller, since it started.
RECENT_BACKLOG = 2000

_TASK_ACTIONS = {
    S.TASK_STATE_RUNNING: "started",
    S.TASK_STATE_COMPLETE: "completed",
    S.TASK_STATE_FAILED: "failed",
    S.TASK_STATE_REJECTED: "rejected",
    S.TASK_STATE_SHUTDOWN: "stopped",
}


def _event(kind: str, action: str, **fields: str) -> types_pb2.Event:
    event = types_pb2.Event(kind=kind, action=action, **fields)
    event.time.CopyFrom(now())
    return event


def task_events(prev: types_pb2.Task | None, cur: types_pb2.Task | None) -> list[types_pb2.Event]:
    """What one change of a task means: placed, started, failed, ... (``None``: absent)."""
    task = cur if cur is not None else prev
    assert task is not None
    fields = {"id": task.id, "service": task.service}

    def event(action: str, node_id: str, message: str = "") -> types_pb2.Event:
        return _event("task", action, node_id=node_id, message=message, **fields)

    if cur is None:
        return [event("removed", task.node_id)]
    events: list[types_pb2.Event] = []
    if prev is None:
        events.append(event("created", ""))
    if cur.node_id and (prev is None or prev.node_id != cur.node_id):
        events.append(event("placed", cur.node_id))
    if cur.desired_state == S.TASK_STATE_SHUTDOWN and (prev is None or prev.desired_state != S.TASK_STATE_SHUTDOWN):
        events.append(event("shutdown requested", cur.node_id))
    if cur.observed_state != (prev.observed_state if prev is not None else S.TASK_STATE_UNSPECIFIED):
        action = _TASK_ACTIONS.get(cur.observed_state)
        if action is not None:
            message = cur.message or (f"exit code {cur.exit_code}" if cur.exit_code else "")
            events.append(event(action, cur.node_id, message))
        elif cur.observed_state == S.TASK_STATE_PENDING:
            events.append(event("pending", "", cur.message))
    return events


def node_events(prev: types_pb2.Node | None, cur: types_pb2.Node | None) -> list[types_pb2.Event]:
    """What one change of a node means: registered, down, ready, drained, ..."""
    node = cur if cur is not None else prev
    assert node is not None
    if cur is None:
        return [_event("node", "removed", id=node.id, node_id=node.id)]
    events: list[types_pb2.Event] = []
    if prev is None or prev.state != cur.state:
        action = {types_pb2.NODE_STATE_READY: "ready", types_pb2.NODE_STATE_DOWN: "node down"}.get(cur.state)
        if action is not None:
            events.append(_event("node", action, id=cur.id, node_id=cur.id))
    if prev is not None and prev.availability != cur.availability:
        name = types_pb2.NodeAvailability.Name(cur.availability).removeprefix("NODE_AVAILABILITY_").lower()
        events.append(_event("node", f"availability {name}", id=cur.id, node_id=cur.id))
    return events


def leader_event(controller_id: str | None) -> types_pb2.Event:
    message = f"{controller_id} leads" if controller_id else "no leader"
    return _event("controller", "leader changed", id=controller_id or "", message=message)


class EventHub:
    """Fans events out to every subscriber; a subscriber too slow to keep up
    loses its oldest events rather than holding the controller back."""

    def __init__(self, backlog: int = RECENT_BACKLOG) -> None:
        self._subscribers: set[asyncio.Queue[types_pb2.Event]] = set()
        self._recent: deque[types_pb2.Event] = deque(maxlen=backlog)

    def publish(self, events: Collection[types_pb2.Event]) -> None:
        self._recent.extend(events)
        for queue in self._subscribers:
            for event in events:
                if queue.full():
                    queue.get_nowait()
                queue.put_nowait(event)

    async def subscribe(self, kinds: Collection[str] = ()) -> AsyncIterator[types_pb2.Event]:
        """Events from now on, of ``kinds`` only (empty: every kind), until the caller stops."""
        queue: asyncio.Queue[types_pb2.Event] = asyncio.Queue(SUBSCRIBER_BACKLOG)
        self._subscribers.add(queue)
        try:
            while True:
                event = await queue.get()
                if not kinds or event.kind in kinds:
                    yield event
        finally:
            self._subscribers.discard(queue)

    def recent(self, *, service: str = "", node_id: str = "", task_id: str = "", limit: int = 0) -> list[types_pb2.Event]:
        """The kept events naming every given filter, oldest first; the newest ``limit`` (0: all)."""
        found = [
            event
            for event in self._recent
            if (not service or event.service == service)
            and (not node_id or event.node_id == node_id)
            and (not task_id or (event.kind == "task" and event.id == task_id))
        ]
        return found[-limit:] if limit else found
