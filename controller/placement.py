"""Between etcd objects and the pure scheduler: snapshots in, task writes out.

One placement pass (``step``) reads every node and task, builds the scheduler's
snapshot (availability, state, the reservations and host ports of the tasks
each node holds), places the waiting tasks, and evicts running tasks whose node
no longer satisfies their constraints. ``transactions`` turns the result into
etcd transactions that compare the revisions the plan was computed from: the
task keys it rewrites and the nodes it places on. A conflict means another
writer moved first; the caller re-plans from a fresh read.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence

from google.protobuf.timestamp_pb2 import Timestamp

from controller.store import Check, Op, Put, node_key, task_key
from moorage.v1 import types_pb2
from scheduler import (
    Availability,
    Config,
    ConstraintError,
    NodeInfo,
    Port,
    Requirements,
    TaskRequest,
    must_move,
    parse_attribute,
    parse_constraint,
    place,
)
from scheduler.feasible import DOWN, DRAINED
from scheduler.stability import GONE

S = types_pb2
RUNNING = S.TASK_STATE_RUNNING
FINISHED = frozenset({S.TASK_STATE_COMPLETE, S.TASK_STATE_FAILED, S.TASK_STATE_REJECTED, S.TASK_STATE_SHUTDOWN})
AVAILABILITY = {
    S.NODE_AVAILABILITY_UNSPECIFIED: Availability.ACTIVE,
    S.NODE_AVAILABILITY_ACTIVE: Availability.ACTIVE,
    S.NODE_AVAILABILITY_DRAIN: Availability.DRAIN,
    S.NODE_AVAILABILITY_PAUSE: Availability.PAUSE,
}
# etcd refuses transactions of more operations than this (its --max-txn-ops default)
MAX_TXN_OPS = 128
# Tasks on down or drained nodes are moved by the slot reconciler (controller.slots);
# those of a removed node go with the node.
NOT_EVICTED_HERE = frozenset({DOWN, DRAINED, GONE})


def unplaced(tasks: Sequence[types_pb2.Task]) -> list[types_pb2.Task]:
    """Live tasks without a node, in a stable order (service, slot)."""
    waiting = [t for t in tasks if t.desired_state == RUNNING and not t.node_id]
    return sorted(waiting, key=lambda t: (t.service, t.slot, t.id))


def holds_resources(task: types_pb2.Task) -> bool:
    """A task keeps its reservation and ports on its node until it is wanted and
    running no more (a stopping container still binds its ports)."""
    return bool(task.node_id) and (task.desired_state == RUNNING or task.observed_state not in FINISHED)


def host_ports(spec: types_pb2.ServiceSpec) -> tuple[Port, ...]:
    """The node ports a task binds: published ports, or all its ports with the host network."""
    host_network = spec.network == S.NETWORK_MODE_HOST
    ports = (Port(p.host_port or (p.container_port if host_network else 0), p.protocol or "tcp") for p in spec.ports)
    return tuple(dict.fromkeys(p for p in ports if p.number))


def requirements(spec: types_pb2.ServiceSpec) -> Requirements:
    """What a task of ``spec`` needs of its node; ``ConstraintError`` for a bad expression."""
    reservations = spec.resources.reservations
    return Requirements(
        cpu_millis=reservations.cpu_millis,
        memory_bytes=reservations.memory_bytes,
        ports=host_ports(spec),
        constraints=tuple(parse_constraint(c) for c in spec.placement.constraints),
        spread=tuple(parse_attribute(a) for a in spec.placement.spread),
        max_replicas_per_node=spec.placement.max_replicas_per_node,
        volumes_from=tuple(spec.volumes_from),
    )


class Requests:
    """Scheduler requests for tasks, parsing each distinct spec once."""

    def __init__(self) -> None:
        self._parsed: dict[bytes, Requirements | str] = {}

    def of(self, task: types_pb2.Task) -> TaskRequest | str:
        """The task's request, or why its spec cannot be placed."""
        key = task.spec.SerializeToString(deterministic=True)
        parsed = self._parsed.get(key)
        if parsed is None:
            try:
                parsed = requirements(task.spec)
            except ConstraintError as e:
                parsed = f"invalid placement: {e}"
            self._parsed[key] = parsed
        return parsed if isinstance(parsed, str) else TaskRequest(task.id, task.service, parsed)


def snapshot(nodes: Sequence[types_pb2.Node], tasks: Iterable[types_pb2.Task]) -> list[NodeInfo]:
    """Every node with what its tasks reserve and bind, as the scheduler sees it."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    cpu: Counter[str] = Counter()
    memory: Counter[str] = Counter()
    ports: dict[str, set[Port]] = defaultdict(set)
    for task in tasks:
        if not holds_resources(task):
            continue
        reservations = task.spec.resources.reservations
        cpu[task.node_id] += reservations.cpu_millis
        memory[task.node_id] += reservations.memory_bytes
        ports[task.node_id].update(host_ports(task.spec))
        if task.desired_state == RUNNING:
            counts[task.node_id][task.service] += 1
    return [
        NodeInfo(
            id=n.id,
            hostname=n.hostname,
            ready=n.state == S.NODE_STATE_READY,
            availability=AVAILABILITY.get(n.availability, Availability.ACTIVE),
            cpu_millis=n.resources.cpu_millis,
            memory_bytes=n.resources.memory_bytes,
            labels=dict(n.labels),
            allocated_cpu_millis=cpu[n.id],
            allocated_memory_bytes=memory[n.id],
            used_ports=frozenset(ports[n.id]),
            service_counts=dict(counts[n.id]),
        )
        for n in nodes
    ]


def apply_plan(
    tasks: Sequence[types_pb2.Task], placements: Mapping[str, str], reasons: Mapping[str, str], now: Timestamp
) -> list[types_pb2.Task]:
    """The tasks that change: placed ones become ASSIGNED to their node; the
    others PENDING with the reason, unless they already say so (rewriting an
    unchanged PENDING task would wake the watchers for nothing)."""
    changed: list[types_pb2.Task] = []
    for task in tasks:
        updated = types_pb2.Task()
        updated.CopyFrom(task)
        if task.id in placements:
            updated.node_id = placements[task.id]
            updated.observed_state = S.TASK_STATE_ASSIGNED
            updated.message = ""
        else:
            updated.observed_state = S.TASK_STATE_PENDING
            updated.message = reasons[task.id]
            if updated == task:
                continue
        updated.updated_at.CopyFrom(now)
        changed.append(updated)
    return changed


def misplaced(
    tasks: Sequence[types_pb2.Task], snapshot_nodes: Sequence[NodeInfo], requests: Requests
) -> list[tuple[types_pb2.Task, str]]:
    """Live placed tasks whose node no longer satisfies their constraints (its
    labels changed), with why; everything else stays where it runs."""
    live = [t for t in tasks if t.desired_state == RUNNING and t.node_id and t.spec.placement.constraints]
    placed = [(r, t.node_id) for t in live if isinstance(r := requests.of(t), TaskRequest)]
    moves = must_move(placed, snapshot_nodes)
    return [(t, moves[t.id]) for t in live if moves.get(t.id) not in (None, *NOT_EVICTED_HERE)]


def evict(task: types_pb2.Task, reason: str, now: Timestamp) -> types_pb2.Task:
    """``task`` asked to stop (its slot gets a new task, placed afresh)."""
    updated = types_pb2.Task()
    updated.CopyFrom(task)
    updated.desired_state = S.TASK_STATE_SHUTDOWN
    updated.message = f"moved off {task.node_id}: {reason}"
    updated.updated_at.CopyFrom(now)
    return updated


def step(
    nodes: Sequence[types_pb2.Node], tasks: Sequence[types_pb2.Task], config: Config, now: Timestamp
) -> list[types_pb2.Task]:
    """One placement pass over a read of every node and task: the tasks to rewrite."""
    waiting = unplaced(tasks)
    requests = Requests()
    view = snapshot(nodes, tasks)
    to_place: list[TaskRequest] = []
    reasons: dict[str, str] = {}
    for task in waiting:
        request = requests.of(task)
        if isinstance(request, str):
            reasons[task.id] = request
        else:
            to_place.append(request)
    plan = place(to_place, view, config) if to_place else None
    if plan is not None:
        reasons.update((task_id, str(why)) for task_id, why in plan.unplaced.items())
    changed = apply_plan(waiting, plan.placements if plan is not None else {}, reasons, now)
    return changed + [evict(t, why, now) for t, why in misplaced(tasks, view, requests)]


def transactions(changed: Sequence[types_pb2.Task], nodes: Sequence[types_pb2.Node]) -> list[list[Op]]:
    """The writes of one pass as etcd transactions, each comparing the revisions
    it was computed from: every task it rewrites and every node it places on.

    One transaction when it fits; a large plan is cut into transactions of at
    most ``MAX_TXN_OPS`` operations (tasks grouped by node, so each needs few
    node checks), each still checked on its own reads.
    """
    versions = {n.id: n.version for n in nodes}
    batches: list[list[Op]] = []
    ops: list[Op] = []
    checked: set[str] = set()
    for task in sorted(changed, key=lambda t: t.node_id):
        fence = [task.node_id] if task.node_id and task.node_id not in checked else []
        if len(ops) + 1 + len(fence) > MAX_TXN_OPS:
            batches.append(ops)
            ops, checked = [], set()
            fence = [task.node_id] if task.node_id else []
        ops += [Check(node_key(n), versions[n]) for n in fence]
        checked.update(fence)
        ops.append(Put(task_key(task.id), task, task.version))
    if ops:
        batches.append(ops)
    return batches
