"""``place``: the scheduler's one entry point (feasibility, then ranking)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from scheduler.feasible import feasible
from scheduler.model import NodeInfo, Plan, TaskRequest
from scheduler.rank import spread_key


def place(tasks: Sequence[TaskRequest], nodes: Sequence[NodeInfo]) -> Plan:
    """Place ``tasks`` on ``nodes`` in the order given.

    Counts are updated as tasks are placed, so a batch of replicas spreads the
    same way as replicas placed one at a time.
    """
    task_counts = {n.id: n.task_count for n in nodes}
    service_counts = {n.id: Counter(n.service_counts) for n in nodes}
    placements: dict[str, str] = {}
    unplaced: dict[str, str] = {}
    for task in tasks:
        candidates = feasible(task, nodes)
        if not candidates.nodes:
            unplaced[task.task_id] = candidates.explain(len(nodes))
            continue
        best = min(candidates.nodes, key=lambda n: spread_key(task.service, n.id, task_counts, service_counts))
        placements[task.task_id] = best.id
        task_counts[best.id] += 1
        service_counts[best.id][task.service] += 1
    return Plan(placements=placements, unplaced=unplaced)
