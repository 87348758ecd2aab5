from __future__ import annotations

import pytest

from scheduler import Availability, NodeInfo, Port, Reasons, Requirements, parse_constraint
from scheduler.feasible import (
    DOWN,
    DRAINED,
    INSUFFICIENT_CPU,
    INSUFFICIENT_MEMORY,
    MAX_REPLICAS,
    NOT_DRAINED,
    NOT_PAUSED,
    PAUSED,
    READY,
    BelowMaxReplicas,
    Check,
    CpuFits,
    HoldsVolumesOf,
    MemoryFits,
    PortFree,
    Satisfies,
    explain,
    fit_checks,
    node_checks,
)
from scheduler.ledger import Ledger

GiB = 1 << 30


def node(**fields: object) -> NodeInfo:
    return NodeInfo(**{"id": "n", "cpu_millis": 1000, "memory_bytes": GiB, **fields})  # type: ignore[arg-type]


CASES = [
    # (check, node, passes)
    (READY, node(ready=True), True),
    (READY, node(ready=False), False),
    (NOT_DRAINED, node(), True),
    (NOT_DRAINED, node(availability=Availability.PAUSE), True),
    (NOT_DRAINED, node(availability=Availability.DRAIN), False),
    (NOT_PAUSED, node(availability=Availability.DRAIN), True),
    (NOT_PAUSED, node(availability=Availability.PAUSE), False),
    (Satisfies(parse_constraint("node.labels.zone == a")), node(labels={"zone": "a"}), True),
    (Satisfies(parse_constraint("node.labels.zone == a")), node(labels={"zone": "b"}), False),
    (Satisfies(parse_constraint("node.hostname != h1")), node(hostname="h1"), False),
    (HoldsVolumesOf("data"), node(service_counts={"data": 1}), True),
    (HoldsVolumesOf("data"), node(service_counts={"web": 1}), False),
    (BelowMaxReplicas("web", 2), node(service_counts={"web": 1}), True),
    (BelowMaxReplicas("web", 2), node(service_counts={"web": 2}), False),
    (CpuFits(600), node(allocated_cpu_millis=400), True),
    (CpuFits(601), node(allocated_cpu_millis=400), False),
    (CpuFits(1), node(cpu_millis=0), False),
    (MemoryFits(GiB // 2), node(allocated_memory_bytes=GiB // 2), True),
    (MemoryFits(GiB // 2 + 1), node(allocated_memory_bytes=GiB // 2), False),
    (PortFree(Port(80)), node(used_ports=frozenset({Port(80, "udp"), Port(81)})), True),
    (PortFree(Port(80)), node(used_ports=frozenset({Port(80)})), False),
]


@pytest.mark.parametrize(("check", "info", "passes"), CASES)
def test_check(check: Check, info: NodeInfo, passes: bool) -> None:
    assert check.keep(Ledger([info]), [0]) == ([0] if passes else [])


@pytest.mark.parametrize(
    ("check", "reason"),
    [
        (READY, DOWN),
        (NOT_DRAINED, DRAINED),
        (NOT_PAUSED, PAUSED),
        (Satisfies(parse_constraint("node.labels.zone in (a,b)")), "constraint node.labels.zone in (a, b) not met"),
        (HoldsVolumesOf("data"), "no container of data (volumes_from)"),
        (BelowMaxReplicas("web", 1), MAX_REPLICAS),
        (CpuFits(1), INSUFFICIENT_CPU),
        (MemoryFits(1), INSUFFICIENT_MEMORY),
        (PortFree(Port(53, "udp")), "port 53/udp in use"),
    ],
)
def test_reasons_are_constant_per_check(check: Check, reason: str) -> None:
    assert check.reason == reason


def test_keep_filters_a_batch_in_order() -> None:
    ledger = Ledger([node(id="a"), node(id="b", ready=False), node(id="c")])
    assert READY.keep(ledger, [2, 1, 0]) == [2, 0]


def test_chains_hold_only_what_the_task_needs_in_order() -> None:
    bare = Requirements()
    assert node_checks(bare) == (READY, NOT_DRAINED, NOT_PAUSED)
    assert fit_checks("web", bare) == ()
    full = Requirements(
        cpu_millis=1,
        memory_bytes=2,
        ports=(Port(80), Port(443)),
        constraints=(parse_constraint("node.labels.zone == a"),),
        max_replicas_per_node=3,
        volumes_from=("data",),
    )
    assert node_checks(full)[3:] == (Satisfies(parse_constraint("node.labels.zone == a")),)
    assert fit_checks("web", full) == (
        HoldsVolumesOf("data"),
        BelowMaxReplicas("web", 3),
        CpuFits(1),
        MemoryFits(2),
        PortFree(Port(80)),
        PortFree(Port(443)),
    )


def test_explain_counts_the_first_failing_reason_per_node_most_first() -> None:
    ledger = Ledger(
        [
            node(id="down", ready=False, allocated_memory_bytes=GiB),  # counted once, as down
            node(id="full1", allocated_memory_bytes=GiB),
            node(id="full2", allocated_memory_bytes=GiB),
            node(id="full3", allocated_memory_bytes=GiB),
            node(id="port1", used_ports=frozenset({Port(80)})),
            node(id="port2", used_ports=frozenset({Port(80)})),
        ]
    )
    requirements = Requirements(memory_bytes=1, ports=(Port(80),))
    reasons = explain(ledger, node_checks(requirements) + fit_checks("web", requirements))
    assert reasons == Reasons(((INSUFFICIENT_MEMORY, 3), ("port 80/tcp in use", 2), (DOWN, 1)))
    assert str(reasons) == "no node fits (3 nodes: insufficient memory; 2 nodes: port 80/tcp in use; 1 node: down)"


def test_explain_without_nodes() -> None:
    assert str(explain(Ledger([]), node_checks(Requirements()))) == "no nodes in the cluster"
