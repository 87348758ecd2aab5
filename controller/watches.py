"""etcd watches that turn changes into work for the reconciler and the sessions.

The handlers here only note *what* changed (a service name, a node's
assignments, "placement needed", a heartbeat key gone); they never act on it
themselves. They also turn each change into cluster events for
``WatchEvents``. Every controller runs them, leader or not.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from controller.cache import Cache
from controller.errors import StoreError
from controller.events import EventHub, leader_event, node_events, task_events
from controller.reconciler import Reconciler
from controller.sessions import Sessions
from controller.store import ALIVE, LEADER, NODES, PREFIX, SERVICES, TASKS, Change, Store
from moorage.v1 import types_pb2

log = structlog.get_logger("controller.watches")

Handler = Callable[[Change | None], None]


class Router:
    """Maps changes under each prefix to queue keys and session notifications."""

    def __init__(self, reconciler: Reconciler, sessions: Sessions, events: EventHub) -> None:
        self._reconciler = reconciler
        self._sessions = sessions
        self._events = events

    def service(self, change: Change | None) -> None:
        if change is None:
            self._reconciler.resync()
        else:
            self._reconciler.service_changed(change.key.removeprefix(SERVICES))

    def node(self, change: Change | None) -> None:
        # A node that came or went may let pending tasks be placed.
        self._reconciler.placement_needed()
        self._sessions.peers_changed()  # agents route to every node's subnet
        if change is None:
            return
        prev, cur = (types_pb2.Node.FromString(v) if v is not None else None for v in (change.prev, change.value))
        if prev is None or cur is None or (prev.state, prev.availability) != (cur.state, cur.availability):
            self._reconciler.nodes_changed()
        self._events.publish(node_events(prev, cur))

    def alive(self, change: Change | None) -> None:
        if change is None:
            self._reconciler.resync()
        elif change.value is None:
            self._reconciler.node_changed(change.key.removeprefix(ALIVE))

    def leader_key(self, change: Change | None) -> None:
        if change is None or change.key != LEADER:
            return
        self._events.publish([leader_event(change.value.decode() if change.value is not None else None)])

    def task(self, change: Change | None) -> None:
        if change is None:
            self._reconciler.resync()
            self._sessions.all_changed()
            return
        prev, cur = (types_pb2.Task.FromString(v) if v is not None else None for v in (change.prev, change.value))
        self._events.publish(task_events(prev, cur))
        versions = [t for t in (prev, cur) if t is not None]
        for task in versions:
            self._reconciler.service_changed(task.service)
        self._sessions.nodes_changed({t.node_id for t in versions if t.node_id})
        if cur is not None and not cur.node_id and cur.desired_state == types_pb2.TASK_STATE_RUNNING:
            self._reconciler.placement_needed()

    def handlers(self) -> dict[str, Handler]:
        return {SERVICES: self.service, NODES: self.node, TASKS: self.task, ALIVE: self.alive, LEADER: self.leader_key}

    def route(self, change: Change | None) -> None:
        """``change`` to the handler of its prefix; ``None`` (anything may have changed) to all."""
        for prefix, handle in self.handlers().items():
            if change is None or change.key.startswith(prefix):
                handle(change)


async def follow(store: Store, cache: Cache, router: Router, *, max_delay: float = 5.0) -> None:
    """Feed every change under the store's prefix to ``cache``, then to ``router``, until cancelled.

    One watch for every prefix: its changes come in revision order, so the cache
    knows up to which revision it is complete (see ``Cache.fresh``). A broken
    watch is re-created after a growing pause; each new watch starts with
    ``None`` (anything may have changed meanwhile): the cache is filled afresh
    before the handlers hear of it, so nothing is missed.
    """
    delay = 0.1
    while True:
        try:
            async for change in store.watch(PREFIX):
                if change is None:
                    await cache.reload()
                else:
                    cache.apply(change)
                router.route(change)
                delay = 0.1
        except StoreError as e:
            log.warning("watch broke, re-creating", prefix=PREFIX, error=str(e), retry_in=delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_delay)
