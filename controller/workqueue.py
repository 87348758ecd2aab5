"""A Kubernetes-style work queue of keys.

Handlers ``add`` keys; workers ``get`` one, reconcile it, and call ``done``.
A key waiting in the queue is stored once however often it is added, and a key
being processed is never handed to a second worker: adding it meanwhile marks
it dirty, and ``done`` puts it back. ``retry`` re-adds a failed key after an
exponential back-off and gives up after ``max_retries``; ``add_after`` adds a
key later (a restart that is not due yet).
"""

from __future__ import annotations

import asyncio
from collections import Counter


class WorkQueue:
    def __init__(self, *, base_delay: float = 0.05, max_delay: float = 5.0, max_retries: int = 12) -> None:
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._failures: Counter[str] = Counter()
        self._timers: dict[str, asyncio.TimerHandle] = {}  # one pending retry per key
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._max_retries = max_retries

    def __len__(self) -> int:
        """Keys waiting for a worker."""
        return self._queue.qsize()

    def add(self, key: str) -> None:
        if key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._queue.put_nowait(key)

    async def get(self) -> str:
        key = await self._queue.get()
        self._dirty.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: str) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.put_nowait(key)

    def forget(self, key: str) -> None:
        """The key succeeded: reset its back-off."""
        self._failures.pop(key, None)

    def retry(self, key: str) -> bool:
        """Re-add ``key`` after its back-off; False once it has failed too often."""
        self._failures[key] += 1
        failures = self._failures[key]
        if failures > self._max_retries:
            self._failures.pop(key)
            return False
        delay = min(self._base_delay * 2 ** (failures - 1), self._max_delay)
        self._later(key, delay, replace=True)
        return True

    def add_after(self, key: str, delay: float) -> None:
        """Add ``key`` in ``delay`` seconds (sooner if it is already due sooner)."""
        self._later(key, max(delay, 0.0), replace=False)

    def _later(self, key: str, delay: float, *, replace: bool) -> None:
        loop = asyncio.get_running_loop()
        previous = self._timers.get(key)
        if previous is not None:
            if not replace and previous.when() <= loop.time() + delay:
                return
            previous.cancel()
        self._timers[key] = loop.call_later(delay, self._fire, key)

    def _fire(self, key: str) -> None:
        del self._timers[key]
        self.add(key)

    def close(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
