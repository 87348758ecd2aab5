from __future__ import annotations

import pytest

from controller.slots import SlotPlan, plan_slots
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
