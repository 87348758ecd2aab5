"""Batched status records: the agent's ``TaskStatus`` reports, written to etcd in the
background of its session.

The latest unrecorded status of each task is kept; whatever arrived since the last write is
one burst, recorded in one transaction (``MAX_TXN_OPS`` reports at most), so a burst of
reports is coalesced and never holds up the heartbeats behind it: an apply's thirty containers
starting at once cost a few transactions, not a read and a transaction each.
"""

from __future__ import annotations

import asyncio

import structlog

from controller.cache import Cache
from controller.clock import now
from controller.slots import FINISHED
from controller.store import Put, Store, retry_on_conflict, task_key
from moorage.v1 import agent_pb2, types_pb2

log = structlog.get_logger("controller.status")

MAX_TXN_OPS = 128  # etcd's default --max-txn-ops: the most reports one transaction records


def apply_status(task: types_pb2.Task, status: agent_pb2.TaskStatus) -> types_pb2.Task:
    """``task`` with what its agent observed (``updated_at`` untouched, so an
    unchanged report compares equal to the task)."""
    updated = types_pb2.Task()
    updated.CopyFrom(task)
    updated.observed_state = status.state
    updated.container_id = status.container_id
    updated.exit_code = status.exit_code
    updated.message = status.message
    updated.address = status.address
    if status.HasField("started_at"):
        updated.started_at.CopyFrom(status.started_at)
    if status.HasField("finished_at"):
        updated.finished_at.CopyFrom(status.finished_at)
    return updated


def recorded_shutdown(task: types_pb2.Task, status: agent_pb2.TaskStatus) -> types_pb2.Task:
    """``task`` once its agent stopped its container: an exit it had already
    reported (code and all) stays the task's final state, for the history."""
    if task.observed_state in FINISHED:
        return task
    updated = apply_status(task, status)
    if not status.HasField("finished_at"):
        updated.finished_at.CopyFrom(now())
    return updated


def recorded(task: types_pb2.Task, status: agent_pb2.TaskStatus) -> types_pb2.Task | None:
    """``task`` as it is to be written with its agent's report, stamped; None if the report changes nothing."""
    if task.desired_state == types_pb2.TASK_STATE_SHUTDOWN and status.state == types_pb2.TASK_STATE_SHUTDOWN:
        updated = recorded_shutdown(task, status)
    else:
        updated = apply_status(task, status)
    if updated == task:
        return None
    updated.updated_at.CopyFrom(now())
    return updated


MAX_PENDING = 10_000  # unrecorded reports one session may hold (one per task it names)


class StatusRecorder:
    """The reports of one node's agent, recorded in bursts."""

    def __init__(self, node_id: str, store: Store, cache: Cache) -> None:
        self._node_id = node_id
        self._store = store
        self._cache = cache
        self._statuses: dict[str, agent_pb2.TaskStatus] = {}
        self._reported = asyncio.Event()

    def report(self, status: agent_pb2.TaskStatus) -> None:
        """A report, to record with the next burst (replacing an unrecorded one of the same task).
        An agent naming more distinct tasks than ``MAX_PENDING`` between two bursts is lying or
        broken: the excess is dropped, not held."""
        if len(self._statuses) >= MAX_PENDING and status.task_id not in self._statuses:
            log.warning("dropping a status report: too many unrecorded ones", node=self._node_id)
            return
        self._statuses[status.task_id] = status
        self._reported.set()

    async def run(self) -> None:
        """Write the reports to etcd as they arrive, a burst per transaction."""
        while True:
            await self._reported.wait()
            self._reported.clear()
            batch, self._statuses = list(self._statuses.values()), {}
            for start in range(0, len(batch), MAX_TXN_OPS):
                burst = batch[start : start + MAX_TXN_OPS]
                try:
                    await self._record_burst(burst)
                except Exception:
                    tasks = [status.task_id for status in burst]
                    log.error("could not record task statuses", node=self._node_id, tasks=tasks, exc_info=True)

    async def _record_burst(self, statuses: list[agent_pb2.TaskStatus]) -> None:
        """Write the tasks these reports change in one transaction comparing each one's revision.

        The tasks are read from the cache as it is when every report changes its task: a stale
        read then only fails the compare. A report that would change nothing (or whose task the
        cache does not hold) is decided on a read as fresh as etcd, as is every retry after a
        conflict, which drops the reports that no longer change anything and recomputes the
        tasks that moved; the others are written as before.
        """
        attempts = 0

        async def step() -> None:
            nonlocal attempts
            first, attempts = attempts == 0, attempts + 1
            if not first:  # a conflict: the cache was behind etcd
                await self._cache.fresh()
            puts = self._changes(statuses, final=not first)
            if first and len(puts) < len(statuses):
                await self._cache.fresh()
                puts = self._changes(statuses, final=True)
            if puts:
                await self._store.commit(puts)

        await retry_on_conflict(step)

    def _changes(self, statuses: list[agent_pb2.TaskStatus], *, final: bool) -> list[Put]:
        """The writes ``statuses`` make to the cached tasks of the node; ``final``: log the ignored ones."""
        held = {task.id: task for task in self._cache.tasks(node_id=self._node_id).items}
        puts = []
        for status in statuses:
            task = held.get(status.task_id)
            if task is None:
                if final:
                    log.info("ignoring status of a task this node does not hold", node=self._node_id, task=status.task_id)
            elif (updated := recorded(task, status)) is not None:
                puts.append(Put(task_key(task.id), updated, task.version))
        return puts
