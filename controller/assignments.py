"""Assignments: the full set of a node's tasks (and the endpoints of the services they link
to), sent to its agent each time they may have changed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

import structlog

from controller import network
from controller.cache import Cache
from moorage.v1 import agent_pb2, types_pb2

log = structlog.get_logger("controller.assignments")


def desired_view(tasks: Iterable[types_pb2.Task]) -> list[tuple[str, int, bytes]]:
    """What an agent must act on: which tasks, their desired state and spec.

    Status reports change the observed fields of a task; resending Assignments
    for those alone would only echo the agent's own report back to it.
    """
    return sorted((t.id, t.desired_state, t.spec.SerializeToString(deterministic=True)) for t in tasks)


class Assigner:
    """One node's assignments, read from the cache (a node's tasks, not every task)."""

    def __init__(self, node_id: str, cache: Cache, send: Callable[[agent_pb2.ControllerMessage], None]) -> None:
        self._node_id = node_id
        self._cache = cache
        self._send = send
        self._dirty = asyncio.Event()
        self.links: list[str] = []  # the services its tasks link to

    def changed(self) -> None:
        """The node's tasks (or a linked service's) may have changed."""
        self._dirty.set()

    async def run(self) -> None:
        """Send the node its tasks each time they (may) have changed."""
        sent: tuple[list[tuple[str, int, bytes]], list[bytes]] | None = None
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                await self._cache.fresh()
                listing = self._cache.tasks(node_id=self._node_id)
            except Exception:
                log.warning("could not read assignments, retrying", node=self._node_id, exc_info=True)
                await asyncio.sleep(0.5)
                self._dirty.set()
                continue
            # All of them, the ended history too: the agent keeps its containers (and logs) until it is pruned.
            tasks = listing.items
            self.links = network.linked_services(tasks)
            linked = [network.endpoints(service, self._cache.tasks(service=service).items) for service in self.links]
            view = (desired_view(tasks), [e.SerializeToString(deterministic=True) for e in linked])
            if view == sent:
                continue
            sent = view
            # The etcd revision of the read: increases across sessions and controllers.
            assignments = agent_pb2.Assignments(version=listing.revision, tasks=tasks, endpoints=linked)
            self._send(agent_pb2.ControllerMessage(assignments=assignments))
