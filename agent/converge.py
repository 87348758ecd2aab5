"""Converging this host's containers to the task set the controller assigned.

Level-triggered: every pass compares the whole assigned set with what the
runtime reports and takes the missing steps; nothing depends on having seen a
particular change. Each task's work (pull, start, stop+remove)
runs at most once at a time, off the event loop in the runtime's thread pool.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog
from google.protobuf.timestamp_pb2 import Timestamp

from agent.network import (
    BRIDGE_MODE,
    HOST_MODE,
    NONE_MODE,
    Attachment,
    NetworkError,
    NodeNetwork,
    PortMapping,
    netns_path,
)
from agent.network.etcfiles import link_entries, write
from agent.runtime.cgroups import Limits
from agent.runtime.containers import ContainerSpec, ContainerState, ContainerStatus, MountSpec, Runtime
from agent.runtime.errors import RuntimeFailure, StartFailed
from agent.runtime.images import ImageStore
from agent.runtime.registry import RegistrySettings, ensure_image
from moorage.v1 import agent_pb2, types_pb2

log = structlog.get_logger("moorage.agent")

S = types_pb2.TaskState
TASK_LABEL = "moorage.task"
SERVICE_LABEL = "moorage.service"
SLOT_LABEL = "moorage.slot"
TERMINAL = frozenset({S.TASK_STATE_COMPLETE, S.TASK_STATE_FAILED, S.TASK_STATE_REJECTED, S.TASK_STATE_SHUTDOWN})
DEFAULT_GRACE = 10.0
HOSTNAME_MAX = 63
NETWORK_MODES = {types_pb2.NETWORK_MODE_HOST: HOST_MODE, types_pb2.NETWORK_MODE_NONE: NONE_MODE}

T = TypeVar("T")


def container_name(task: types_pb2.Task) -> str:
    """``service.slot.task`` (as Swarm names them), cut to fit a hostname."""
    suffix = f".{task.slot}.{task.id}"
    return task.service[: HOSTNAME_MAX - len(suffix)] + suffix


_MOUNT_TYPES = {types_pb2.Mount.TYPE_VOLUME: "volume", types_pb2.Mount.TYPE_BIND: "bind",
                types_pb2.Mount.TYPE_TMPFS: "tmpfs", types_pb2.Mount.TYPE_UNSPECIFIED: "volume"}


def runtime_fields(spec: types_pb2.ServiceSpec) -> dict[str, Any]:
    """The ServiceSpec's container options as ContainerSpec fields: limits, mounts, volumes_from
    (a service's container on this host, by label: the scheduler co-locates them), user, working
    dir, read-only root, capabilities, init and stop signal. Restarts stay the controller's."""
    limits = spec.resources.limits
    reserved_cpu = spec.resources.reservations.cpu_millis
    return {
        "limits": Limits.from_millicores(
            limits.cpu_millis, memory_bytes=limits.memory_bytes, pids=spec.resources.pids_limit,
            cpu_shares=max(2, reserved_cpu * 1024 // 1000) if reserved_cpu else 0,  # as Kubernetes maps requests
        ),
        "mounts": tuple(MountSpec(m.target, _MOUNT_TYPES[m.type], m.source, m.read_only) for m in spec.mounts),
        "volumes_from": tuple(f"label:{SERVICE_LABEL}={service}" for service in spec.volumes_from),
        "user": spec.user,
        "working_dir": spec.working_dir,
        "read_only_rootfs": spec.read_only_rootfs,
        "cap_add": tuple(spec.cap_add),
        "cap_drop": tuple(spec.cap_drop),
        "init": spec.init,
        "stop_signal": spec.stop_signal or None,
    }


def container_spec(task: types_pb2.Task, network: Attachment | None = None) -> ContainerSpec:
    spec = task.spec
    return ContainerSpec(
        name=container_name(task),
        image=spec.image,
        entrypoint=tuple(spec.entrypoint) or None,
        args=tuple(spec.args) or None,
        env=dict(spec.env),
        stop_grace_period=spec.stop_grace_period or DEFAULT_GRACE,
        labels={**spec.labels, TASK_LABEL: task.id, SERVICE_LABEL: task.service, SLOT_LABEL: str(task.slot)},
        **runtime_fields(spec),
        netns_path=netns_path(network) if network else None,
        host_network=network is not None and network.mode == HOST_MODE,
    )


def port_mappings(spec: types_pb2.ServiceSpec) -> list[PortMapping]:
    return [PortMapping(p.host_port, p.container_port, p.protocol or "tcp") for p in spec.ports]


def timestamp(moment: datetime | None) -> Timestamp | None:
    if moment is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(moment.astimezone(UTC))
    return stamp


def status_of(task_id: str, container: ContainerState, address: str = "") -> agent_pb2.TaskStatus:
    """The task state a container's state stands for."""
    status = agent_pb2.TaskStatus(
        task_id=task_id,
        container_id=container.id,
        address=address,
        started_at=timestamp(container.started_at),
        finished_at=timestamp(container.finished_at),
    )
    if container.status is ContainerStatus.RUNNING:
        status.state = S.TASK_STATE_RUNNING
    elif container.status is ContainerStatus.CREATED:
        status.state = S.TASK_STATE_STARTING
    else:
        code = container.exit_code if container.exit_code is not None else -1
        status.exit_code = code
        status.state = S.TASK_STATE_COMPLETE if code == 0 else S.TASK_STATE_FAILED
        status.message = f"exited with code {code}"
    return status


class Converger:
    """Drives the runtime towards the assigned tasks and reports what happened."""

    registry = RegistrySettings()  # where missing images are pulled from (set by serve)

    def __init__(
        self,
        runtime: Runtime,
        images: ImageStore,
        report: Callable[[agent_pb2.TaskStatus], None],
        pool: ThreadPoolExecutor,
        network: NodeNetwork,
    ) -> None:
        self._runtime = runtime
        self._images = images
        self._network = network
        self._endpoints: dict[str, list[str]] = {}  # linked service -> its task addresses
        self._report = report
        self._pool = pool
        self._assigned: dict[str, types_pb2.Task] = {}
        self._heard = False  # no assignments yet: running containers may well be ours, touch nothing
        self._busy: dict[str, asyncio.Task[None]] = {}
        self._last_sent: dict[str, tuple[int, str, int]] = {}
        self._wake = asyncio.Event()

    def assign(self, tasks: Mapping[str, types_pb2.Task], endpoints: Mapping[str, list[str]] | None = None) -> None:
        self._assigned = dict(tasks)
        self._endpoints = dict(endpoints or {})
        self._heard = True
        self._wake.set()

    def resend_all(self) -> None:
        """Forget what was reported: a new session must hear every status again."""
        self._last_sent.clear()
        self._wake.set()

    async def _blocking(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def _send(self, status: agent_pb2.TaskStatus) -> None:
        key = (status.state, status.container_id, status.exit_code)
        if self._last_sent.get(status.task_id) == key:
            return
        self._last_sent[status.task_id] = key
        self._report(status)

    async def run(self, poll_interval: float = 0.5) -> None:
        """Converge on every change of assignments, and poll for container exits."""
        while True:
            self._wake.clear()
            try:
                await self.step()
            except Exception:  # one bad pass must not stop the agent
                log.exception("converge pass failed")
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=poll_interval)
            except TimeoutError:
                pass

    async def step(self) -> None:
        if not self._heard:
            return
        containers = {c.labels.get(TASK_LABEL, c.id): c for c in await self._blocking(self._runtime.list)}
        for task_id, task in self._assigned.items():
            if task_id in self._busy:
                continue
            container = containers.get(task_id)
            if task.desired_state == S.TASK_STATE_SHUTDOWN:
                if container is None:
                    self._send(agent_pb2.TaskStatus(task_id=task_id, state=S.TASK_STATE_SHUTDOWN))
                else:
                    self._spawn(task_id, self._shutdown(task, container))
            elif container is not None:
                self._send(status_of(task_id, container, self._network.address(container.id)))
            elif task.observed_state not in TERMINAL:
                self._spawn(task_id, self._start(task))
        for task_id, container in containers.items():
            if task_id not in self._assigned and task_id not in self._busy:
                self._spawn(task_id, self._remove_unassigned(container))
        for task_id in list(self._last_sent):
            if task_id not in self._assigned:
                del self._last_sent[task_id]
        # Network leftovers of containers removed behind our back (or before a crash).
        await self._blocking(self._network.collect, {c.id for c in containers.values()} | set(self._busy))

    def _spawn(self, task_id: str, work: Coroutine[Any, Any, None]) -> None:
        job = asyncio.create_task(work)
        self._busy[task_id] = job

        def done(_: asyncio.Task[None]) -> None:
            self._busy.pop(task_id, None)
            self._wake.set()

        job.add_done_callback(done)

    async def _start(self, task: types_pb2.Task) -> None:
        bound = log.bind(task=task.id, service=task.service, container=task.id)
        self._send(agent_pb2.TaskStatus(task_id=task.id, state=S.TASK_STATE_PREPARING))
        try:
            await self._blocking(ensure_image, self._images, task.spec.image, self.registry)
        except RuntimeFailure as err:  # not found and no registry, or the registry's reason
            bound.warning("image not available", image=task.spec.image, reason=str(err))
            self._send(agent_pb2.TaskStatus(task_id=task.id, state=S.TASK_STATE_REJECTED, message=str(err)))
            return
        mode = NETWORK_MODES.get(task.spec.network, BRIDGE_MODE)
        try:
            network = await self._blocking(self._network.attach, task.id, mode, port_mappings(task.spec))
        except NetworkError as err:
            bound.warning("container network refused", reason=str(err))
            self._send(agent_pb2.TaskStatus(task_id=task.id, state=S.TASK_STATE_REJECTED, message=str(err)))
            return
        self._send(agent_pb2.TaskStatus(task_id=task.id, state=S.TASK_STATE_STARTING, container_id=task.id))
        spec = container_spec(task, network)
        links = link_entries([(link.service, link.alias) for link in task.spec.links], self._endpoints)
        try:
            created = await self._blocking(self._runtime.create, task.id, spec)
            await self._blocking(write, created.upper_dir, self._network.etc_files(network, spec.name, links))
            container = await self._blocking(self._runtime.start, task.id)
        except StartFailed as err:
            bound.warning("container failed to start", reason=str(err))
            self._send(
                agent_pb2.TaskStatus(task_id=task.id, state=S.TASK_STATE_FAILED, container_id=task.id, message=str(err))
            )
            return
        except (RuntimeFailure, OSError) as err:  # OSError: writing its /etc files
            bound.error("container could not be created", reason=str(err))
            self._send(agent_pb2.TaskStatus(task_id=task.id, state=S.TASK_STATE_REJECTED, message=str(err)))
            return  # the next pass detaches the network of the container that does not exist
        bound.info("container started", pid=container.pid, address=network.address)
        self._send(status_of(task.id, container, network.address))

    async def _shutdown(self, task: types_pb2.Task, container: ContainerState) -> None:
        await self._stop_and_remove(container)
        self._send(agent_pb2.TaskStatus(task_id=task.id, state=S.TASK_STATE_SHUTDOWN, container_id=container.id))

    async def _remove_unassigned(self, container: ContainerState) -> None:
        log.info("removing container of a task no longer assigned here", container=container.id)
        await self._stop_and_remove(container)

    async def _stop_and_remove(self, container: ContainerState) -> None:
        if container.status is ContainerStatus.RUNNING:
            await self._blocking(self._runtime.stop, container.id)
        await self._blocking(self._runtime.remove, container.id, True)
        await self._blocking(self._network.detach, container.id)
        log.info("container removed", container=container.id)
