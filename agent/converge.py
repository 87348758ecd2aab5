"""Converging this host's containers to the task set the controller assigned.

Level-triggered: every pass compares the whole assigned set with what the
runtime reports and takes the missing steps (``action``); nothing depends on
having seen a particular change. Each task's work (pull, start, stop, remove)
runs at most once at a time, off the event loop in the runtime's thread pool.

Task history (as Docker Swarm keeps it): the controller assigns a node every
task it holds for it, also those that ended and are kept as their slot's
history. Their containers stay, exited, with their log and rw layer, so
``moor logs`` shows why a crash-looping task died; what a stopped container
does not need goes at once (its network: address lease, veth, pinned
namespace, published ports; its overlay is mounted only in its own mount
namespace, gone with its last process). A container is removed when its task
leaves the assignments: history pruned, service deleted, node fenced.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable, Collection, Coroutine, Iterable, Mapping
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
from agent.runtime.containers.cgroups import Limits
from agent.runtime.containers.containers import (
    ContainerSpec,
    ContainerState,
    ContainerStatus,
    DeviceSpec,
    MountSpec,
    Runtime,
)
from agent.runtime.errors import RuntimeFailure, StartFailed
from agent.runtime.images.store import ImageStore
from agent.runtime.images.registry import RegistrySettings, ensure_image
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
    dir, read-only root, capabilities, init, seccomp profile, devices and stop signal. Restarts
    stay the controller's."""
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
        "seccomp": "unconfined" if spec.seccomp == types_pb2.SECCOMP_PROFILE_UNCONFINED else "default",
        "devices": tuple(DeviceSpec(d.host_path, d.container_path, d.permissions or "rwm") for d in spec.devices),
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


def shutdown_status(task_id: str, container: ContainerState | None) -> agent_pb2.TaskStatus:
    """A task shut down on request: its container stopped (how it exited, for the history) or never there."""
    if container is None:
        return agent_pb2.TaskStatus(task_id=task_id, state=S.TASK_STATE_SHUTDOWN)
    status = status_of(task_id, container)
    status.state = S.TASK_STATE_SHUTDOWN
    return status


class Action(enum.Enum):
    """What a pass does for an assigned task (see ``action``)."""

    NOTHING = "nothing"
    START = "start"  # create and start its container
    REPORT = "report"  # report its container's state
    STOP = "stop"  # stop its container, which stays (exited) as history
    REPORT_SHUTDOWN = "report shutdown"  # it is not running: report it shut down


def action(task: types_pb2.Task, container: ContainerState | None) -> Action:
    """The step that brings an assigned ``task`` and its ``container`` (if any) together.

    Only a task with no container is started: an exited container is never restarted (a
    restart is a new task); it stays until its task is no longer assigned.
    """
    if task.desired_state == S.TASK_STATE_SHUTDOWN:
        if container is not None and container.status is ContainerStatus.RUNNING:
            return Action.STOP
        # Ended history: the controller has its final state already.
        return Action.NOTHING if task.observed_state in TERMINAL else Action.REPORT_SHUTDOWN
    if container is not None:
        return Action.REPORT
    return Action.START if task.observed_state not in TERMINAL else Action.NOTHING


def networked(containers: Iterable[ContainerState], busy: Collection[str]) -> set[str]:
    """The containers that keep their network: the running ones and those being worked on
    (started or stopped right now). A container never runs again once stopped."""
    return {c.id for c in containers if c.status is ContainerStatus.RUNNING} | set(busy)


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
        busy = set(self._busy)  # with the containers its jobs made before the listing below
        listed = await self._blocking(self._runtime.list)
        containers = {c.labels.get(TASK_LABEL, c.id): c for c in listed}
        for task_id, task in self._assigned.items():
            if task_id in self._busy:
                continue
            container = containers.get(task_id)
            match action(task, container):
                case Action.START:
                    self._spawn(task_id, self._start(task))
                case Action.REPORT if container is not None:
                    self._send(status_of(task_id, container, self._network.address(container.id)))
                case Action.STOP if container is not None:
                    self._spawn(task_id, self._stop(task_id, container))
                case Action.REPORT_SHUTDOWN:
                    self._send(shutdown_status(task_id, container))
        for task_id, container in containers.items():
            if task_id not in self._assigned and task_id not in self._busy:
                self._spawn(task_id, self._remove_unassigned(container))
        for task_id in list(self._last_sent):
            if task_id not in self._assigned:
                del self._last_sent[task_id]
        # A stopped container's network, and the leftovers of containers removed behind our back.
        await self._blocking(self._network.collect, networked(listed, busy | self._busy.keys()))

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

    async def _stop(self, task_id: str, container: ContainerState) -> None:
        """Stop a task's container for good; it stays, exited, as history."""
        stopped = await self._blocking(self._runtime.stop, container.id)
        await self._blocking(self._network.detach, container.id)
        log.info("container stopped", container=container.id, exit_code=stopped.exit_code)
        self._send(shutdown_status(task_id, stopped))

    async def _remove_unassigned(self, container: ContainerState) -> None:
        log.info("removing container of a task no longer assigned here", container=container.id)
        if container.status is ContainerStatus.RUNNING:
            await self._blocking(self._runtime.stop, container.id)
        await self._blocking(self._runtime.remove, container.id, True)
        await self._blocking(self._network.detach, container.id)
        log.info("container removed", container=container.id)
