"""etcd watches that turn changes into work for the reconciler and the sessions.

The handlers here only note *what* changed (a service name, a node's
assignments, "placement needed"); they never act on it themselves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from controller.errors import StoreError
from controller.reconciler import Reconciler
from controller.sessions import Sessions
from controller.store import NODES, SERVICES, TASKS, Change, Store
from moorage.v1 import types_pb2

log = structlog.get_logger("controller.watches")

Handler = Callable[[Change | None], None]


class Router:
    """Maps changes under each prefix to queue keys and session notifications."""

    def __init__(self, reconciler: Reconciler, sessions: Sessions) -> None:
        self._reconciler = reconciler
        self._sessions = sessions

    def service(self, change: Change | None) -> None:
        if change is None:
            self._reconciler.resync()
        else:
            self._reconciler.service_changed(change.key.removeprefix(SERVICES))

    def node(self, change: Change | None) -> None:
        # A node that came or went may let pending tasks be placed.
        self._reconciler.placement_needed()

    def task(self, change: Change | None) -> None:
        if change is None:
            self._reconciler.resync()
            self._sessions.all_changed()
            return
        versions = [types_pb2.Task.FromString(v) for v in (change.prev, change.value) if v is not None]
        for task in versions:
            self._reconciler.service_changed(task.service)
        self._sessions.nodes_changed({t.node_id for t in versions if t.node_id})
        current = versions[-1] if change.value is not None else None
        if current is not None and not current.node_id and current.desired_state == types_pb2.TASK_STATE_RUNNING:
            self._reconciler.placement_needed()

    def handlers(self) -> dict[str, Handler]:
        return {SERVICES: self.service, NODES: self.node, TASKS: self.task}


async def follow(store: Store, prefix: str, handle: Handler, *, max_delay: float = 5.0) -> None:
    """Feed every change under ``prefix`` to ``handle`` until cancelled.

    A broken watch is re-created after a growing pause; each new watch starts
    with ``None`` (anything may have changed meanwhile), so nothing is missed.
    """
    delay = 0.1
    while True:
        try:
            async for change in store.watch(prefix):
                handle(change)
                delay = 0.1
        except StoreError as e:
            log.warning("watch broke, re-creating", prefix=prefix, error=str(e), retry_in=delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_delay)
