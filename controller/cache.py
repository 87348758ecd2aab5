"""Every task and node as the controller's watch last delivered them, indexed for its readers.

The reconciler's steps and the agent sessions' assignment reads used to list every
task from etcd each time (a service step, a placement pass, each node's every
refresh): O(all tasks) reads and decodes per change, so a burst of status reports
on a large cluster cost O(tasks²). The cache is filled by one listing when the
watch (re)starts and then kept current from the watch's changes; its readers get
one service's or one node's tasks from an index.

Reads stay as fresh as direct etcd reads were: ``fresh`` asks etcd for its current
revision (one small read) and waits until the watch has delivered every change up
to it, so whatever was committed before the call is in the cache. Writes still go
to etcd as compare-and-swap transactions on the revisions read here, so a change
that lands after the read fails the compare as before. The cache's messages are
shared: readers copy before they change one (every writer here already does).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable

from controller.errors import StoreUnavailableError
from controller.store import NODES, TASKS, Change, Listing, Store
from moorage.v1 import types_pb2

# How long a read waits for the watch to catch up with etcd before it fails (and is retried).
CATCH_UP_TIMEOUT = 5.0


class Cache:
    def __init__(self, store: Store) -> None:
        self._store = store
        self.revision = 0  # every change up to this etcd revision is applied
        self._advanced = asyncio.Event()
        self._tasks: dict[str, types_pb2.Task] = {}
        self._by_service: defaultdict[str, dict[str, types_pb2.Task]] = defaultdict(dict)
        self._by_node: defaultdict[str, dict[str, types_pb2.Task]] = defaultdict(dict)
        self._nodes: dict[str, types_pb2.Node] = {}
        # Changes at or below these revisions are already in the listing that filled the cache.
        self._tasks_read_at = 0
        self._nodes_read_at = 0

    # -- filling (by the watch) ----------------------------------------------------------------

    async def reload(self) -> None:
        """Fill the cache from etcd (the watch has just started: anything may have changed)."""
        tasks = await self._store.list_tasks()
        nodes = await self._store.list_nodes()
        self._tasks.clear()
        self._by_service.clear()
        self._by_node.clear()
        for task in tasks.items:
            self._put_task(task)
        self._nodes = {n.id: n for n in nodes.items}
        self._tasks_read_at, self._nodes_read_at = tasks.revision, nodes.revision
        self._advance(min(tasks.revision, nodes.revision))

    def apply(self, change: Change) -> None:
        """One change from the watch (of every key under the prefix: each moves the revision)."""
        if change.key.startswith(TASKS) and change.revision > self._tasks_read_at:
            self._drop_task(change.key.removeprefix(TASKS))
            if change.value is not None:
                task = types_pb2.Task.FromString(change.value)
                task.version = change.revision
                self._put_task(task)
        elif change.key.startswith(NODES) and change.revision > self._nodes_read_at:
            node_id = change.key.removeprefix(NODES)
            if change.value is None:
                self._nodes.pop(node_id, None)
            else:
                node = types_pb2.Node.FromString(change.value)
                node.version = change.revision
                self._nodes[node_id] = node
        self._advance(change.revision)

    def _put_task(self, task: types_pb2.Task) -> None:
        self._tasks[task.id] = task
        self._by_service[task.service][task.id] = task
        if task.node_id:
            self._by_node[task.node_id][task.id] = task

    def _drop_task(self, task_id: str) -> None:
        task = self._tasks.pop(task_id, None)
        if task is None:
            return
        _discard(self._by_service, task.service, task_id)
        if task.node_id:
            _discard(self._by_node, task.node_id, task_id)

    def _advance(self, revision: int) -> None:
        if revision > self.revision:
            self.revision = revision
            self._advanced.set()
            self._advanced = asyncio.Event()

    # -- reading ---------------------------------------------------------------------------------

    async def fresh(self) -> int:
        """Wait until the cache holds every change committed before this call; its revision then."""
        wanted = await self._store.revision()
        try:
            async with asyncio.timeout(CATCH_UP_TIMEOUT):
                while self.revision < wanted:
                    await self._advanced.wait()
        except TimeoutError:
            raise StoreUnavailableError(
                f"the watch is behind etcd (at revision {self.revision}, etcd at {wanted})"
            ) from None
        return self.revision

    def tasks(self, *, service: str | None = None, node_id: str | None = None) -> Listing[types_pb2.Task]:
        """Every task, or those of one service and/or one node (read-only messages)."""
        if service is not None:
            found: Iterable[types_pb2.Task] = self._by_service.get(service, {}).values()
            if node_id is not None:
                found = [t for t in found if t.node_id == node_id]
        elif node_id is not None:
            found = self._by_node.get(node_id, {}).values()
        else:
            found = self._tasks.values()
        return Listing(self.revision, list(found))

    def nodes(self) -> Listing[types_pb2.Node]:
        return Listing(self.revision, list(self._nodes.values()))


def _discard(index: defaultdict[str, dict[str, types_pb2.Task]], key: str, task_id: str) -> None:
    members = index.get(key)
    if members is not None:
        members.pop(task_id, None)
        if not members:
            del index[key]
