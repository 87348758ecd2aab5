"""Heartbeat leases: a session keeps ``/moorage/alive/<node>`` on an etcd lease with the node's
TTL, renewed by every ``Heartbeat``. A node whose agent stops heartbeating loses the key when
the lease runs out, and the leader marks it down (``controller.liveness``)."""

from __future__ import annotations

from controller.store import Store, alive_key


class NodeLease:
    def __init__(self, store: Store, node_id: str, ttl: int) -> None:
        self._store = store
        self._node_id = node_id
        self._ttl = ttl
        self.lease = 0

    async def grant(self) -> None:
        """A fresh lease, with the node's alive key on it."""
        self.lease = await self._store.grant(self._ttl)
        await self._store.put_leased(alive_key(self._node_id), b"", self.lease)

    async def renew(self) -> bool:
        """Renew the lease; False if it had run out (the key is gone: grant again)."""
        return await self._store.refresh(self.lease)
