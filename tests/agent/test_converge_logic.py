"""What the converger does with each assigned task, the ended history included (pure: no runtime)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.converge import Action, action, networked, shutdown_status
from agent.runtime.containers.containers import ContainerState, ContainerStatus
from controller.status import recorded_shutdown
from moorage.v1 import types_pb2

S = types_pb2.TaskState
RUNNING, SHUTDOWN = S.TASK_STATE_RUNNING, S.TASK_STATE_SHUTDOWN
STARTED = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
ENDED = datetime(2026, 1, 1, 12, 1, tzinfo=UTC)


def container(status: ContainerStatus, exit_code: int | None = None, container_id: str = "t") -> ContainerState:
    exited = status is ContainerStatus.EXITED
    return ContainerState(
        id=container_id, name=f"web.1.{container_id}", status=status, pid=0 if exited else 42, exit_code=exit_code,
        created_at=STARTED, started_at=STARTED, finished_at=ENDED if exited else None, labels={}, image="busybox",
        upper_dir=Path("/nonexistent/upper"),
    )  # fmt: skip


def task(desired: int, observed: int) -> types_pb2.Task:
    return types_pb2.Task(id="t", service="web", slot=1, desired_state=desired, observed_state=observed)


@pytest.mark.parametrize(
    ("desired", "observed", "state", "expected"),
    [
        (RUNNING, S.TASK_STATE_ASSIGNED, None, Action.START),
        (RUNNING, S.TASK_STATE_RUNNING, ContainerStatus.RUNNING, Action.REPORT),
        # An exited container is reported, never started again: a restart is a new task.
        (RUNNING, S.TASK_STATE_RUNNING, ContainerStatus.EXITED, Action.REPORT),
        (RUNNING, S.TASK_STATE_FAILED, ContainerStatus.EXITED, Action.REPORT),
        (RUNNING, S.TASK_STATE_REJECTED, None, Action.NOTHING),
        # Shut down: stopped, and the container stays as history.
        (SHUTDOWN, S.TASK_STATE_RUNNING, ContainerStatus.RUNNING, Action.STOP),
        (SHUTDOWN, S.TASK_STATE_RUNNING, ContainerStatus.EXITED, Action.REPORT_SHUTDOWN),
        (SHUTDOWN, S.TASK_STATE_ASSIGNED, None, Action.REPORT_SHUTDOWN),
        # Ended history: the controller has its final state; its exited container is kept as it is.
        (SHUTDOWN, S.TASK_STATE_FAILED, ContainerStatus.EXITED, Action.NOTHING),
        (SHUTDOWN, S.TASK_STATE_COMPLETE, ContainerStatus.EXITED, Action.NOTHING),
        (SHUTDOWN, S.TASK_STATE_SHUTDOWN, ContainerStatus.EXITED, Action.NOTHING),
        (SHUTDOWN, S.TASK_STATE_REJECTED, None, Action.NOTHING),
    ],
)
def test_action_of_an_assigned_task(desired: int, observed: int, state: ContainerStatus | None, expected: Action) -> None:
    found = container(state, 1 if state is ContainerStatus.EXITED else None) if state is not None else None
    assert action(task(desired, observed), found) is expected


def test_only_running_and_busy_containers_keep_their_network() -> None:
    listed = [
        container(ContainerStatus.RUNNING, container_id="up"),
        container(ContainerStatus.EXITED, 1, container_id="history"),
        container(ContainerStatus.CREATED, container_id="never-started"),
        container(ContainerStatus.EXITED, 0, container_id="stopping-now"),
    ]
    assert networked(listed, {"stopping-now", "starting-now"}) == {"up", "stopping-now", "starting-now"}


def test_shutdown_status_carries_how_the_container_exited() -> None:
    status = shutdown_status("t", container(ContainerStatus.EXITED, 143))
    assert (status.state, status.container_id, status.exit_code) == (SHUTDOWN, "t", 143)
    assert status.finished_at.ToDatetime(tzinfo=UTC) == ENDED
    bare = shutdown_status("t", None)
    assert (bare.state, bare.container_id, bare.HasField("finished_at")) == (SHUTDOWN, "", False)


def test_a_stopped_task_is_recorded_with_its_exit_and_its_container_for_logs() -> None:
    running = types_pb2.Task(id="t", desired_state=SHUTDOWN, observed_state=RUNNING, container_id="t")
    recorded = recorded_shutdown(running, shutdown_status("t", container(ContainerStatus.EXITED, 143)))
    assert (recorded.observed_state, recorded.exit_code, recorded.container_id) == (SHUTDOWN, 143, "t")
    assert recorded.finished_at.ToDatetime(tzinfo=UTC) == ENDED
