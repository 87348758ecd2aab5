"""The controller's side of the network, pure: node subnets, peers, link endpoints."""

from __future__ import annotations

import pytest

from controller import network
from moorage.v1 import types_pb2

S = types_pb2.TaskState


def test_node_subnets_are_the_free_24s_of_the_cluster_cidr_in_order() -> None:
    found = network.candidates("10.244.0.0/22", ["10.244.1.0/24"])
    assert list(found) == ["10.244.0.0/24", "10.244.2.0/24", "10.244.3.0/24"]


def test_subnet_claim_keys_hold_no_slash() -> None:
    assert network.subnet_key("10.244.3.0/24") == "/moorage/subnets/10.244.3.0-24"


@pytest.mark.parametrize(
    ("cidr", "problem"),
    [("10.244.0.0/25", "smaller than one node subnet"), ("banana", "not an IPv4 network"), ("10.0.0.1/16", "not an IPv4")],
)
def test_a_bad_cluster_cidr_is_refused_with_the_reason(cidr: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        network.check_cluster_cidr(cidr)


def test_peers_are_the_nodes_with_a_subnet_in_any_state() -> None:
    nodes = [
        types_pb2.Node(id="h2", address="10.0.0.2", subnet="10.244.1.0/24", state=types_pb2.NODE_STATE_DOWN),
        types_pb2.Node(id="h1", address="10.0.0.1", subnet="10.244.0.0/24", hostname="x"),
        types_pb2.Node(id="h3", address="10.0.0.3"),
    ]
    peers = network.peers(nodes)
    assert [(n.id, n.address, n.subnet, n.hostname) for n in peers.nodes] == [
        ("h1", "10.0.0.1", "10.244.0.0/24", ""),
        ("h2", "10.0.0.2", "10.244.1.0/24", ""),
    ]


def task(task_id: str, observed: int, address: str = "", desired: int = S.TASK_STATE_RUNNING) -> types_pb2.Task:
    return types_pb2.Task(id=task_id, node_id="h1", address=address, observed_state=observed, desired_state=desired)


def test_endpoints_are_the_running_tasks_with_an_address_in_id_order() -> None:
    found = network.endpoints(
        "db",
        [
            task("b", S.TASK_STATE_RUNNING, "10.244.0.3"),
            task("a", S.TASK_STATE_RUNNING, "10.244.0.2"),
            task("c", S.TASK_STATE_STARTING, "10.244.0.4"),
            task("d", S.TASK_STATE_RUNNING, "10.244.0.5", desired=S.TASK_STATE_SHUTDOWN),
            task("e", S.TASK_STATE_RUNNING),
        ],
    )
    assert found.service == "db"
    assert [(e.task_id, e.address) for e in found.endpoints] == [("a", "10.244.0.2"), ("b", "10.244.0.3")]


def test_linked_services_come_from_live_tasks_only() -> None:
    web = types_pb2.Task(desired_state=S.TASK_STATE_RUNNING)
    web.spec.links.add(service="db", alias="database")
    old = types_pb2.Task(desired_state=S.TASK_STATE_SHUTDOWN)
    old.spec.links.add(service="cache")
    assert network.linked_services([web, old]) == ["db"]
