from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from controller import placement
from moorage.v1 import types_pb2
from scheduler import NodeInfo, Plan

RUNNING = types_pb2.TASK_STATE_RUNNING
SHUTDOWN = types_pb2.TASK_STATE_SHUTDOWN
STAMP = Timestamp(seconds=1_700_000_000)


def task(task_id: str, service: str = "web", node: str = "", desired: int = RUNNING, slot: int = 1) -> types_pb2.Task:
    return types_pb2.Task(id=task_id, service=service, slot=slot, node_id=node, desired_state=desired)


def test_snapshot_counts_live_tasks_per_node_and_service() -> None:
    nodes = [
        types_pb2.Node(id="a", state=types_pb2.NODE_STATE_READY, resources={"cpu_millis": 500}),
        types_pb2.Node(id="b", state=types_pb2.NODE_STATE_DOWN),
    ]
    tasks = [task("1", node="a"), task("2", "db", node="a"), task("3", node="a", desired=SHUTDOWN), task("4")]
    a, b = placement.snapshot(nodes, tasks)
    assert a == NodeInfo(id="a", ready=True, cpu_millis=500, memory_bytes=0, labels={}, task_count=2,
                         service_counts={"web": 1, "db": 1})  # fmt: skip
    assert (b.ready, b.task_count) == (False, 0)


def test_unplaced_are_live_tasks_without_node_in_service_slot_order() -> None:
    tasks = [task("x", "web", slot=2), task("y", "db"), task("z", "web", node="a"), task("w", desired=SHUTDOWN)]
    assert [t.id for t in placement.unplaced(tasks)] == ["y", "x"]


def test_apply_plan_assigns_and_marks_pending_once() -> None:
    placed, waiting = task("p"), task("w")
    already = task("q")
    already.observed_state = types_pb2.TASK_STATE_PENDING
    already.message = "no ready nodes (0 nodes)"
    plan = Plan(placements={"p": "a"}, unplaced={"w": "no ready nodes (0 nodes)", "q": "no ready nodes (0 nodes)"})
    changed = placement.apply_plan([placed, waiting, already], plan, STAMP)
    assert [(t.id, t.node_id, t.observed_state, t.message) for t in changed] == [
        ("p", "a", types_pb2.TASK_STATE_ASSIGNED, ""),
        ("w", "", types_pb2.TASK_STATE_PENDING, "no ready nodes (0 nodes)"),
    ]
    assert all(t.updated_at == STAMP for t in changed)
