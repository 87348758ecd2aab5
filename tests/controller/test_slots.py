from __future__ import annotations

import pytest

from controller.slots import NewTask, Nodes, SlotPlan, plan_slots
from moorage.v1 import types_pb2

RUNNING = types_pb2.TASK_STATE_RUNNING
SHUTDOWN = types_pb2.TASK_STATE_SHUTDOWN
V1 = types_pb2.ServiceSpec(name="web", image="app:1", replicas=2)
V2 = types_pb2.ServiceSpec(name="web", image="app:2", replicas=2)


def task(task_id: str, slot: int, spec: types_pb2.ServiceSpec = V1, node: str = "a", desired: int = RUNNING) -> types_pb2.Task:
    return types_pb2.Task(id=task_id, service="web", slot=slot, spec=spec, node_id=node, desired_state=desired)


def ids(plan: SlotPlan) -> tuple[tuple[int, ...], list[str], list[str]]:
    return tuple(n.slot for n in plan.create), [t.id for t in plan.shutdown], [t.id for t in plan.delete]


def with_replicas(spec: types_pb2.ServiceSpec, replicas: int) -> types_pb2.ServiceSpec:
    copy = types_pb2.ServiceSpec()
    copy.CopyFrom(spec)
    copy.replicas = replicas
    return copy


@pytest.mark.parametrize(
    ("spec", "tasks", "expected"),
    [
        pytest.param(V1, [], ((1, 2), [], []), id="fresh-service"),
        pytest.param(V1, [task("t1", 1), task("t2", 2)], ((), [], []), id="converged"),
        pytest.param(with_replicas(V1, 1), [task("t1", 1, V1), task("t2", 2, V1)], ((), ["t2"], []), id="scale-down-keeps-slot-1"),
        pytest.param(with_replicas(V1, 3), [task("t1", 1), task("t2", 2)], ((3,), [], []), id="scale-up"),
        pytest.param(V2, [task("t1", 1, V2), task("t2", 2, V1)], ((2,), ["t2"], []), id="image-changed"),
        pytest.param(with_replicas(V1, 1), [task("t1", 1), task("t2", 2, node="")], ((), [], ["t2"]), id="unplaced-extra-deleted"),
        pytest.param(V1, [task("t1", 1), task("t2", 2), task("old", 1, node="", desired=SHUTDOWN)], ((), [], ["old"]), id="old-unplaced-deleted"),
        pytest.param(V1, [task("t1", 1), task("t2", 2), task("old", 1, desired=SHUTDOWN)], ((), [], []), id="stopping-on-node-waits"),
        pytest.param(V1, [task("t1", 1), task("t1b", 1), task("t2", 2)], ((), ["t1b"], []), id="duplicate-slot-stopped"),
        pytest.param(None, [task("t1", 1), task("t2", 2, node="")], ((), ["t1"], ["t2"]), id="service-gone"),
        pytest.param(with_replicas(V1, 0), [task("t1", 1)], ((), ["t1"], []), id="scale-to-zero"),
    ],
)
def test_plan_slots(
    spec: types_pb2.ServiceSpec | None,
    tasks: list[types_pb2.Task],
    expected: tuple[tuple[int, ...], list[str], list[str]],
) -> None:
    assert ids(plan_slots(spec, tasks)) == expected


def test_converged_plan_is_empty() -> None:
    assert plan_slots(V1, [task("t1", 1), task("t2", 2)]).empty
    assert not plan_slots(V1, []).empty


FAILED = types_pb2.TASK_STATE_FAILED
NOW = 10**18


def ended(task_id: str, slot: int, node: str = "a", restarts: int = 0, **policy: float) -> types_pb2.Task:
    spec = types_pb2.ServiceSpec()
    spec.CopyFrom(V1)
    spec.restart.CopyFrom(types_pb2.RestartPolicy(**policy))  # type: ignore[arg-type]
    failed = task(task_id, slot, spec, node)
    failed.observed_state, failed.restarts = FAILED, restarts
    failed.finished_at.FromNanoseconds(NOW - 10**9)  # ended a second ago
    return failed


def with_restart(spec: types_pb2.ServiceSpec, **policy: float) -> types_pb2.ServiceSpec:
    copy = types_pb2.ServiceSpec()
    copy.CopyFrom(spec)
    copy.restart.CopyFrom(types_pb2.RestartPolicy(**policy))  # type: ignore[arg-type]
    return copy


def test_tasks_on_down_or_drained_nodes_are_replaced_elsewhere() -> None:
    tasks = [task("t1", 1, node="a"), task("t2", 2, node="b")]
    plan = plan_slots(V1, tasks, Nodes(down={"a"}), NOW)
    assert [t.id for t in plan.shutdown] == ["t1"]
    assert plan.create == (NewTask(1, prev_id="t1"),)  # no node: the scheduler picks one
    drained = plan_slots(V1, tasks, Nodes(drained={"b"}), NOW)
    assert [t.id for t in drained.shutdown] == ["t2"] and drained.create == (NewTask(2, prev_id="t2"),)


def test_ended_task_restarts_on_its_node_after_the_delay() -> None:
    spec = with_restart(V1, delay=0.5)
    tasks = [ended("t1", 1, restarts=1, delay=0.5)]
    tasks.append(task("t2", 2, spec, node="b"))
    due = plan_slots(spec, tasks, Nodes(), NOW)  # 0.5 * 2**1 = 1 s after it ended: due now
    assert due.create == (NewTask(1, prev_id="t1", node_id="a", restarts=2),)
    assert [t.id for t in due.shutdown] == ["t1"]
    early = plan_slots(spec, tasks, Nodes(), NOW - 10**9 // 2)
    assert early.empty and early.wake_at_ns == NOW
    elsewhere = plan_slots(spec, tasks, Nodes(down={"a"}), NOW)
    assert elsewhere.create == (NewTask(1, prev_id="t1", restarts=1),)


def test_policy_limit_is_reported_and_the_task_kept() -> None:
    spec = with_restart(V1, max_attempts=1)
    plan = plan_slots(spec, [ended("t1", 1, restarts=1, max_attempts=1), task("t2", 2, spec)], Nodes(), NOW)
    assert plan.empty
    assert plan.problems == ("slot 1: gave up after 1 restarts (failed: no message)",)


def test_history_keeps_the_newest_per_slot_and_goes_with_the_service() -> None:
    old = []
    for i in range(7):
        stopped = task(f"h{i}", 1, desired=SHUTDOWN)
        stopped.observed_state = FAILED
        stopped.created_at.FromNanoseconds(i)
        old.append(stopped)
    stopping = task("s", 1, desired=SHUTDOWN)  # still running on its node
    tasks = [*old, stopping, task("t1", 1), task("t2", 2)]
    plan = plan_slots(V1, tasks, Nodes(), NOW)
    assert [t.id for t in plan.delete] == ["h0", "h1"] and not plan.create and not plan.shutdown
    gone = plan_slots(None, tasks, Nodes(), NOW)
    assert {t.id for t in gone.delete} == {f"h{i}" for i in range(7)}
    assert {t.id for t in gone.shutdown} == {"t1", "t2"}
    on_down_node = plan_slots(None, [stopping], Nodes(down={"a"}), NOW)
    assert [t.id for t in on_down_node.delete] == ["s"]


def test_new_task_follows_the_newest_of_its_slot() -> None:
    stopped = task("old", 1, desired=SHUTDOWN)
    stopped.observed_state = SHUTDOWN
    plan = plan_slots(with_replicas(V1, 1), [stopped], Nodes(), NOW)
    assert plan.create == (NewTask(1, prev_id="old"),)
