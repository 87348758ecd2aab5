"""The restart policy as a pure decision (controller.restarts)."""

from __future__ import annotations

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from controller.restarts import NANOS, GiveUp, Restart, decide
from moorage.v1 import types_pb2

S = types_pb2.TaskState
C = types_pb2.RestartPolicy
ENDED = 1_000 * NANOS


def stamp(ns: int) -> Timestamp:
    t = Timestamp()
    t.FromNanoseconds(ns)
    return t


def task(state: int, restarts: int = 0, ran: float = 1.0, **policy: float) -> types_pb2.Task:
    spec = types_pb2.ServiceSpec(name="web", restart=types_pb2.RestartPolicy(**policy))  # type: ignore[arg-type]
    return types_pb2.Task(
        slot=2,
        spec=spec,
        observed_state=state,
        restarts=restarts,
        started_at=stamp(ENDED - int(ran * NANOS)),
        finished_at=stamp(ENDED),
        message="exited with code 3",
    )


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        pytest.param(task(S.TASK_STATE_RUNNING), None, id="still-running"),
        pytest.param(task(S.TASK_STATE_FAILED), Restart(ENDED + NANOS // 2, 1), id="default-any-half-second"),
        pytest.param(task(S.TASK_STATE_COMPLETE, delay=1), Restart(ENDED + NANOS, 1), id="any-restarts-a-clean-exit"),
        pytest.param(task(S.TASK_STATE_FAILED, 2, delay=1), Restart(ENDED + 4 * NANOS, 3), id="back-off-doubles"),
        pytest.param(task(S.TASK_STATE_FAILED, 9, delay=1), Restart(ENDED + 60 * NANOS, 10), id="back-off-capped"),
        pytest.param(task(S.TASK_STATE_FAILED, 3, ran=20, delay=1), Restart(ENDED + NANOS, 1), id="long-run-resets"),
        pytest.param(task(S.TASK_STATE_FAILED, 3, ran=5, delay=1, window=4), Restart(ENDED + NANOS, 1), id="own-window"),
        pytest.param(task(S.TASK_STATE_FAILED, condition=C.CONDITION_NONE), GiveUp(""), id="none"),
        pytest.param(
            task(S.TASK_STATE_COMPLETE, condition=C.CONDITION_ON_FAILURE), GiveUp(""), id="on-failure-clean-exit"
        ),
        pytest.param(
            task(S.TASK_STATE_REJECTED, condition=C.CONDITION_ON_FAILURE), Restart(ENDED + NANOS // 2, 1), id="rejected"
        ),
        pytest.param(
            task(S.TASK_STATE_FAILED, 2, max_attempts=2),
            GiveUp("slot 2: gave up after 2 restarts (failed: exited with code 3)"),
            id="limit-reached",
        ),
        pytest.param(task(S.TASK_STATE_FAILED, 1, max_attempts=2), Restart(ENDED + NANOS, 2), id="below-limit"),
    ],
)
def test_decide(given: types_pb2.Task, expected: Restart | GiveUp | None) -> None:
    assert decide(given) == expected
