"""The restart policy of a service, as a pure decision about one ended task.

A task whose container ended (COMPLETE, FAILED or REJECTED) while it is still
wanted may be replaced by a new task in its slot. ``decide`` says whether and
when. Worked example, ``restart: {condition: on-failure, delay: 1s,
max_attempts: 3}``: a task that failed after its 2nd restart gets a 3rd one
``1 * 2**2 = 4`` s after it ended; one that failed after its 3rd restart stays
FAILED, with the reason. A task that ran for at least ``window`` seconds
before it ended starts the count (and the back-off) afresh.
"""

from __future__ import annotations

from dataclasses import dataclass

from moorage.v1 import types_pb2

S = types_pb2.TaskState
C = types_pb2.RestartPolicy.Condition
ENDED = frozenset({S.TASK_STATE_COMPLETE, S.TASK_STATE_FAILED, S.TASK_STATE_REJECTED})
DEFAULT_DELAY = 0.5
DEFAULT_WINDOW = 10.0
MAX_DELAY = 60.0
NANOS = 1_000_000_000


@dataclass(frozen=True)
class Restart:
    """Replace the task at ``at_ns`` (wall clock) by one with ``restarts`` restarts."""

    at_ns: int
    restarts: int


@dataclass(frozen=True)
class GiveUp:
    """The policy allows no more restarts; ``reason`` says why ("" when the user asked for none)."""

    reason: str


def decide(task: types_pb2.Task) -> Restart | GiveUp | None:
    """What the policy of ``task``'s spec says about it; ``None`` while it has not ended."""
    if task.observed_state not in ENDED:
        return None
    policy = task.spec.restart
    condition = policy.condition or C.CONDITION_ANY
    if condition == C.CONDITION_NONE:
        return GiveUp("")
    if condition == C.CONDITION_ON_FAILURE and task.observed_state == S.TASK_STATE_COMPLETE:
        return GiveUp("")
    ended_ns = (task.finished_at if task.HasField("finished_at") else task.updated_at).ToNanoseconds()
    ran_ns = ended_ns - task.started_at.ToNanoseconds() if task.HasField("started_at") else 0
    fresh = ran_ns >= (policy.window or DEFAULT_WINDOW) * NANOS
    done = 0 if fresh else task.restarts
    if policy.max_attempts and done >= policy.max_attempts:
        state = types_pb2.TaskState.Name(task.observed_state).removeprefix("TASK_STATE_").lower()
        return GiveUp(f"slot {task.slot}: gave up after {done} restarts ({state}: {task.message or 'no message'})")
    delay = min((policy.delay or DEFAULT_DELAY) * 2**done, MAX_DELAY)
    return Restart(at_ns=ended_ns + int(delay * NANOS), restarts=done + 1)
