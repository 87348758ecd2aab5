"""Helpers for tests that drive a LocalCluster from outside, as a user would."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import TYPE_CHECKING

from moorage.localcluster.cluster import MOOR, AgentHost, LocalCluster
from moorage.localcluster.procs import wait_for
from moorage.v1 import control_pb2, types_pb2

if TYPE_CHECKING:
    from agent.runtime.containers.containers import ContainerState

S = types_pb2.TaskState


def moor(cluster: LocalCluster, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the real `moor` CLI against ``cluster``."""
    result = subprocess.run([MOOR, *args], env=cluster.cli_env(), capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"moor {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def tasks(cluster: LocalCluster, service: str = "", *, all: bool = False) -> list[types_pb2.Task]:  # noqa: A002
    request = control_pb2.ListTasksRequest(service=service, all=all)
    return list(cluster.control().ListTasks(request, timeout=5).tasks)


def wait_tasks(
    cluster: LocalCluster,
    service: str,
    predicate: Callable[[list[types_pb2.Task]], bool],
    what: str,
    timeout: float = 30.0,
) -> list[types_pb2.Task]:
    """Wait until the service's task list satisfies ``predicate``; return that list."""
    seen: list[list[types_pb2.Task]] = []

    def check() -> bool:
        seen[:] = [tasks(cluster, service)]
        return predicate(seen[0])

    try:
        wait_for(check, timeout, what, interval=0.05)
    except TimeoutError as err:
        raise AssertionError(f"{err}; last tasks: {seen[0] if seen else None}\n{cluster.logs()}") from err
    return seen[0]


def running(count: int) -> Callable[[list[types_pb2.Task]], bool]:
    def check(found: list[types_pb2.Task]) -> bool:
        live = [t for t in found if t.desired_state == S.TASK_STATE_RUNNING]
        return len(live) == count and all(t.observed_state == S.TASK_STATE_RUNNING for t in live)

    return check


def live(found: list[types_pb2.Task]) -> list[types_pb2.Task]:
    return [t for t in found if t.desired_state == S.TASK_STATE_RUNNING]


def one_running_per_slot(replicas: int, avoid: str = "") -> Callable[[list[types_pb2.Task]], bool]:
    """Exactly one live task per slot 1..replicas, each RUNNING, none on node ``avoid``."""

    def check(found: list[types_pb2.Task]) -> bool:
        tasks_ = live(found)
        return (
            sorted(t.slot for t in tasks_) == list(range(1, replicas + 1))
            and all(t.observed_state == S.TASK_STATE_RUNNING for t in tasks_)
            and all(t.node_id != avoid for t in tasks_)
        )

    return check


def containers(agent: AgentHost) -> dict[str, ContainerState]:
    """The containers a host's runtime holds, by id, read from its state directory."""
    from agent.runtime.containers.containers import Runtime
    from agent.runtime.images.store import ImageStore

    return {c.id: c for c in Runtime(agent.state_dir, ImageStore(agent.state_dir / "images")).list()}


def running_containers(agent: AgentHost) -> set[str]:
    from agent.runtime.containers.containers import ContainerStatus

    return {c.id for c in containers(agent).values() if c.status is ContainerStatus.RUNNING}
