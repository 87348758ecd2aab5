"""Helpers for tests that drive a LocalCluster from outside, as a user would."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

from moorage.localcluster.cluster import MOOR, LocalCluster
from moorage.localcluster.procs import wait_for
from moorage.v1 import control_pb2, types_pb2

S = types_pb2.TaskState


def moor(cluster: LocalCluster, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the real `moor` CLI against ``cluster``."""
    result = subprocess.run([MOOR, *args], env=cluster.cli_env(), capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"moor {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def tasks(cluster: LocalCluster, service: str = "") -> list[types_pb2.Task]:
    return list(cluster.control().ListTasks(control_pb2.ListTasksRequest(service=service), timeout=5).tasks)


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
