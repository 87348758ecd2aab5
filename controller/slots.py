"""Replica arithmetic: what a service's tasks must become (a pure function).

A service with ``replicas = N`` wants exactly one *live* task (desired RUNNING)
per slot 1..N, created from the service's current spec, on a node that is up
and not drained. Worked example, spec v2 with replicas 2, node ``c`` down, and
these tasks::

    slot 1  RUNNING  spec v2  on node a   -> keep
    slot 2  RUNNING  spec v1  on node b   -> shut down (image changed); slot 2 gets a new task
    slot 3  RUNNING  spec v2  unassigned  -> delete (above replicas, never placed)
    slot 1  SHUTDOWN spec v1  unassigned  -> delete (nothing runs it anywhere)
    slot 1  SHUTDOWN spec v1  on node c   -> history (node down: it ended as far as we know)

    => create = (2,), shutdown = (slot 2 task,), delete = (slot 3 task, old unassigned slot 1 task)

A live task on a down or drained node is shut down and its slot gets a new
task elsewhere. A live task that *ended* (its container exited) is replaced
as its restart policy says (``controller.restarts``): on the same node, after
the back-off. Only a change of what runs (image, args, env, ...) replaces a
task; a change of ``replicas`` alone keeps the tasks of the remaining slots.

Tasks desired SHUTDOWN are the slot's history once they have ended: the
newest ``HISTORY`` per slot are kept (``moor get tasks --all`` shows their
exits), older ones deleted, and all of them once the service is gone. Those
still stopping on a live node wait for their agent.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from controller.restarts import GiveUp, Restart, decide
from moorage.v1 import types_pb2

S = types_pb2.TaskState
RUNNING = S.TASK_STATE_RUNNING
SHUTDOWN = S.TASK_STATE_SHUTDOWN
FINISHED = frozenset({S.TASK_STATE_COMPLETE, S.TASK_STATE_FAILED, S.TASK_STATE_REJECTED, SHUTDOWN})
HISTORY = 5


def workload(spec: types_pb2.ServiceSpec) -> types_pb2.ServiceSpec:
    """The part of a spec a task runs: everything but the replica count, so
    scaling a service keeps its existing tasks."""
    copy = types_pb2.ServiceSpec()
    copy.CopyFrom(spec)
    copy.ClearField("replicas")
    return copy


@dataclass(frozen=True)
class NewTask:
    """A task to create in ``slot``, following ``prev_id`` (the slot's newest task, if any)."""

    slot: int
    prev_id: str = ""
    node_id: str = ""  # set for a restart in place; empty = let the scheduler place it
    restarts: int = 0


@dataclass(frozen=True)
class SlotPlan:
    create: tuple[NewTask, ...]
    shutdown: tuple[types_pb2.Task, ...]  # tasks on a node to set desired SHUTDOWN
    delete: tuple[types_pb2.Task, ...]  # tasks no node holds (or old history), removed outright
    wake_at_ns: int | None = None  # the next restart that is not due yet
    problems: tuple[str, ...] = ()  # why some slot cannot converge

    @property
    def empty(self) -> bool:
        return not (self.create or self.shutdown or self.delete)


@dataclass(frozen=True)
class Nodes:
    """Which nodes a task may not stay on."""

    down: Collection[str] = frozenset()
    drained: Collection[str] = frozenset()

    def usable(self, node_id: str) -> bool:
        return node_id not in self.down and node_id not in self.drained


def _order(task: types_pb2.Task) -> tuple[int, int, str]:
    return (task.slot, task.created_at.ToNanoseconds(), task.id)


def plan_slots(
    spec: types_pb2.ServiceSpec | None,
    tasks: Sequence[types_pb2.Task],
    nodes: Nodes = Nodes(),
    now_ns: int = 0,
) -> SlotPlan:
    """The step from ``tasks`` towards ``spec`` (``None``: the service is gone) at time ``now_ns``."""
    replicas = spec.replicas if spec is not None else 0
    wanted_workload = workload(spec) if spec is not None else None
    ordered = sorted(tasks, key=_order)
    newest = {t.slot: t.id for t in ordered}  # later tasks overwrite earlier ones
    kept: dict[int, types_pb2.Task] = {}
    stop: list[types_pb2.Task] = []
    history: dict[int, list[types_pb2.Task]] = defaultdict(list)
    delete: list[types_pb2.Task] = []
    create: list[NewTask] = []
    problems: list[str] = []
    wake: list[int] = []
    for task in ordered:
        if task.desired_state != RUNNING:
            if not task.node_id:
                delete.append(task)
            elif task.observed_state in FINISHED or task.node_id in nodes.down:
                history[task.slot].append(task)
            continue
        if not (1 <= task.slot <= replicas and workload(task.spec) == wanted_workload and task.slot not in kept):
            stop.append(task)
        elif task.node_id and not nodes.usable(task.node_id):
            stop.append(task)
            create.append(NewTask(task.slot, task.id, restarts=task.restarts))
            kept[task.slot] = task
        else:
            kept[task.slot] = task
            decision = decide(task)
            if isinstance(decision, GiveUp) and decision.reason:
                problems.append(decision.reason)
            elif isinstance(decision, Restart):
                if decision.at_ns > now_ns:
                    wake.append(decision.at_ns)
                else:
                    stop.append(task)
                    same_node = task.node_id if task.observed_state != S.TASK_STATE_REJECTED else ""
                    create.append(NewTask(task.slot, task.id, same_node, decision.restarts))
    create += [NewTask(s, newest.get(s, "")) for s in range(1, replicas + 1) if s not in kept]
    for slot_history in history.values():
        keep = HISTORY if spec is not None else 0
        delete += slot_history[: max(len(slot_history) - keep, 0)]
    return SlotPlan(
        create=tuple(sorted(create, key=lambda n: n.slot)),
        shutdown=tuple(t for t in stop if t.node_id),
        delete=tuple(delete + [t for t in stop if not t.node_id]),
        wake_at_ns=min(wake) if wake else None,
        problems=tuple(problems),
    )
