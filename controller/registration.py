"""Registration: the node an agent's ``Register`` describes, written READY."""

from __future__ import annotations

from controller.clock import now
from controller.store import Put, Store, node_key, retry_on_conflict
from controller.subnets import claim_subnet
from moorage.v1 import agent_pb2, types_pb2


async def register_node(store: Store, node_id: str, register: agent_pb2.Register, cluster_cidr: str) -> str:
    """Mark the node READY, keeping what the cluster set on it (availability, labels, subnet)
    under the agent's own; its subnet (claimed now if it had none)."""

    async def upsert() -> str:
        existing = await store.get_node(node_id)
        stamp = now()
        node = types_pb2.Node()
        if existing is not None:
            node.CopyFrom(existing)
        else:
            node.registered_at.CopyFrom(stamp)
        node.id, node.hostname, node.address = node_id, register.hostname, register.address
        node.labels.update(register.labels)
        node.state = types_pb2.NODE_STATE_READY
        node.resources.CopyFrom(register.resources)
        node.last_seen.CopyFrom(stamp)
        claim = [] if node.subnet else await claim_subnet(store, node, cluster_cidr)
        await store.commit([Put(node_key(node_id), node, existing.version if existing else 0), *claim])
        return node.subnet

    return await retry_on_conflict(upsert)
