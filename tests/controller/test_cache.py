"""The controller's watch-fed cache of tasks and nodes, against a real etcd."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from controller.cache import Cache
from controller.store import PREFIX, Change, Delete, Put, Store, node_key, task_key
from moorage.localcluster.etcd import Etcd
from moorage.v1 import types_pb2
from tests.controller.test_store import with_store


def task(task_id: str, service: str, node_id: str = "") -> types_pb2.Task:
    return types_pb2.Task(id=task_id, service=service, node_id=node_id, desired_state=types_pb2.TASK_STATE_RUNNING)


def ids(tasks: list[types_pb2.Task]) -> list[str]:
    return sorted(t.id for t in tasks)


@contextlib.asynccontextmanager
async def watched(store: Store) -> AsyncIterator[Cache]:
    """A cache fed by a watch of the whole prefix, as the controller's ``follow`` feeds it."""
    cache = Cache(store)

    async def feed() -> None:
        async for change in store.watch(PREFIX):
            if change is None:
                await cache.reload()
            else:
                cache.apply(change)

    feeding = asyncio.create_task(feed())
    try:
        yield cache
    finally:
        feeding.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feeding


def test_fresh_reads_see_every_write_committed_before_them(etcd: Etcd) -> None:
    async def body(store: Store) -> None:
        node = types_pb2.Node(id="n1")
        await store.commit([Put(task_key("a1"), task("a1", "a", "n1"), 0), Put(node_key("n1"), node, 0)])
        async with watched(store) as cache:
            await cache.fresh()  # filled by the listing the new watch starts with
            assert ids(cache.tasks().items) == ["a1"] and [n.id for n in cache.nodes().items] == ["n1"]
            for step in range(5):  # each write is seen by the next read, however soon it comes
                await store.commit([Put(task_key(f"b{step}"), task(f"b{step}", "b", "n2"), 0)])
                await cache.fresh()
                assert ids(cache.tasks(service="b").items) == [f"b{i}" for i in range(step + 1)]
            stored = await store.get_task("b0")
            cached = cache.tasks(service="b").items[0]
            assert stored is not None and cached.version == stored.version, "versions are etcd's, for the compares"

    with_store(etcd, body)


def test_indexes_follow_moves_and_deletes(etcd: Etcd) -> None:
    async def body(store: Store) -> None:
        async with watched(store) as cache:
            first = [Put(task_key("t1"), task("t1", "web"), 0), Put(task_key("t2"), task("t2", "db", "n1"), 0)]
            await store.commit(first)
            await cache.fresh()
            assert ids(cache.tasks(node_id="n1").items) == ["t2"]
            assert cache.tasks(node_id="n2").items == []
            placed = await store.get_task("t1")
            assert placed is not None
            placed.node_id = "n2"
            await store.commit([Put(task_key("t1"), placed, placed.version)])
            await cache.fresh()
            assert ids(cache.tasks(node_id="n2").items) == ["t1"]
            assert ids(cache.tasks(service="web", node_id="n2").items) == ["t1"]
            assert cache.tasks(service="web", node_id="n1").items == []
            moved = await store.get_task("t1")
            assert moved is not None
            moved.node_id = "n1"
            await store.commit([Put(task_key("t1"), moved, moved.version)])
            await cache.fresh()
            assert ids(cache.tasks(node_id="n1").items) == ["t1", "t2"] and cache.tasks(node_id="n2").items == []
            gone = await store.get_task("t2")
            assert gone is not None
            await store.commit([Delete(task_key("t2"), gone.version)])
            await cache.fresh()
            assert ids(cache.tasks().items) == ["t1"]
            assert cache.tasks(service="db").items == [] and ids(cache.tasks(node_id="n1").items) == ["t1"]

    with_store(etcd, body)


def test_changes_already_in_the_listing_are_not_applied_again(etcd: Etcd) -> None:
    async def body(store: Store) -> None:
        await store.commit([Put(task_key("t1"), task("t1", "web"), 0)])
        first = await store.get_task("t1")
        assert first is not None
        updated = types_pb2.Task()
        updated.CopyFrom(first)
        updated.node_id = "n1"
        await store.commit([Put(task_key("t1"), updated, first.version)])
        cache = Cache(store)
        await cache.reload()
        # A new watch may still deliver a change the listing already holds (here the creation).
        stale = types_pb2.Task(id="t1", service="web").SerializeToString()
        cache.apply(Change(task_key("t1"), stale, None, first.version))
        (kept,) = cache.tasks().items
        assert kept.node_id == "n1" and ids(cache.tasks(node_id="n1").items) == ["t1"]

    with_store(etcd, body)
