"""Replica arithmetic: what a service's tasks must become (a pure function).

A service with ``replicas = N`` wants exactly one *live* task (desired RUNNING)
per slot 1..N, created from the service's current spec. Worked example, spec v2
with replicas 2, and these tasks::

    slot 1  RUNNING  spec v2  on node a   -> keep
    slot 2  RUNNING  spec v1  on node b   -> shut down (image changed); slot 2 gets a new task
    slot 3  RUNNING  spec v2  unassigned  -> delete (above replicas, never placed)
    slot 1  SHUTDOWN spec v1  unassigned  -> delete (nothing runs it anywhere)

    => create = (2,), shutdown = (slot 2 task,), delete = (slot 3 task, old slot 1 task)

Only a change of what runs (image, args, env, ...) replaces a task; a change of
``replicas`` alone keeps the tasks of the remaining slots. Tasks already desired
SHUTDOWN on a node stay until their agent reports them stopped (the agent
session deletes them then).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from moorage.v1 import types_pb2

RUNNING = types_pb2.TASK_STATE_RUNNING
SHUTDOWN = types_pb2.TASK_STATE_SHUTDOWN


def workload(spec: types_pb2.ServiceSpec) -> types_pb2.ServiceSpec:
    """The part of a spec a task runs: everything but the replica count, so
    scaling a service keeps its existing tasks."""
    copy = types_pb2.ServiceSpec()
    copy.CopyFrom(spec)
    copy.ClearField("replicas")
    return copy


@dataclass(frozen=True)
class SlotPlan:
    create: tuple[int, ...]  # slots that need a new task
    shutdown: tuple[types_pb2.Task, ...]  # tasks on a node to set desired SHUTDOWN
    delete: tuple[types_pb2.Task, ...]  # tasks no node holds, removed outright

    @property
    def empty(self) -> bool:
        return not (self.create or self.shutdown or self.delete)


def plan_slots(spec: types_pb2.ServiceSpec | None, tasks: Sequence[types_pb2.Task]) -> SlotPlan:
    """The step from ``tasks`` towards ``spec`` (``None``: the service is gone)."""
    replicas = spec.replicas if spec is not None else 0
    wanted_workload = workload(spec) if spec is not None else None
    kept: dict[int, types_pb2.Task] = {}
    stop: list[types_pb2.Task] = []
    for task in sorted(tasks, key=lambda t: (t.slot, t.created_at.ToNanoseconds(), t.id)):
        if task.desired_state != RUNNING:
            if not task.node_id:
                stop.append(task)
            continue
        wanted = 1 <= task.slot <= replicas and workload(task.spec) == wanted_workload and task.slot not in kept
        if wanted:
            kept[task.slot] = task
        else:
            stop.append(task)
    return SlotPlan(
        create=tuple(s for s in range(1, replicas + 1) if s not in kept),
        shutdown=tuple(t for t in stop if t.node_id),
        delete=tuple(t for t in stop if not t.node_id),
    )
