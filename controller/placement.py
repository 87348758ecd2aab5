"""Between etcd objects and the pure scheduler: snapshots in, task updates out."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from google.protobuf.timestamp_pb2 import Timestamp

from moorage.v1 import types_pb2
from scheduler import NodeInfo, Plan, TaskRequest

RUNNING = types_pb2.TASK_STATE_RUNNING


def unplaced(tasks: Sequence[types_pb2.Task]) -> list[types_pb2.Task]:
    """Live tasks without a node, in a stable order (service, slot)."""
    waiting = [t for t in tasks if t.desired_state == RUNNING and not t.node_id]
    return sorted(waiting, key=lambda t: (t.service, t.slot, t.id))


def snapshot(nodes: Sequence[types_pb2.Node], tasks: Sequence[types_pb2.Task]) -> list[NodeInfo]:
    """Every node with the live tasks it holds, as the scheduler sees it."""
    per_node: dict[str, Counter[str]] = {n.id: Counter() for n in nodes}
    for task in tasks:
        if task.node_id in per_node and task.desired_state == RUNNING:
            per_node[task.node_id][task.service] += 1
    return [
        NodeInfo(
            id=n.id,
            ready=n.state == types_pb2.NODE_STATE_READY,
            cpu_millis=n.resources.cpu_millis,
            memory_bytes=n.resources.memory_bytes,
            labels=dict(n.labels),
            task_count=sum(per_node[n.id].values()),
            service_counts=dict(per_node[n.id]),
        )
        for n in nodes
    ]


def requests(tasks: Sequence[types_pb2.Task]) -> list[TaskRequest]:
    return [TaskRequest(task_id=t.id, service=t.service) for t in tasks]


def apply_plan(tasks: Sequence[types_pb2.Task], plan: Plan, now: Timestamp) -> list[types_pb2.Task]:
    """The tasks that change under ``plan``: placed ones become ASSIGNED to their
    node; unplaced ones become PENDING with the reason, unless they already say so
    (rewriting an unchanged PENDING task would wake the watchers for nothing)."""
    changed: list[types_pb2.Task] = []
    for task in tasks:
        updated = types_pb2.Task()
        updated.CopyFrom(task)
        if task.id in plan.placements:
            updated.node_id = plan.placements[task.id]
            updated.observed_state = types_pb2.TASK_STATE_ASSIGNED
            updated.message = ""
        else:
            updated.observed_state = types_pb2.TASK_STATE_PENDING
            updated.message = plan.unplaced[task.id]
            if updated == task:
                continue
        updated.updated_at.CopyFrom(now)
        changed.append(updated)
    return changed
