from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from controller.assignments import desired_view
from controller.status import apply_status, recorded_shutdown
from moorage.v1 import agent_pb2, types_pb2


def test_apply_status_copies_what_the_agent_observed() -> None:
    task = types_pb2.Task(id="t", node_id="a", observed_state=types_pb2.TASK_STATE_ASSIGNED)
    started = Timestamp(seconds=10)
    status = agent_pb2.TaskStatus(task_id="t", state=types_pb2.TASK_STATE_RUNNING, container_id="c1", started_at=started)
    updated = apply_status(task, status)
    assert (updated.observed_state, updated.container_id, updated.started_at) == (types_pb2.TASK_STATE_RUNNING, "c1", started)
    assert task.observed_state == types_pb2.TASK_STATE_ASSIGNED, "the input is not modified"
    assert apply_status(updated, status) == updated, "a repeated report changes nothing"


def test_desired_view_ignores_observed_fields() -> None:
    task = types_pb2.Task(id="t", desired_state=types_pb2.TASK_STATE_RUNNING, spec={"name": "web", "image": "x"})
    reported = types_pb2.Task()
    reported.CopyFrom(task)
    reported.observed_state = types_pb2.TASK_STATE_RUNNING
    assert desired_view([reported]) == desired_view([task])
    reported.desired_state = types_pb2.TASK_STATE_SHUTDOWN
    assert desired_view([reported]) != desired_view([task])


def test_shutdown_report_keeps_an_earlier_exit_for_the_history() -> None:
    S = types_pb2.TaskState
    report = agent_pb2.TaskStatus(task_id="t", state=S.TASK_STATE_SHUTDOWN)
    failed = types_pb2.Task(id="t", observed_state=S.TASK_STATE_FAILED, exit_code=3)
    assert recorded_shutdown(failed, report) == failed
    running = types_pb2.Task(id="t", observed_state=S.TASK_STATE_RUNNING, container_id="c")
    stopped = recorded_shutdown(running, report)
    assert stopped.observed_state == S.TASK_STATE_SHUTDOWN and stopped.HasField("finished_at")
