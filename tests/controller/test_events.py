"""Events derived from object changes (controller.events), and their fan-out."""

from __future__ import annotations

import asyncio

from controller.events import EventHub, leader_event, node_events, task_events
from moorage.v1 import types_pb2

S = types_pb2.TaskState


def t(**fields: object) -> types_pb2.Task:
    return types_pb2.Task(id="t1", service="web", **fields)  # type: ignore[arg-type]


def actions(events: list[types_pb2.Event]) -> list[tuple[str, str, str]]:
    return [(e.kind, e.action, e.node_id) for e in events]


def test_task_changes_become_events() -> None:
    assert actions(task_events(None, t(desired_state=S.TASK_STATE_RUNNING))) == [("task", "created", "")]
    assert actions(task_events(t(), t(node_id="a", observed_state=S.TASK_STATE_ASSIGNED))) == [("task", "placed", "a")]
    running = t(node_id="a", observed_state=S.TASK_STATE_RUNNING)
    assert actions(task_events(t(node_id="a"), running)) == [("task", "started", "a")]
    failed = t(node_id="a", observed_state=S.TASK_STATE_FAILED, exit_code=3)
    (event,) = task_events(running, failed)
    assert (event.action, event.message, event.service, event.id) == ("failed", "exit code 3", "web", "t1")
    assert task_events(running, running) == []
    assert actions(task_events(running, None)) == [("task", "removed", "a")]
    stop = t(node_id="a", observed_state=S.TASK_STATE_RUNNING, desired_state=S.TASK_STATE_SHUTDOWN)
    assert actions(task_events(running, stop)) == [("task", "shutdown requested", "a")]


def test_node_changes_become_events() -> None:
    ready = types_pb2.Node(id="h1", state=types_pb2.NODE_STATE_READY)
    down = types_pb2.Node(id="h1", state=types_pb2.NODE_STATE_DOWN)
    drained = types_pb2.Node(id="h1", state=types_pb2.NODE_STATE_READY, availability=types_pb2.NODE_AVAILABILITY_DRAIN)
    assert actions(node_events(None, ready)) == [("node", "ready", "h1")]
    assert actions(node_events(ready, down)) == [("node", "node down", "h1")]
    assert actions(node_events(ready, drained)) == [("node", "availability drain", "h1")]
    assert node_events(ready, ready) == []
    assert leader_event("c2").message == "c2 leads" and leader_event(None).message == "no leader"


def test_hub_filters_kinds_and_drops_the_oldest_for_a_slow_subscriber() -> None:
    async def scenario() -> None:
        hub = EventHub()
        nodes_only = hub.subscribe(["node"])
        first = asyncio.create_task(anext(nodes_only))
        await asyncio.sleep(0)  # the subscriber is registered once it waits
        hub.publish([*task_events(None, t()), leader_event("c1"), types_pb2.Event(kind="node", action="ready")])
        assert (await first).action == "ready"
        everything = hub.subscribe()
        pending = asyncio.create_task(anext(everything))
        await asyncio.sleep(0)
        hub.publish([types_pb2.Event(kind="node", action=str(i)) for i in range(1001)])
        assert (await pending).action == "1"  # "0" was dropped: the backlog holds 1000
        await nodes_only.aclose()
        await everything.aclose()

    asyncio.run(scenario())


def test_hub_keeps_a_bounded_backlog_of_recent_events_with_filters() -> None:
    hub = EventHub(backlog=3)
    hub.publish([
        types_pb2.Event(kind="task", action="placed", id="t1", service="web", node_id="h1"),
        types_pb2.Event(kind="task", action="started", id="t1", service="web", node_id="h1"),
        types_pb2.Event(kind="node", action="node down", id="h2", node_id="h2"),
        types_pb2.Event(kind="task", action="started", id="t2", service="db", node_id="h2"),
    ])  # fmt: skip
    assert [e.action for e in hub.recent()] == ["started", "node down", "started"]  # the oldest fell out
    assert [e.id for e in hub.recent(service="web")] == ["t1"]
    assert [e.action for e in hub.recent(node_id="h2")] == ["node down", "started"]
    assert [e.id for e in hub.recent(task_id="h2")] == []  # a node event's id is not a task id
    assert [e.id for e in hub.recent(node_id="h2", limit=1)] == ["t2"]
