from __future__ import annotations

import pytest

from scheduler import Availability, NodeInfo, Requirements, TaskRequest, must_move, parse_constraint
from scheduler.feasible import DOWN, DRAINED
from scheduler.stability import GONE

IN_ZONE_A = Requirements(constraints=(parse_constraint("node.labels.zone == a"),))


@pytest.mark.parametrize(
    ("info", "requirements", "reason"),
    [
        (NodeInfo(id="n"), Requirements(), None),
        (NodeInfo(id="n", availability=Availability.PAUSE), Requirements(), None),  # paused: tasks stay
        (NodeInfo(id="n", availability=Availability.DRAIN), Requirements(), DRAINED),
        (NodeInfo(id="n", ready=False), Requirements(), DOWN),
        (NodeInfo(id="n", labels={"zone": "a"}), IN_ZONE_A, None),
        (NodeInfo(id="n", labels={"zone": "b"}), IN_ZONE_A, "constraint node.labels.zone == a not met"),
        # resources are not re-checked: the task's own reservation is part of the allocation
        (NodeInfo(id="n", cpu_millis=100, allocated_cpu_millis=100), Requirements(cpu_millis=100), None),
        (NodeInfo(id="other"), Requirements(), GONE),
    ],
)
def test_must_move(info: NodeInfo, requirements: Requirements, reason: str | None) -> None:
    task = TaskRequest("t1", "web", requirements)
    assert must_move([(task, "n")], [info]) == ({} if reason is None else {"t1": reason})


def test_must_move_only_names_tasks_that_must() -> None:
    nodes = [NodeInfo(id="a"), NodeInfo(id="b", availability=Availability.DRAIN)]
    placed = [(TaskRequest("1", "web"), "a"), (TaskRequest("2", "web"), "b"), (TaskRequest("3", "db"), "a")]
    assert must_move(placed, nodes) == {"2": DRAINED}
