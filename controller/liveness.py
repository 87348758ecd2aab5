"""Node liveness: a node whose heartbeat key has expired is marked DOWN.

Agents' sessions keep ``/moorage/alive/<node>`` on a lease renewed by each
heartbeat (``controller.sessions``). The leader checks a node when that key
goes away (and every node when it starts leading); the check and the write
are one transaction that also compares the alive key's absence, so a node
whose agent re-registered meanwhile is never marked down. Marking a node
DOWN is all this does: the reconciler then moves its tasks elsewhere.

A new leader waits one TTL before its first verdicts: agents of a controller
that just died need that long to reach another one and renew their keys.
"""

from __future__ import annotations

import structlog

from controller.clock import now
from controller.store import Check, Put, Store, alive_key, node_key
from moorage.v1 import types_pb2

log = structlog.get_logger("controller.liveness")


async def check_node(store: Store, node_id: str) -> bool:
    """Mark ``node_id`` DOWN if its heartbeat key is gone; True if it did."""
    node = await store.get_node(node_id)
    if node is None or node.state == types_pb2.NODE_STATE_DOWN:
        return False
    if await store.get_raw(alive_key(node_id)) is not None:
        return False
    node.state = types_pb2.NODE_STATE_DOWN
    node.last_seen.CopyFrom(now())
    await store.commit([Put(node_key(node_id), node, node.version), Check(alive_key(node_id), 0)])
    log.warning("node down: no heartbeat within its TTL", node=node_id)
    return True
