from __future__ import annotations

from collections import Counter

import pytest

from scheduler import (
    Attribute,
    Availability,
    Config,
    NodeInfo,
    Plan,
    Port,
    Requirements,
    Strategy,
    TaskRequest,
    parse_constraint,
    place,
)
from scheduler.place import sample_size

GiB = 1 << 30
ZONE = Attribute("labels", "zone")


def tasks(service: str, n: int, requirements: Requirements = Requirements()) -> list[TaskRequest]:
    return [TaskRequest(task_id=f"{service}-{i}", service=service, requirements=requirements) for i in range(n)]


def node(node_id: str, **fields: object) -> NodeInfo:
    return NodeInfo(**{"id": node_id, "hostname": node_id, "cpu_millis": 1000, "memory_bytes": GiB, **fields})  # type: ignore[arg-type]


def per_node(plan: Plan) -> dict[str, int]:
    return dict(Counter(plan.placements.values()))


@pytest.mark.parametrize(
    ("requests", "nodes", "config", "expected"),
    [
        pytest.param(tasks("web", 2), [node("a"), node("b")], Config(), {"a": 1, "b": 1}, id="spread-2-over-2"),
        pytest.param(
            tasks("web", 7), [node("a"), node("b"), node("c")], Config(), {"a": 3, "b": 2, "c": 2}, id="spread-7-over-3"
        ),
        pytest.param(
            tasks("web", 2),
            [node("a", service_counts={"web": 1}), node("b"), node("c")],
            Config(),
            {"b": 1, "c": 1},
            id="fewest-of-service-first",
        ),
        pytest.param(
            tasks("web", 1),
            [node("a", service_counts={"db": 5}), node("b", service_counts={"db": 1})],
            Config(),
            {"b": 1},
            id="then-fewest-tasks",
        ),
        pytest.param(
            tasks("web", 1),
            [node("a", allocated_cpu_millis=900), node("b", allocated_cpu_millis=100)],
            Config(),
            {"b": 1},
            id="then-least-reserved",
        ),
        pytest.param(
            tasks("web", 1),
            [node("b", service_counts={"db": 3}), node("a", service_counts={"web": 1})],
            Config(),
            {"b": 1},
            id="service-count-beats-total",
        ),
        pytest.param(
            tasks("web", 3),
            [node("a", ready=False), node("b", availability=Availability.DRAIN),
             node("c", availability=Availability.PAUSE), node("d")],
            Config(),
            {"d": 3},
            id="only-ready-active",
        ),  # fmt: skip
        pytest.param(
            tasks("web", 4, Requirements(cpu_millis=400)),
            [node("a"), node("b"), node("c")],
            Config(strategy=Strategy.BINPACK),
            {"x": 2, "y": 2},
            id="binpack-fills-a-node-first",
        ),
        pytest.param(
            tasks("web", 4, Requirements(spread=(ZONE,))),
            [node("a1", labels={"zone": "a"}), node("a2", labels={"zone": "a"}),
             node("a3", labels={"zone": "a"}), node("b1", labels={"zone": "b"})],
            Config(),
            {"x": 1, "y": 1, "b1": 2},
            id="spread-over-zones",
        ),  # fmt: skip
        pytest.param(
            tasks("web", 4, Requirements(constraints=(parse_constraint("node.labels.disk in (ssd, nvme)"),))),
            [node("a", labels={"disk": "ssd"}), node("b", labels={"disk": "hdd"}), node("c", labels={"disk": "nvme"})],
            Config(),
            {"a": 2, "c": 2},
            id="constraint-in",
        ),
        pytest.param(
            tasks("web", 3, Requirements(constraints=(parse_constraint("node.hostname != a"),))),
            [node("a"), node("b")],
            Config(),
            {"b": 3},
            id="constraint-hostname",
        ),
    ],
)
def test_place_table(requests: list[TaskRequest], nodes: list[NodeInfo], config: Config, expected: dict[str, int]) -> None:
    plan = place(requests, nodes, config)
    assert dict(plan.unplaced) == {}
    counts = per_node(plan)
    # "x", "y" stand for whichever nodes the seed picks
    named = {k: v for k, v in expected.items() if k not in ("x", "y")}
    assert {k: counts.get(k, 0) for k in named} == named
    assert sorted(counts.values()) == sorted(expected.values())


@pytest.mark.parametrize(
    ("requests", "nodes", "placed", "reason"),
    [
        pytest.param(tasks("web", 1), [], 0, "no nodes in the cluster", id="no-nodes"),
        pytest.param(
            tasks("web", 2), [node("a", ready=False), node("b", ready=False)], 0,
            "no node fits (2 nodes: down)", id="all-down",
        ),  # fmt: skip
        pytest.param(
            tasks("web", 3, Requirements(ports=(Port(80),))),
            [node("a"), node("b"), node("c", ready=False)],
            2,
            "no node fits (2 nodes: port 80/tcp in use; 1 node: down)",
            id="port-conflict",
        ),
        pytest.param(
            tasks("web", 3, Requirements(memory_bytes=GiB // 2)),
            [node("a"), node("b", allocated_memory_bytes=GiB // 2 + 1), node("c", memory_bytes=0)],
            2,
            "no node fits (3 nodes: insufficient memory)",
            id="insufficient-memory",
        ),
        pytest.param(
            tasks("web", 3, Requirements(cpu_millis=600)),
            [node("a"), node("b")],
            2,
            "no node fits (2 nodes: insufficient cpu)",
            id="insufficient-cpu",
        ),
        pytest.param(
            tasks("web", 5, Requirements(max_replicas_per_node=2)),
            [node("a"), node("b", service_counts={"web": 1})],
            3,
            "no node fits (2 nodes: max replicas per node reached)",
            id="max-replicas",
        ),
        pytest.param(
            tasks("web", 1, Requirements(constraints=(parse_constraint("node.labels.zone == a"),))),
            [node("a", labels={"zone": "b"}), node("b", availability=Availability.DRAIN)],
            0,
            "no node fits (1 node: drained; 1 node: constraint node.labels.zone == a not met)",
            id="constraint-and-drain",
        ),
    ],
)
def test_reasons_when_nothing_fits(requests: list[TaskRequest], nodes: list[NodeInfo], placed: int, reason: str) -> None:
    plan = place(requests, nodes)
    assert len(plan.placements) == placed
    assert {str(r) for r in plan.unplaced.values()} == {reason}
    assert len(plan.unplaced) == len(requests) - placed


def test_volumes_from_lands_on_the_holder_placed_in_the_same_plan() -> None:
    consumer = tasks("app", 2, Requirements(volumes_from=("data",)))
    plan = place([*consumer, *tasks("data", 1)], [node("a"), node("b"), node("c")])
    holder = plan.placements["data-0"]
    assert plan.placements["app-0"] == plan.placements["app-1"] == holder


def test_volumes_from_picks_among_existing_holders() -> None:
    nodes = [node("a"), node("b", service_counts={"data": 1}), node("c")]
    plan = place(tasks("app", 1, Requirements(volumes_from=("data",))), nodes)
    assert dict(plan.placements) == {"app-0": "b"}


def test_volumes_from_says_when_the_holder_cannot_take_it() -> None:
    nodes = [node("a"), node("b", service_counts={"data": 1}, allocated_memory_bytes=GiB), node("c")]
    plan = place(tasks("app", 1, Requirements(memory_bytes=1, volumes_from=("data",))), nodes)
    assert str(plan.unplaced["app-0"]) == (
        "no node fits (2 nodes: no container of data (volumes_from); 1 node: insufficient memory)"
    )


def test_running_tasks_are_allocations_not_candidates() -> None:
    """Existing tasks are in the snapshot's counts; only the given tasks get placements."""
    nodes = [node("a", service_counts={"web": 2}, allocated_cpu_millis=800), node("b")]
    plan = place(tasks("web", 1, Requirements(cpu_millis=300)), nodes)
    assert dict(plan.placements) == {"web-0": "b"}


def test_same_seed_same_plan_whatever_the_node_order() -> None:
    nodes = [node(f"n{i}") for i in range(20)]
    first = place(tasks("web", 13), nodes, Config(seed=7))
    assert place(tasks("web", 13), list(reversed(nodes)), Config(seed=7)) == first
    assert len({place(tasks("web", 13), nodes, Config(seed=s)).placements["web-0"] for s in range(20)}) > 1


@pytest.mark.parametrize("sample", [1, 2, 5])
def test_sampling_keeps_spread_and_finds_the_last_free_node(sample: int) -> None:
    nodes = [node(f"n{i}") for i in range(10)]
    plan = place(tasks("web", 25), nodes, Config(sample=sample))
    assert sorted(per_node(plan).values()) == [2] * 5 + [3] * 5
    full = [node(f"n{i}", allocated_cpu_millis=1000) for i in range(9)] + [node("free")]
    plan = place(tasks("web", 1, Requirements(cpu_millis=1)), full, Config(sample=sample))
    assert dict(plan.placements) == {"web-0": "free"}


@pytest.mark.parametrize(("nodes", "sample"), [(1, 50), (50, 50), (5000, 50), (10_000, 54), (1 << 20, 80)])
def test_sample_size_grows_with_log_of_fleet(nodes: int, sample: int) -> None:
    assert sample_size(nodes, Config()) == sample
    assert sample_size(nodes, Config(sample=3)) == 3


def test_place_does_not_change_its_inputs() -> None:
    nodes = [node("a", service_counts={"web": 1}), node("b")]
    place(tasks("web", 3, Requirements(cpu_millis=10, ports=(Port(80),))), nodes)
    assert nodes == [node("a", service_counts={"web": 1}), node("b")]


def test_public_surface() -> None:
    import scheduler

    assert sorted(scheduler.__all__) == [
        "Attribute", "Availability", "Config", "Constraint", "ConstraintError", "NodeInfo", "Plan", "Port", "Reasons",
        "Requirements", "Strategy", "TaskRequest", "must_move", "parse_attribute", "parse_constraint", "place",
    ]  # fmt: skip
