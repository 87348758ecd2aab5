from __future__ import annotations

import pytest

from scheduler import NodeInfo, TaskRequest
from scheduler.feasible import DOWN, feasible, node_ready

TASK = TaskRequest(task_id="t1", service="web")


@pytest.mark.parametrize(("ready", "reason"), [(True, None), (False, DOWN)])
def test_node_ready(ready: bool, reason: str | None) -> None:
    assert node_ready(TASK, NodeInfo(id="a", ready=ready)) == reason


def test_feasible_records_the_rejecting_reason_per_node() -> None:
    result = feasible(TASK, [NodeInfo(id="a", ready=True), NodeInfo(id="b", ready=False)])
    assert [n.id for n in result.nodes] == ["a"]
    assert result.rejected == {"b": DOWN}
