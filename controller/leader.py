"""Leader election through etcd: one controller at a time runs the reconciler.

Campaign: grant a lease and create ``/moorage/leader`` (value: the
controller's id) on it, only if the key is absent. The winner renews its lease
every third of the TTL and leads while that works; losers watch the key and
campaign again once it is gone. A leader that dies stops renewing, the key
expires with the lease, and another controller takes over within about one
TTL. A deposed leader that has not noticed yet can only lose its writes: every
write is a compare-and-swap on what it read.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

from controller.errors import StoreError
from controller.store import LEADER, Store

log = structlog.get_logger("controller.leader")

RETRY = 0.5


class Election:
    def __init__(self, store: Store, controller_id: str, *, ttl: int = 2) -> None:
        self._store = store
        self.controller_id = controller_id
        self._ttl = ttl
        self.is_leader = False

    async def run(self, lead: Callable[[], Awaitable[None]]) -> None:
        """Campaign forever; run ``lead()`` for as long as this controller leads."""
        while True:
            try:
                lease = await self._store.grant(self._ttl)
                if await self._store.put_leased(LEADER, self.controller_id.encode(), lease, only_if_absent=True):
                    await self._lead(lease, lead)
                else:
                    await self._store.revoke(lease)
                    await self._until_vacant()
            except StoreError as e:
                log.warning("election: etcd failed, campaigning again", error=str(e))
                await asyncio.sleep(RETRY)

    async def _lead(self, lease: int, lead: Callable[[], Awaitable[None]]) -> None:
        log.info("leading", controller=self.controller_id)
        self.is_leader = True
        work = asyncio.create_task(lead(), name="leader work")
        try:
            while not work.done():
                await asyncio.wait({work}, timeout=self._ttl / 3)
                if not work.done() and not await self._renewed(lease):
                    log.warning("lost the leadership lease", controller=self.controller_id)
                    break
        finally:
            self.is_leader = False
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await work
            # Hand over at once rather than after the TTL (fails harmlessly if etcd is gone).
            with contextlib.suppress(StoreError):
                await asyncio.shield(self._store.revoke(lease))
        if not work.cancelled() and work.exception() is not None:
            log.error("leader work failed; campaigning again", exc_info=work.exception())

    async def _renewed(self, lease: int) -> bool:
        try:
            return await self._store.refresh(lease)
        except StoreError as e:
            log.warning("could not renew the leadership lease", error=str(e))
            return False

    async def _until_vacant(self) -> None:
        """Return once the leader key is gone (or after a while, to campaign anyway)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._ttl * 5), contextlib.aclosing(self._store.watch(LEADER)) as changes:
                async for change in changes:
                    if change is None and await self._store.get_raw(LEADER) is None:
                        return
                    if change is not None and change.key == LEADER and change.value is None:
                        return
