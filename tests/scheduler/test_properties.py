"""Invariants of ``place`` over generated fleets and tasks."""

from __future__ import annotations

from collections import Counter, defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler import (
    Attribute,
    Availability,
    Config,
    NodeInfo,
    Port,
    Requirements,
    Strategy,
    TaskRequest,
    parse_constraint,
    place,
)

ZONE = Attribute("labels", "zone")

nodes_st = st.lists(
    st.builds(
        NodeInfo,
        id=st.just(""),
        ready=st.booleans(),
        availability=st.sampled_from(Availability),
        cpu_millis=st.integers(0, 4000),
        memory_bytes=st.integers(0, 4096),
        labels=st.fixed_dictionaries({}, optional={"zone": st.sampled_from("abc")}),
        allocated_cpu_millis=st.integers(0, 1000),
        allocated_memory_bytes=st.integers(0, 1024),
        used_ports=st.frozensets(st.builds(Port, st.sampled_from([80, 443]), st.sampled_from(["tcp", "udp"])), max_size=2),
        service_counts=st.fixed_dictionaries({}, optional={"s0": st.integers(0, 3), "s1": st.integers(0, 3)}),
    ),
    max_size=12,
).map(lambda nodes: [NodeInfo(**{**_fields(n), "id": f"n{i}", "hostname": f"h{i}"}) for i, n in enumerate(nodes)])

requirements_st = st.builds(
    Requirements,
    cpu_millis=st.integers(0, 1500),
    memory_bytes=st.integers(0, 1500),
    ports=st.lists(st.builds(Port, st.sampled_from([80, 443, 8080])), max_size=2, unique=True).map(tuple),
    constraints=st.lists(
        st.sampled_from(["node.labels.zone == a", "node.labels.zone != b", "node.hostname in (h1, h2, h3)"]).map(
            parse_constraint
        ),
        max_size=1,
    ).map(tuple),
    spread=st.sampled_from([(), (ZONE,)]),
    max_replicas_per_node=st.integers(0, 3),
    volumes_from=st.sampled_from([(), ("s0",)]),
)

batches_st = st.lists(st.tuples(st.sampled_from(["s0", "s1", "s2"]), requirements_st, st.integers(1, 8)), max_size=4)
configs_st = st.builds(
    Config, strategy=st.sampled_from(Strategy), seed=st.integers(0, 3), sample=st.sampled_from([None, 1, 3])
)


def _fields(node: NodeInfo) -> dict[str, object]:
    return {f: getattr(node, f) for f in NodeInfo.__slots__}


def expand(batches: list[tuple[str, Requirements, int]]) -> list[TaskRequest]:
    return [TaskRequest(f"{service}-{b}-{i}", service, r) for b, (service, r, n) in enumerate(batches) for i in range(n)]


@settings(max_examples=150, deadline=None)
@given(nodes=nodes_st, batches=batches_st, config=configs_st)
def test_invariants(nodes: list[NodeInfo], batches: list[tuple[str, Requirements, int]], config: Config) -> None:
    requests = expand(batches)
    plan = place(requests, nodes, config)
    by_id = {n.id: n for n in nodes}
    by_task = {t.task_id: t for t in requests}

    # every task is either placed or has reasons, and only the given tasks appear
    assert set(plan.placements) | set(plan.unplaced) == set(by_task)
    assert not set(plan.placements) & set(plan.unplaced)
    for reasons in plan.unplaced.values():
        assert str(reasons)
        assert sum(n for _, n in reasons.counts) == len(nodes)  # every node rejected for a counted reason

    cpu: Counter[str] = Counter()
    memory: Counter[str] = Counter()
    ports: defaultdict[str, list[Port]] = defaultdict(list)
    count: Counter[tuple[str, str]] = Counter()
    for task_id, node_id in plan.placements.items():
        task, node = by_task[task_id], by_id[node_id]
        r = task.requirements
        cpu[node_id] += r.cpu_millis
        memory[node_id] += r.memory_bytes
        ports[node_id] += r.ports
        count[(node_id, task.service)] += 1
        assert node.ready and node.availability is Availability.ACTIVE
        assert all(c.matches(node) for c in r.constraints)
        if r.volumes_from:
            holds = node.service_counts.get("s0", 0) + sum(
                1 for t, n in plan.placements.items() if n == node_id and by_task[t].service == "s0"
            )
            assert holds > 0
    for node in nodes:
        # no node over capacity (what it had free before the plan)
        assert cpu[node.id] <= max(0, node.cpu_millis - node.allocated_cpu_millis) or cpu[node.id] == 0
        assert memory[node.id] <= max(0, node.memory_bytes - node.allocated_memory_bytes) or memory[node.id] == 0
        # no host port used twice on a node
        assert len(ports[node.id]) == len(set(ports[node.id]))
        assert not set(ports[node.id]) & node.used_ports
    # max replicas per node, for services whose tasks all share one limit
    for service in {t.service for t in requests}:
        limits = {t.requirements.max_replicas_per_node for t in requests if t.service == service}
        if len(limits) == 1 and (limit := limits.pop()):
            for node in nodes:
                placed = count[(node.id, service)]
                assert placed == 0 or node.service_counts.get(service, 0) + placed <= limit


@settings(max_examples=80, deadline=None)
@given(
    node_count=st.integers(1, 30),
    replicas=st.integers(0, 120),
    seed=st.integers(0, 5),
    sample=st.sampled_from([None, 1, 2, 7]),
)
def test_spread_differs_by_at_most_one_when_nothing_else_constrains(
    node_count: int, replicas: int, seed: int, sample: int | None
) -> None:
    nodes = [NodeInfo(id=f"n{i}", cpu_millis=1000, memory_bytes=1000) for i in range(node_count)]
    plan = place([TaskRequest(f"t{i}", "web") for i in range(replicas)], nodes, Config(seed=seed, sample=sample))
    counts = Counter(plan.placements.values())
    per_node = [counts[n.id] for n in nodes]
    assert sum(per_node) == replicas
    assert max(per_node) - min(per_node) <= 1


@settings(max_examples=60, deadline=None)
@given(nodes=nodes_st, batches=batches_st, config=configs_st)
def test_same_seed_same_plan(nodes: list[NodeInfo], batches: list[tuple[str, Requirements, int]], config: Config) -> None:
    requests = expand(batches)
    assert place(requests, nodes, config) == place(requests, list(reversed(nodes)), config)
