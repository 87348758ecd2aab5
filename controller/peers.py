"""Peers: every node's address and subnet, sent to each agent (for its routes) when they change."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from controller import network
from controller.errors import StoreError
from controller.store import Store
from moorage.v1 import agent_pb2

log = structlog.get_logger("controller.peers")


class PeerUpdates:
    def __init__(self, node_id: str, store: Store, send: Callable[[agent_pb2.ControllerMessage], None]) -> None:
        self._node_id = node_id
        self._store = store
        self._send = send
        self._dirty = asyncio.Event()

    def changed(self) -> None:
        """A node's address or subnet may have changed."""
        self._dirty.set()

    async def run(self) -> None:
        """Send the node every node's address and subnet each time they change."""
        sent: agent_pb2.Peers | None = None
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                peers = network.peers((await self._store.list_nodes()).items)
            except StoreError:
                log.warning("could not read the nodes, retrying", node=self._node_id, exc_info=True)
                await asyncio.sleep(0.5)
                self._dirty.set()
                continue
            if peers != sent:
                sent = peers
                self._send(agent_pb2.ControllerMessage(peers=peers))
