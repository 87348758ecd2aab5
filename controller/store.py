"""The controller's view of etcd: typed protobuf objects under /moorage/.

Keys are ``/moorage/services/<name>``, ``/moorage/tasks/<task_id>`` and
``/moorage/nodes/<node_id>``; values are the serialized messages. Reads fill each
message's ``version`` with the key's etcd ``mod_revision``; writes go through
``commit``, one transaction whose every operation compares the revision it was
computed from (0 = the key must not exist). Losing that race raises
``ConflictError``; the caller re-reads and tries again (``retry_on_conflict``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, ParamSpec, TypeVar

import aetcd
import grpc
from google.protobuf.message import Message

from controller.errors import ConflictError, StoreError, StoreUnavailableError
from moorage.v1 import types_pb2

PREFIX = "/moorage/"
SERVICES = PREFIX + "services/"
TASKS = PREFIX + "tasks/"
NODES = PREFIX + "nodes/"

M = TypeVar("M", bound=Message)
T = TypeVar("T")
P = ParamSpec("P")


def service_key(name: str) -> str:
    return SERVICES + name


def task_key(task_id: str) -> str:
    return TASKS + task_id


def node_key(node_id: str) -> str:
    return NODES + node_id


@dataclass(frozen=True)
class Put:
    """Write ``message`` at ``key`` if the key is still at revision ``expect``."""

    key: str
    message: Message
    expect: int


@dataclass(frozen=True)
class Delete:
    """Delete ``key`` if it is still at revision ``expect``."""

    key: str
    expect: int


@dataclass(frozen=True)
class Check:
    """Write nothing, but fail the transaction unless ``key`` is at revision ``expect``."""

    key: str
    expect: int


Op = Put | Delete | Check


@dataclass(frozen=True)
class Listing(Generic[M]):
    """Objects read under one prefix, and the etcd revision of that read."""

    revision: int
    items: list[M]


@dataclass(frozen=True)
class Change:
    """One key changed: its value now (``None`` once deleted) and before."""

    key: str
    value: bytes | None
    prev: bytes | None


def _converted(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Turn aetcd/grpc failures into the controller's ``StoreError`` tree."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except (aetcd.ConnectionFailedError, aetcd.ConnectionTimeoutError, asyncio.TimeoutError) as e:
            raise StoreUnavailableError(str(e) or type(e).__name__) from e
        except (aetcd.ClientError, grpc.RpcError) as e:
            raise StoreError(str(e) or type(e).__name__) from e

    return wrapper


def _decode(cls: type[M], kv: aetcd.KeyValue) -> M:
    message = cls.FromString(kv.value)
    message.version = kv.mod_revision  # type: ignore[attr-defined]
    return message


def _encode(message: Message) -> bytes:
    stored = type(message)()
    stored.CopyFrom(message)
    stored.ClearField("version")  # the revision lives in etcd, not in the value
    return stored.SerializeToString(deterministic=True)


class Store:
    """A small typed wrapper over one aetcd client."""

    def __init__(self, client: aetcd.Client, endpoint: str) -> None:
        self._client = client
        self.endpoint = endpoint

    @classmethod
    async def connect(cls, endpoints: Sequence[str], *, timeout: float = 5.0) -> Store:
        """Connect to the first endpoint ("host:port") that answers."""
        failures: list[str] = []
        for endpoint in endpoints:
            host, _, port = endpoint.rpartition(":")
            client = aetcd.Client(host=host, port=int(port), timeout=timeout)  # type: ignore[arg-type]
            try:
                await client.status()
            except (aetcd.ClientError, grpc.RpcError, asyncio.TimeoutError) as e:
                failures.append(f"{endpoint}: {e or type(e).__name__}")
                await client.close()
                continue
            return cls(client, endpoint)
        raise StoreUnavailableError(f"no etcd endpoint reachable ({'; '.join(failures) or 'none given'})")

    async def close(self) -> None:
        await self._client.close()

    @_converted
    async def _get(self, cls: type[M], key: str) -> M | None:
        kv = await self._client.get(key.encode())
        return None if kv is None else _decode(cls, kv)

    @_converted
    async def _list(self, cls: type[M], prefix: str) -> Listing[M]:
        result = await self._client.get_prefix(prefix.encode())
        return Listing(result.header.revision, [_decode(cls, kv) for kv in result])

    async def get_service(self, name: str) -> types_pb2.Service | None:
        return await self._get(types_pb2.Service, service_key(name))

    async def get_task(self, task_id: str) -> types_pb2.Task | None:
        return await self._get(types_pb2.Task, task_key(task_id))

    async def get_node(self, node_id: str) -> types_pb2.Node | None:
        return await self._get(types_pb2.Node, node_key(node_id))

    async def list_services(self) -> Listing[types_pb2.Service]:
        return await self._list(types_pb2.Service, SERVICES)

    async def list_nodes(self) -> Listing[types_pb2.Node]:
        return await self._list(types_pb2.Node, NODES)

    async def list_tasks(self, *, service: str | None = None, node_id: str | None = None) -> Listing[types_pb2.Task]:
        """Every task, or those of one service and/or one node (filtered after the read)."""
        listing = await self._list(types_pb2.Task, TASKS)
        items = [
            t
            for t in listing.items
            if (service is None or t.service == service) and (node_id is None or t.node_id == node_id)
        ]
        return Listing(listing.revision, items)

    @_converted
    async def commit(self, ops: Sequence[Op]) -> None:
        """Apply every op, or none: raise ``ConflictError`` if any compared key moved."""
        txn = self._client.transactions
        compares = [txn.mod(op.key.encode()) == op.expect for op in ops]
        writes = [
            txn.put(op.key.encode(), _encode(op.message)) if isinstance(op, Put) else txn.delete(op.key.encode())
            for op in ops
            if not isinstance(op, Check)
        ]
        succeeded, _ = await self._client.transaction(compare=compares, success=writes, failure=[])
        if not succeeded:
            raise ConflictError(f"concurrent write to one of {[op.key for op in ops]}")

    async def watch(self, prefix: str) -> AsyncIterator[Change | None]:
        """Changes under ``prefix``, after a first ``None`` once the watch is in place.

        The ``None`` tells the caller that anything may have changed before the
        watch started (level-triggered consumers re-read everything then).
        """
        try:
            watch = await self._client.watch_prefix(prefix.encode(), prev_kv=True)
        except (aetcd.ClientError, grpc.RpcError) as e:
            raise StoreUnavailableError(f"watch {prefix}: {e}") from e
        try:
            yield None
            async for event in watch:
                deleted = event.kind == aetcd.EventKind.DELETE
                # etcd sends an empty prev_kv (no key) when the key was created
                prev = event.prev_kv.value if event.prev_kv is not None and event.prev_kv.key else None
                yield Change(event.kv.key.decode(), None if deleted else event.kv.value, prev)
        except (aetcd.ClientError, grpc.RpcError) as e:
            raise StoreUnavailableError(f"watch {prefix}: {e}") from e
        finally:
            # Fails only if the client is already closed, which ends the watch anyway.
            with contextlib.suppress(Exception):
                await watch.cancel()


async def retry_on_conflict(step: Callable[[], Awaitable[T]], *, attempts: int = 20) -> T:
    """Run ``step`` (read, compute, ``commit``) until it commits without conflict.

    A short random pause between attempts keeps racing writers from colliding in
    lock-step; after ``attempts`` conflicts the last ``ConflictError`` propagates.
    """
    for attempt in range(attempts - 1):
        try:
            return await step()
        except ConflictError:
            await asyncio.sleep(random.uniform(0, 0.005 * (attempt + 1)))
    return await step()
