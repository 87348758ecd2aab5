"""Stability: a task that runs stays where it is unless its node became unfit.

``place`` only places new tasks; ``must_move`` says which running tasks must
move. Only facts of the node count — resources and ports are not re-checked,
since the task's own reservation is part of what its node has allocated. A
paused node keeps its tasks; a drained or dead one does not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from scheduler.feasible import NOT_DRAINED, READY, Check, Satisfies
from scheduler.ledger import Ledger
from scheduler.model import NodeInfo, TaskRequest

GONE = "node is gone"


def stay_checks(task: TaskRequest) -> tuple[Check, ...]:
    return (READY, NOT_DRAINED, *(Satisfies(c) for c in task.requirements.constraints))


def must_move(placed: Sequence[tuple[TaskRequest, str]], nodes: Sequence[NodeInfo]) -> Mapping[str, str]:
    """task_id -> why, for each (task, node_id) whose node can no longer keep it."""
    ledger = Ledger(nodes)
    moves: dict[str, str] = {}
    for task, node_id in placed:
        node = ledger.index.get(node_id)
        if node is None:
            moves[task.task_id] = GONE
            continue
        failed = next((check.reason for check in stay_checks(task) if not check.keep(ledger, [node])), None)
        if failed is not None:
            moves[task.task_id] = failed
    return moves
