"""Level-triggered reconciliation of services into tasks, and task placement.

Watch handlers only enqueue a key: ``service:<name>`` (that service may need a
step), ``place`` (some task may wait for a node), ``node:<id>`` (its heartbeat
may have expired) or ``resync`` (anything may have changed: enqueue every
service, every node and ``place``). A worker takes a key, re-reads what it
needs (the service from etcd; tasks and nodes from the watch-fed cache, once it
holds every change committed before the read: ``Cache.fresh``) and commits one
step as a transaction on the revisions it read; a conflict just means "read again". Errors back off and, after the
queue's retry limit, the reason is written on the service (``message``).

The keys are independent (the queue never hands one key to two workers), and
a step mostly waits on etcd round trips, so several workers take a burst of
services (one apply of ten) side by side rather than one after another.

Only the leader runs the workers (``lead``); every controller's watches may
enqueue, and a new leader starts with a resync, so it resumes from etcd alone.
"""

from __future__ import annotations

import asyncio
import hashlib
import time

import structlog

from controller import placement
from controller.cache import Cache
from controller.clock import now
from controller.errors import ConflictError
from controller.liveness import check_node
from controller.slots import NewTask, Nodes, SlotPlan, plan_slots
from controller.store import Check, Delete, Op, Put, Store, service_key, task_key
from controller.workqueue import WorkQueue
from moorage.v1 import types_pb2
from scheduler import Config

SERVICE = "service:"
NODE = "node:"
PLACE = "place"
RESYNC = "resync"
NANOS = 1_000_000_000

log = structlog.get_logger("controller.reconciler")


def task_id_for(service: str, slot: int, service_revision: int, prev_id: str = "") -> str:
    """A task id (12 hex chars) determined by the service revision it was made
    from and the task it follows in its slot (``prev_id``, "" for the first).

    Two workers (or controllers) that fill the same slot from the same read
    therefore write the same key, and create-if-absent lets only one of them
    succeed; a worker that read an older revision fails its compare on the
    service key (or on the task it replaces). That is what keeps a slot from
    getting two live tasks; ``prev_id`` is the generation that lets a slot
    get a new task (a restart) from an unchanged service.
    """
    return hashlib.sha256(f"{service}/{slot}/{service_revision}/{prev_id}".encode()).hexdigest()[:12]


def new_task(service: types_pb2.Service, new: NewTask) -> types_pb2.Task:
    stamp = now()
    task = types_pb2.Task(
        id=task_id_for(service.spec.name, new.slot, service.version, new.prev_id),
        service=service.spec.name,
        slot=new.slot,
        desired_state=types_pb2.TASK_STATE_RUNNING,
        observed_state=types_pb2.TASK_STATE_ASSIGNED if new.node_id else types_pb2.TASK_STATE_NEW,
        node_id=new.node_id,
        restarts=new.restarts,
    )
    task.spec.CopyFrom(service.spec)
    task.created_at.CopyFrom(stamp)
    task.updated_at.CopyFrom(stamp)
    return task


def service_message(plan: SlotPlan, tasks: list[types_pb2.Task]) -> str:
    """Why the service is not converged, if something stops it: restart limits, unplaceable tasks."""
    pending = [
        f"slot {t.slot}: {t.message}"
        for t in sorted(tasks, key=lambda t: t.slot)
        if t.desired_state == types_pb2.TASK_STATE_RUNNING and t.observed_state == types_pb2.TASK_STATE_PENDING
    ]
    return "; ".join([*plan.problems, *pending])


def shut_down(task: types_pb2.Task) -> types_pb2.Task:
    updated = types_pb2.Task()
    updated.CopyFrom(task)
    updated.desired_state = types_pb2.TASK_STATE_SHUTDOWN
    updated.updated_at.CopyFrom(now())
    return updated


class Reconciler:
    def __init__(
        self, store: Store, cache: Cache, *, workers: int = 8, node_ttl: float = 3.0, placement: Config = Config()
    ) -> None:
        self._store = store
        self._cache = cache
        self._placement = placement
        self._queue = WorkQueue()
        self._workers = workers
        self._node_ttl = node_ttl
        self._verdicts_from = 0.0  # loop time before which no node is declared down

    def service_changed(self, name: str) -> None:
        self._queue.add(SERVICE + name)

    def placement_needed(self) -> None:
        self._queue.add(PLACE)

    def node_changed(self, node_id: str) -> None:
        """A node's heartbeat key went away: check it."""
        self._queue.add(NODE + node_id)

    def nodes_changed(self) -> None:
        """A node's state or availability changed: every service may have to move tasks."""
        self._queue.add(RESYNC)

    def resync(self) -> None:
        self._queue.add(RESYNC)

    async def lead(self) -> None:
        """Run the workers (this controller leads) until cancelled."""
        self._verdicts_from = asyncio.get_running_loop().time() + self._node_ttl
        self.resync()
        await self.run()

    async def run(self) -> None:
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
            except Exception as e:
                if self._queue.retry(key):
                    log.warning("reconcile failed, will retry", key=key, exc_info=True)
                else:
                    log.error("reconcile failed too often, giving up until the next change", key=key, exc_info=True)
                    await self._give_up(key, e)
            else:
                self._queue.forget(key)
            finally:
                self._queue.done(key)

    async def _sync(self, key: str) -> None:
        if key == RESYNC:
            await self._resync()
        elif key == PLACE:
            await self._place()
        elif key.startswith(NODE):
            await self._sync_node(key)
        else:
            await self._sync_service(key.removeprefix(SERVICE))

    async def _give_up(self, key: str, error: Exception) -> None:
        """Write on the service why it cannot converge (best effort: etcd may be what failed)."""
        if not key.startswith(SERVICE):
            return
        try:
            service = await self._store.get_service(key.removeprefix(SERVICE))
            if service is not None:
                service.message = f"cannot reconcile: {error}"
                await self._store.commit([Put(service_key(service.spec.name), service, service.version)])
        except Exception:
            log.warning("could not record why the service cannot converge", key=key, exc_info=True)

    async def _resync(self) -> None:
        services = await self._store.list_services()
        await self._cache.fresh()
        for name in {s.spec.name for s in services.items} | {t.service for t in self._cache.tasks().items}:
            self.service_changed(name)
        for node in self._cache.nodes().items:
            self.node_changed(node.id)
        self.placement_needed()

    async def _sync_node(self, key: str) -> None:
        wait = self._verdicts_from - asyncio.get_running_loop().time()
        if wait > 0:
            self._queue.add_after(key, wait)
            return
        await check_node(self._store, key.removeprefix(NODE))

    async def _sync_service(self, name: str) -> None:
        service = await self._store.get_service(name)
        await self._cache.fresh()
        tasks = self._cache.tasks(service=name).items
        nodes = self._cache.nodes().items
        known = {n.id for n in nodes}
        usable = Nodes(
            # A removed node (`moor node rm`) counts as down: nothing will ever report its tasks again.
            down={n.id for n in nodes if n.state == types_pb2.NODE_STATE_DOWN}
            | {t.node_id for t in tasks if t.node_id and t.node_id not in known},
            drained={n.id for n in nodes if n.availability == types_pb2.NODE_AVAILABILITY_DRAIN},
        )
        clock = time.time_ns()
        plan = plan_slots(service.spec if service is not None else None, tasks, usable, clock)
        if plan.wake_at_ns is not None:
            self._queue.add_after(SERVICE + name, (plan.wake_at_ns - clock) / NANOS)
        message = service_message(plan, tasks) if service is not None else ""
        if plan.empty and (service is None or message == service.message):
            return
        await self._store.commit(self._slot_ops(name, service, plan, message))
        if service is not None and message != service.message:
            log.info("service cannot converge" if message else "service converging again", service=name, reason=message)
        if not plan.empty:
            log.info(
                "service reconciled",
                service=name,
                created=[n.slot for n in plan.create],
                shutdown=[t.id for t in plan.shutdown],
                deleted=[t.id for t in plan.delete],
            )

    @staticmethod
    def _slot_ops(name: str, service: types_pb2.Service | None, plan: SlotPlan, message: str) -> list[Op]:
        ops: list[Op] = []
        if service is None:
            ops.append(Check(service_key(name), 0))
        elif message != service.message:
            noted = types_pb2.Service()
            noted.CopyFrom(service)
            noted.message = message
            ops.append(Put(service_key(name), noted, service.version))
        else:
            ops.append(Check(service_key(name), service.version))
        if service is not None:
            for new in plan.create:
                task = new_task(service, new)
                ops.append(Put(task_key(task.id), task, 0))
        ops += [Put(task_key(t.id), shut_down(t), t.version) for t in plan.shutdown]
        ops += [Delete(task_key(t.id), t.version) for t in plan.delete]
        return ops

    async def _place(self) -> None:
        await self._cache.fresh()
        tasks, nodes = self._cache.tasks(), self._cache.nodes()
        # Planning thousands of tasks takes a while: off the event loop, so
        # leases and sessions keep being served meanwhile.
        changed = await asyncio.to_thread(placement.step, nodes.items, tasks.items, self._placement, now())
        # Each transaction compares the revisions the plan read; a conflict
        # re-plans from a fresh read (the queue retries ``place``).
        for ops in placement.transactions(changed, nodes.items):
            await self._store.commit(ops)
        for task in changed:
            log.info(
                "task moved off its node"
                if task.desired_state != types_pb2.TASK_STATE_RUNNING
                else "task placed"
                if task.node_id
                else "task pending",
                service=task.service,
                task=task.id,
                slot=task.slot,
                node=task.node_id or None,
                reason=task.message or None,
            )
