"""Subnet claims: each node's /24 of the cluster CIDR, claimed under ``/moorage/subnets/<net>``
in the transaction that writes the node (see controller.network for the arithmetic)."""

from __future__ import annotations

from controller import network
from controller.errors import StoreError
from controller.store import Put, Store
from moorage.v1 import types_pb2


async def claim_subnet(store: Store, node: types_pb2.Node, cluster_cidr: str) -> list[Put]:
    """Give ``node`` the first free /24 of the cluster CIDR; the claim to commit with it (none if
    the node had claimed it before). A claim made meanwhile by another node fails the commit."""
    used = [n.subnet for n in (await store.list_nodes()).items if n.id != node.id]
    for subnet in network.candidates(cluster_cidr, used):
        raw = await store.get_raw(network.subnet_key(subnet))
        owner = types_pb2.Node.FromString(raw).id if raw is not None else None
        if owner is None or owner == node.id:
            node.subnet = subnet
            return [Put(network.subnet_key(subnet), types_pb2.Node(id=node.id), 0)] if owner is None else []
    raise StoreError(f"no free /{network.NODE_PREFIX} left in the cluster CIDR {cluster_cidr}")
