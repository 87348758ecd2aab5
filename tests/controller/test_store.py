"""The Store against a real etcd."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from controller.errors import ConflictError, StoreUnavailableError
from controller.store import Change, Check, Delete, Put, Store, retry_on_conflict, service_key
from moorage.localcluster.etcd import Etcd
from moorage.localcluster.procs import free_port
from moorage.v1 import types_pb2


def service(name: str, image: str = "busybox") -> types_pb2.Service:
    return types_pb2.Service(spec=types_pb2.ServiceSpec(name=name, image=image))


def with_store(etcd: Etcd, body: Callable[[Store], Awaitable[None]]) -> None:
    async def scenario() -> None:
        store = await Store.connect([etcd.endpoint])
        try:
            await body(store)
        finally:
            await store.close()

    asyncio.run(scenario())


def test_reads_fill_version_with_the_mod_revision(etcd: Etcd) -> None:
    async def body(store: Store) -> None:
        await store.commit([Put(service_key("web"), service("web"), 0)])
        first = await store.get_service("web")
        assert first is not None and first.version > 0 and first.spec.name == "web"
        await store.commit([Put(service_key("web"), service("web", "other"), first.version)])
        second = await store.get_service("web")
        assert second is not None and second.version > first.version
        listing = await store.list_services()
        assert [s.version for s in listing.items] == [second.version] and listing.revision >= second.version

    with_store(etcd, body)


def test_commit_compares_revisions_all_or_nothing(etcd: Etcd) -> None:
    async def body(store: Store) -> None:
        await store.commit([Put(service_key("web"), service("web"), 0)])
        with pytest.raises(ConflictError):  # create-if-absent on an existing key
            await store.commit([Put(service_key("db"), service("db"), 0), Put(service_key("web"), service("web"), 0)])
        assert await store.get_service("db") is None, "the other put of the failed transaction was not applied"
        web = await store.get_service("web")
        assert web is not None
        with pytest.raises(ConflictError):
            await store.commit([Check(service_key("web"), web.version - 1), Delete(service_key("web"), web.version)])
        await store.commit([Check(service_key("web"), web.version), Delete(service_key("web"), web.version)])
        assert await store.get_service("web") is None

    with_store(etcd, body)


def test_retry_on_conflict_rereads_until_it_wins(etcd: Etcd) -> None:
    async def body(store: Store) -> None:
        await store.commit([Put(service_key("web"), types_pb2.Service(spec={"name": "web", "replicas": 0}), 0)])

        async def increment() -> None:
            current = await store.get_service("web")
            assert current is not None
            await asyncio.sleep(0)  # let the other writers read the same revision
            current.spec.replicas += 1
            await store.commit([Put(service_key("web"), current, current.version)])

        await asyncio.gather(*(retry_on_conflict(increment) for _ in range(5)))
        final = await store.get_service("web")
        assert final is not None and final.spec.replicas == 5

    with_store(etcd, body)


def test_watch_starts_with_a_resync_marker_then_reports_changes(etcd: Etcd) -> None:
    async def body(store: Store) -> None:
        changes = store.watch("/moorage/services/")
        assert await anext(changes) is None
        await store.commit([Put(service_key("web"), service("web"), 0)])
        put = await asyncio.wait_for(anext(changes), 5)
        assert isinstance(put, Change) and put.key == service_key("web") and put.prev is None
        assert types_pb2.Service.FromString(put.value or b"").spec.name == "web"
        web = await store.get_service("web")
        assert web is not None
        await store.commit([Delete(service_key("web"), web.version)])
        deleted = await asyncio.wait_for(anext(changes), 5)
        assert isinstance(deleted, Change) and deleted.value is None and deleted.prev is not None
        await changes.aclose()

    with_store(etcd, body)


def test_connect_uses_the_first_reachable_endpoint(etcd: Etcd) -> None:
    async def scenario() -> None:
        dead = f"127.0.0.1:{free_port()}"
        store = await Store.connect([dead, etcd.endpoint])
        try:
            assert store.endpoint == etcd.endpoint
        finally:
            await store.close()
        with pytest.raises(StoreUnavailableError, match=dead):
            await Store.connect([dead], timeout=1)

    asyncio.run(scenario())
