"""The controller's view of etcd: typed protobuf objects under /moorage/.

Keys are ``/moorage/services/<name>``, ``/moorage/tasks/<task_id>`` and
``/moorage/nodes/<node_id>``; values are the serialized messages. Two kinds of
key live on etcd leases and vanish when their holder stops renewing them:
``/moorage/alive/<node_id>`` (an agent session's heartbeat) and
``/moorage/leader`` (the id of the controller that leads). Reads fill each
message's ``version`` with the key's etcd ``mod_revision``; writes go through
``commit``, one transaction whose every operation compares the revision it was
computed from (0 = the key must not exist). Losing that race raises
``ConflictError``; the caller re-reads and tries again (``retry_on_conflict``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import aetcd
import grpc
import structlog
from google.protobuf.message import Message

from controller.errors import ConflictError, StoreError, StoreUnavailableError
from controller.etcdtls import EtcdTLS, TLSClient
from moorage.v1 import types_pb2

PREFIX = "/moorage/"
SERVICES = PREFIX + "services/"
TASKS = PREFIX + "tasks/"
NODES = PREFIX + "nodes/"
ALIVE = PREFIX + "alive/"
LEADER = PREFIX + "leader"
REVISION_PROBE = PREFIX + "revision"  # no key is written there: reading it costs nothing but answers the revision

M = TypeVar("M", bound=Message)
T = TypeVar("T")

log = structlog.get_logger("controller.store")


def service_key(name: str) -> str:
    return SERVICES + name


def task_key(task_id: str) -> str:
    return TASKS + task_id


def node_key(node_id: str) -> str:
    return NODES + node_id


def alive_key(node_id: str) -> str:
    return ALIVE + node_id


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
    """One key changed at etcd ``revision``: its value now (``None`` once deleted) and before."""

    key: str
    value: bytes | None
    prev: bytes | None
    revision: int = 0


def _converted(error: Exception) -> StoreError:
    """The controller's ``StoreError`` for an aetcd/grpc failure."""
    if isinstance(error, aetcd.ConnectionFailedError | aetcd.ConnectionTimeoutError | asyncio.TimeoutError):
        return StoreUnavailableError(str(error) or type(error).__name__)
    return StoreError(str(error) or type(error).__name__)


_FAILURES = (aetcd.ClientError, grpc.RpcError, asyncio.TimeoutError)
RECOVERY_PAUSES = (0.05, 0.1, 0.2, 0.4, 0.8)


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
    """A small typed wrapper over an aetcd client, failing over between endpoints.

    etcd members all serve the same data, so when the member in use stops
    answering the store connects to the next one that does and repeats the
    call. A repeated ``commit`` is safe: if an earlier attempt did land, the
    repeat fails its revision compare and the caller re-reads.
    """

    def __init__(
        self, client: aetcd.Client, endpoint: str, endpoints: Sequence[str], timeout: float, tls: EtcdTLS | None = None
    ) -> None:
        self._client = client
        self._tls = tls
        self.endpoint = endpoint
        self._endpoints = list(endpoints)
        self._timeout = timeout
        self._switching = asyncio.Lock()
        self._retired: list[aetcd.Client] = []

    @staticmethod
    async def _open(endpoint: str, timeout: float, tls: EtcdTLS | None) -> aetcd.Client:
        host, _, port = endpoint.rpartition(":")
        if tls is None:
            client = aetcd.Client(host=host, port=int(port), timeout=timeout)  # type: ignore[arg-type]
        else:
            client = TLSClient(host=host, port=int(port), timeout=timeout, tls=tls)
        try:
            await client.status()
        except BaseException:
            await client.close()
            raise
        return client

    @classmethod
    async def connect(cls, endpoints: Sequence[str], *, timeout: float = 2.0, tls: EtcdTLS | None = None) -> Store:
        """Connect to the first endpoint ("host:port") that answers; keep the others for failover.
        ``tls``: speak TLS to etcd (its CA, and the controller's client certificate)."""
        client, endpoint = await cls._first_reachable(endpoints, timeout, tls)
        return cls(client, endpoint, endpoints, timeout, tls)

    @classmethod
    async def _first_reachable(
        cls, endpoints: Sequence[str], timeout: float, tls: EtcdTLS | None
    ) -> tuple[aetcd.Client, str]:
        failures: list[str] = []
        for endpoint in endpoints:
            try:
                return await cls._open(endpoint, timeout, tls), endpoint
            except _FAILURES as e:
                failures.append(f"{endpoint}: {e or type(e).__name__}")
        raise StoreUnavailableError(f"no etcd endpoint reachable ({'; '.join(failures) or 'none given'})")

    async def _fail_over(self, failed: aetcd.Client) -> None:
        """Move to another endpoint, unless a concurrent caller already did."""
        async with self._switching:
            if self._client is not failed:
                return
            rotated = self._endpoints[self._endpoints.index(self.endpoint) + 1 :] + self._endpoints
            client, endpoint = await self._first_reachable(rotated, self._timeout, self._tls)
            log.warning("etcd endpoint failed over", old=self.endpoint, new=endpoint)
            # The old client stays open until ``close``: calls and watches still
            # in flight on it must end by themselves, not hang on a closed channel.
            self._retired.append(failed)
            self._client, self.endpoint = client, endpoint

    async def _call(self, operation: Callable[[aetcd.Client], Awaitable[T]]) -> T:
        """Run ``operation`` on the current client. While etcd is unavailable
        (a member down, or the cluster electing a new leader), move to another
        member and try again after a growing pause, for about a second and a half."""
        for pause in (*RECOVERY_PAUSES, None):
            client = self._client
            try:
                # A call to a member that vanished mid-call must not wait forever.
                return await asyncio.wait_for(operation(client), self._timeout * 2)
            except _FAILURES as e:
                error = _converted(e)
                if pause is None or not isinstance(error, StoreUnavailableError):
                    raise error from e
            if len(self._endpoints) > 1:
                with contextlib.suppress(StoreUnavailableError):  # none reachable now: retry where we are
                    await self._fail_over(client)
            await asyncio.sleep(pause)
        raise AssertionError("unreachable")

    async def close(self) -> None:
        for client in [*self._retired, self._client]:
            with contextlib.suppress(*_FAILURES):  # a retired member may be gone
                await client.close()

    async def _get(self, cls: type[M], key: str) -> M | None:
        kv = await self._call(lambda c: c.get(key.encode()))
        return None if kv is None else _decode(cls, kv)

    async def _list(self, cls: type[M], prefix: str) -> Listing[M]:
        result = await self._call(lambda c: c.get_prefix(prefix.encode()))
        return Listing(result.header.revision, [_decode(cls, kv) for kv in result])

    async def get_service(self, name: str) -> types_pb2.Service | None:
        return await self._get(types_pb2.Service, service_key(name))

    async def get_task(self, task_id: str) -> types_pb2.Task | None:
        return await self._get(types_pb2.Task, task_key(task_id))

    async def get_node(self, node_id: str) -> types_pb2.Node | None:
        return await self._get(types_pb2.Node, node_key(node_id))

    async def revision(self) -> int:
        """etcd's current revision: every write committed before this call is at or below it."""
        result = await self._call(lambda c: c.get_prefix(REVISION_PROBE.encode(), keys_only=True))
        return int(result.header.revision)

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

    async def commit(self, ops: Sequence[Op]) -> None:
        """Apply every op, or none: raise ``ConflictError`` if any compared key moved."""

        async def run(client: aetcd.Client) -> bool:
            txn = client.transactions
            compares = [txn.mod(op.key.encode()) == op.expect for op in ops]
            writes = [
                txn.put(op.key.encode(), _encode(op.message)) if isinstance(op, Put) else txn.delete(op.key.encode())
                for op in ops
                if not isinstance(op, Check)
            ]
            succeeded, _ = await client.transaction(compare=compares, success=writes, failure=[])
            return bool(succeeded)

        if not await self._call(run):
            raise ConflictError(f"concurrent write to one of {[op.key for op in ops]}")

    # -- leased keys (heartbeats, leadership) ---------------------------------------------

    async def grant(self, ttl: int) -> int:
        """A new lease of ``ttl`` seconds; its id."""
        lease = await self._call(lambda c: c.lease(ttl))
        return int(lease.id)

    async def refresh(self, lease_id: int) -> bool:
        """Renew a lease; False if it has already expired."""
        reply = await self._call(lambda c: c.refresh_lease(lease_id))
        return reply is not None and reply.TTL > 0

    async def revoke(self, lease_id: int) -> None:
        """End a lease now, deleting the keys attached to it."""
        await self._call(lambda c: c.revoke_lease(lease_id))

    async def get_raw(self, key: str) -> bytes | None:
        kv = await self._call(lambda c: c.get(key.encode()))
        return None if kv is None else bytes(kv.value)

    async def put_leased(self, key: str, value: bytes, lease_id: int, *, only_if_absent: bool = False) -> bool:
        """Write ``key`` attached to a lease (gone when the lease ends); with
        ``only_if_absent``, only if nobody holds the key (False then)."""

        async def run(client: aetcd.Client) -> bool:
            txn = client.transactions
            compares = [txn.version(key.encode()) == 0] if only_if_absent else []
            succeeded, _ = await client.transaction(
                compare=compares, success=[txn.put(key.encode(), value, lease=lease_id)], failure=[]
            )
            return bool(succeeded)

        return await self._call(run)

    # -- raw records (messages without a version field: the cluster's identity) ----------

    async def get_raw_versioned(self, key: str) -> tuple[bytes | None, int]:
        """``key``'s value and its mod revision (None, 0 if absent)."""
        kv = await self._call(lambda c: c.get(key.encode()))
        return (None, 0) if kv is None else (bytes(kv.value), int(kv.mod_revision))

    async def put_raw_if(self, key: str, value: bytes, expect: int) -> bool:
        """Write ``key`` if it is still at mod revision ``expect`` (0: absent); False otherwise."""

        async def run(client: aetcd.Client) -> bool:
            txn = client.transactions
            succeeded, _ = await client.transaction(
                compare=[txn.mod(key.encode()) == expect], success=[txn.put(key.encode(), value)], failure=[]
            )
            return bool(succeeded)

        return await self._call(run)

    async def create(self, key: str, message: Message) -> bool:
        """Write ``message`` at ``key`` unless the key exists; False if it did."""
        return await self.put_raw_if(key, message.SerializeToString(deterministic=True), 0)

    async def put_raw(self, key: str, value: bytes) -> None:
        await self._call(lambda c: c.put(key.encode(), value))

    async def put_with_ttl(self, key: str, value: bytes, ttl: int) -> None:
        """Write ``key`` on a lease of its own: etcd deletes it after ``ttl`` seconds."""
        lease = await self.grant(ttl)
        await self.put_leased(key, value, lease)

    async def delete_raw(self, key: str) -> None:
        await self._call(lambda c: c.delete(key.encode()))

    async def keys(self, prefix: str) -> list[str]:
        result = await self._call(lambda c: c.get_prefix(prefix.encode(), keys_only=True))
        return [kv.key.decode() for kv in result]

    async def watch(self, prefix: str) -> AsyncIterator[Change | None]:
        """Changes under ``prefix``, after a first ``None`` once the watch is in place.

        The ``None`` tells the caller that anything may have changed before the
        watch started (level-triggered consumers re-read everything then).
        """
        watch = await self._call(lambda c: c.watch_prefix(prefix.encode(), prev_kv=True))
        try:
            yield None
            async for event in watch:
                deleted = event.kind == aetcd.EventKind.DELETE
                # etcd sends an empty prev_kv (no key) when the key was created
                prev = event.prev_kv.value if event.prev_kv is not None and event.prev_kv.key else None
                yield Change(event.kv.key.decode(), None if deleted else event.kv.value, prev, event.kv.mod_revision)
        except _FAILURES as e:
            raise StoreUnavailableError(f"watch {prefix}: {e or type(e).__name__}") from e
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
