from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler import NodeInfo, Plan, TaskRequest, place


def tasks(service: str, n: int) -> list[TaskRequest]:
    return [TaskRequest(task_id=f"{service}-{i}", service=service) for i in range(n)]


def node(node_id: str, *, ready: bool = True, task_count: int = 0, **service_counts: int) -> NodeInfo:
    return NodeInfo(
        id=node_id,
        ready=ready,
        cpu_millis=1000,
        memory_bytes=1 << 30,
        labels={},
        task_count=task_count,
        service_counts=service_counts,
    )


def per_node(plan: Plan) -> Counter[str]:
    return Counter(plan.placements.values())


@pytest.mark.parametrize(
    ("requests", "nodes", "expected"),
    [
        pytest.param(tasks("web", 2), [node("a"), node("b")], {"web-0": "a", "web-1": "b"}, id="spread-2-over-2"),
        pytest.param(
            tasks("web", 4),
            [node("a"), node("b"), node("c")],
            {"web-0": "a", "web-1": "b", "web-2": "c", "web-3": "a"},
            id="spread-4-over-3",
        ),
        pytest.param(
            tasks("web", 2),
            [node("a", task_count=1, web=1), node("b"), node("c")],
            {"web-0": "b", "web-1": "c"},
            id="fewest-of-service-first",
        ),
        pytest.param(
            tasks("web", 1),
            [node("a", task_count=5, db=5), node("b", task_count=1, db=1)],
            {"web-0": "b"},
            id="then-fewest-tasks",
        ),
        pytest.param(
            tasks("web", 1),
            [node("b", task_count=3, db=3), node("a", task_count=1, web=1)],
            {"web-0": "b"},
            id="service-count-beats-total",
        ),
        pytest.param(tasks("web", 2), [node("a", ready=False), node("b")], {"web-0": "b", "web-1": "b"}, id="skip-down"),
        pytest.param(tasks("web", 1), [node("c"), node("b"), node("a")], {"web-0": "a"}, id="tie-by-node-id"),
    ],
)
def test_place_table(requests: list[TaskRequest], nodes: list[NodeInfo], expected: dict[str, str]) -> None:
    plan = place(requests, nodes)
    assert dict(plan.placements) == expected
    assert dict(plan.unplaced) == {}


def test_place_is_deterministic_whatever_the_node_order() -> None:
    nodes = [node("a"), node("b"), node("c")]
    first = place(tasks("web", 5), nodes)
    assert place(tasks("web", 5), list(reversed(nodes))) == first


@pytest.mark.parametrize(
    ("nodes", "reason"),
    [
        pytest.param([node("a", ready=False), node("b", ready=False)], "no ready nodes (2 nodes: down)", id="all-down"),
        pytest.param([], "no ready nodes (0 nodes)", id="no-nodes"),
    ],
)
def test_reason_when_nothing_fits(nodes: list[NodeInfo], reason: str) -> None:
    plan = place(tasks("web", 2), nodes)
    assert dict(plan.placements) == {}
    assert dict(plan.unplaced) == {"web-0": reason, "web-1": reason}


def test_place_does_not_change_its_inputs() -> None:
    nodes = [node("a", task_count=1, web=1), node("b")]
    place(tasks("web", 3), nodes)
    assert nodes == [node("a", task_count=1, web=1), node("b")]


@given(replicas=st.integers(min_value=0, max_value=60), node_count=st.integers(min_value=1, max_value=8))
def test_spread_differs_by_at_most_one_when_all_nodes_ready(replicas: int, node_count: int) -> None:
    nodes = [node(f"n{i}") for i in range(node_count)]
    plan = place(tasks("web", replicas), nodes)
    counts = [per_node(plan)[n.id] for n in nodes]
    assert sum(counts) == replicas
    assert max(counts) - min(counts) <= 1


def test_public_surface() -> None:
    import scheduler

    assert sorted(scheduler.__all__) == ["NodeInfo", "Plan", "TaskRequest", "place"]
