"""Pure pieces of the Control service: node updates and what ListTasks hides."""

from __future__ import annotations

from controller.api import is_history, updated_node
from moorage.v1 import control_pb2, types_pb2

A = types_pb2.NodeAvailability
S = types_pb2.TaskState


def test_update_node_sets_availability_and_merges_labels() -> None:
    node = types_pb2.Node(id="h1", labels={"zone": "a", "disk": "hdd"}, availability=A.NODE_AVAILABILITY_ACTIVE)
    drain = control_pb2.UpdateNodeRequest(id="h1", availability=A.NODE_AVAILABILITY_DRAIN)
    assert updated_node(node, drain).availability == A.NODE_AVAILABILITY_DRAIN
    relabel = control_pb2.UpdateNodeRequest(id="h1", set_labels={"disk": "ssd", "gpu": "1"}, remove_labels=["zone"])
    updated = updated_node(node, relabel)
    assert dict(updated.labels) == {"disk": "ssd", "gpu": "1"}
    assert updated.availability == A.NODE_AVAILABILITY_ACTIVE  # unspecified keeps it
    assert dict(node.labels) == {"zone": "a", "disk": "hdd"}  # the input is not changed


def test_history_is_stopped_and_ended() -> None:
    assert is_history(types_pb2.Task(desired_state=S.TASK_STATE_SHUTDOWN, observed_state=S.TASK_STATE_COMPLETE))
    assert not is_history(types_pb2.Task(desired_state=S.TASK_STATE_SHUTDOWN, observed_state=S.TASK_STATE_RUNNING))
    assert not is_history(types_pb2.Task(desired_state=S.TASK_STATE_RUNNING, observed_state=S.TASK_STATE_FAILED))
