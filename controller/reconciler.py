"""Level-triggered reconciliation of services into tasks, and task placement.

Watch handlers only enqueue a key: ``service:<name>`` (that service may need a
step), ``place`` (some task may wait for a node) or ``resync`` (anything may
have changed: enqueue every service and ``place``). A worker takes a key,
re-reads what it needs from etcd and commits one step as a transaction on the
revisions it read; a conflict just means "read again".
"""

from __future__ import annotations

import asyncio
import hashlib

import structlog

from controller import placement
from controller.clock import now
from controller.errors import ConflictError
from controller.slots import SlotPlan, plan_slots
from controller.store import Check, Delete, Op, Put, Store, node_key, service_key, task_key
from controller.workqueue import WorkQueue
from moorage.v1 import types_pb2
from scheduler import place

SERVICE = "service:"
PLACE = "place"
RESYNC = "resync"

log = structlog.get_logger("controller.reconciler")


def task_id_for(service: str, slot: int, service_revision: int) -> str:
    """A task id (12 hex chars) determined by the service revision it was made from.

    Two workers (or controllers) that fill the same slot from the same read of
    the service therefore write the same key, and create-if-absent lets only one
    of them succeed; a worker that read an older revision fails its compare on
    the service key. That is what keeps a slot from getting two live tasks.
    """
    return hashlib.sha256(f"{service}/{slot}/{service_revision}".encode()).hexdigest()[:12]


def new_task(service: types_pb2.Service, slot: int) -> types_pb2.Task:
    stamp = now()
    task = types_pb2.Task(
        id=task_id_for(service.spec.name, slot, service.version),
        service=service.spec.name,
        slot=slot,
        desired_state=types_pb2.TASK_STATE_RUNNING,
        observed_state=types_pb2.TASK_STATE_NEW,
    )
    task.spec.CopyFrom(service.spec)
    task.created_at.CopyFrom(stamp)
    task.updated_at.CopyFrom(stamp)
    return task


def shut_down(task: types_pb2.Task) -> types_pb2.Task:
    updated = types_pb2.Task()
    updated.CopyFrom(task)
    updated.desired_state = types_pb2.TASK_STATE_SHUTDOWN
    updated.updated_at.CopyFrom(now())
    return updated


class Reconciler:
    def __init__(self, store: Store, *, workers: int = 2) -> None:
        self._store = store
        self._queue = WorkQueue()
        self._workers = workers

    def service_changed(self, name: str) -> None:
        self._queue.add(SERVICE + name)

    def placement_needed(self) -> None:
        self._queue.add(PLACE)

    def resync(self) -> None:
        self._queue.add(RESYNC)

    async def run(self) -> None:
        """Run the workers until cancelled."""
        try:
            await asyncio.gather(*(self._work() for _ in range(self._workers)))
        finally:
            self._queue.close()

    async def _work(self) -> None:
        while True:
            key = await self._queue.get()
            try:
                await self._sync(key)
            except ConflictError:
                log.debug("conflict, will re-read", key=key)
                self._queue.retry(key)
            except Exception:
                if self._queue.retry(key):
                    log.warning("reconcile failed, will retry", key=key, exc_info=True)
                else:
                    log.error("reconcile failed too often, giving up until the next change", key=key, exc_info=True)
            else:
                self._queue.forget(key)
            finally:
                self._queue.done(key)

    async def _sync(self, key: str) -> None:
        if key == RESYNC:
            await self._resync()
        elif key == PLACE:
            await self._place()
        else:
            await self._sync_service(key.removeprefix(SERVICE))

    async def _resync(self) -> None:
        services = await self._store.list_services()
        tasks = await self._store.list_tasks()
        for name in {s.spec.name for s in services.items} | {t.service for t in tasks.items}:
            self.service_changed(name)
        self.placement_needed()

    async def _sync_service(self, name: str) -> None:
        service = await self._store.get_service(name)
        tasks = await self._store.list_tasks(service=name)
        plan = plan_slots(service.spec if service is not None else None, tasks.items)
        if plan.empty:
            return
        await self._store.commit(self._slot_ops(name, service, plan))
        log.info(
            "service reconciled",
            service=name,
            created=list(plan.create),
            shutdown=[t.id for t in plan.shutdown],
            deleted=[t.id for t in plan.delete],
        )

    @staticmethod
    def _slot_ops(name: str, service: types_pb2.Service | None, plan: SlotPlan) -> list[Op]:
        ops: list[Op] = [Check(service_key(name), service.version if service is not None else 0)]
        if service is not None:
            for slot in plan.create:
                task = new_task(service, slot)
                ops.append(Put(task_key(task.id), task, 0))
        ops += [Put(task_key(t.id), shut_down(t), t.version) for t in plan.shutdown]
        ops += [Delete(task_key(t.id), t.version) for t in plan.delete]
        return ops

    async def _place(self) -> None:
        tasks = await self._store.list_tasks()
        waiting = placement.unplaced(tasks.items)
        if not waiting:
            return
        nodes = await self._store.list_nodes()
        plan = place(placement.requests(waiting), placement.snapshot(nodes.items, tasks.items))
        changed = placement.apply_plan(waiting, plan, now())
        if not changed:
            return
        used = set(plan.placements.values())
        ops: list[Op] = [Check(node_key(n.id), n.version) for n in nodes.items if n.id in used]
        ops += [Put(task_key(t.id), t, t.version) for t in changed]
        await self._store.commit(ops)
        for task in changed:
            log.info(
                "task placed" if task.node_id else "task pending",
                service=task.service,
                task=task.id,
                slot=task.slot,
                node=task.node_id or None,
                reason=task.message or None,
            )
