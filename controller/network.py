"""The cluster network as the controller sees it: node subnets, peers and link endpoints.

Each node gets one /24 of the cluster CIDR, kept on its Node and claimed under
``/moorage/subnets/<net>`` in the same transaction (create-if-absent), so two
nodes registering at once can never get the same one. Claims are never
overwritten: a subnet stays its node's across agent restarts.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator

from moorage.v1 import agent_pb2, types_pb2

SUBNETS = "/moorage/subnets/"
DEFAULT_CLUSTER_CIDR = "10.244.0.0/16"
NODE_PREFIX = 24


def subnet_key(subnet: str) -> str:
    return SUBNETS + subnet.replace("/", "-")


def check_cluster_cidr(cidr: str) -> ipaddress.IPv4Network:
    """The CIDR as a network; ValueError naming the problem unless it holds at least one /24."""
    try:
        network = ipaddress.IPv4Network(cidr)
    except ValueError as err:
        raise ValueError(f"cluster CIDR {cidr!r} is not an IPv4 network: {err}") from None
    if network.prefixlen > NODE_PREFIX:
        raise ValueError(f"cluster CIDR {cidr} is smaller than one node subnet (/{NODE_PREFIX})")
    return network


def candidates(cluster_cidr: str, used: Iterable[str]) -> Iterator[str]:
    """The node subnets of the cluster CIDR, in order, without those in ``used``."""
    taken = set(used)
    for subnet in ipaddress.IPv4Network(cluster_cidr).subnets(new_prefix=NODE_PREFIX):
        if str(subnet) not in taken:
            yield str(subnet)


def peers(nodes: Iterable[types_pb2.Node]) -> agent_pb2.Peers:
    """What every agent needs for its routes: the nodes that have a subnet (any state: a node
    that is down may be back with its containers in a moment)."""
    kept = sorted((n for n in nodes if n.subnet), key=lambda n: n.id)
    return agent_pb2.Peers(nodes=[types_pb2.Node(id=n.id, address=n.address, subnet=n.subnet) for n in kept])


def linked_services(tasks: Iterable[types_pb2.Task]) -> list[str]:
    """The services the live tasks link to."""
    return sorted(
        {link.service for t in tasks if t.desired_state == types_pb2.TASK_STATE_RUNNING for link in t.spec.links}
    )


def endpoints(service: str, tasks: Iterable[types_pb2.Task]) -> agent_pb2.ServiceEndpoints:
    """The running tasks of ``service`` that have an address."""
    running = sorted(
        (
            t
            for t in tasks
            if t.address
            and t.desired_state == types_pb2.TASK_STATE_RUNNING
            and t.observed_state == types_pb2.TASK_STATE_RUNNING
        ),
        key=lambda t: t.id,
    )
    return agent_pb2.ServiceEndpoints(
        service=service,
        endpoints=[
            agent_pb2.Endpoint(
                task_id=t.id, node_id=t.node_id, address=t.address, healthy=t.health != types_pb2.TASK_HEALTH_UNHEALTHY
            )
            for t in running
        ],
    )
