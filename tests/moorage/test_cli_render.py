"""What `moor` prints and when `--wait` is done: pure functions over API messages."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from rich.console import Console

from moorage.cli import render
from moorage.cli.common import CommandError
from moorage.cli.logstreams import format_entry
from moorage.cli.waiting import Check, drain_check, poll, progress_view, rollout_check
from moorage.v1 import types_pb2

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
RUNNING = types_pb2.TASK_STATE_RUNNING
SHUTDOWN = types_pb2.TASK_STATE_SHUTDOWN


def ago(seconds: int) -> Timestamp:
    stamp = Timestamp()
    stamp.FromSeconds(int(NOW.timestamp()) - seconds)
    return stamp


def task(
    service: str,
    slot: int,
    observed: types_pb2.TaskState.ValueType,
    spec: types_pb2.ServiceSpec | None = None,
    desired: types_pb2.TaskState.ValueType = RUNNING,
    message: str = "",
) -> types_pb2.Task:
    return types_pb2.Task(
        id=f"{service}-{slot}",
        service=service,
        slot=slot,
        desired_state=desired,
        observed_state=observed,
        spec=spec or types_pb2.ServiceSpec(name=service),
        message=message,
    )


def text_of(table: object) -> str:
    console = Console(width=200)
    with console.capture() as capture:
        console.print(table)
    return capture.get()


@pytest.mark.parametrize(
    ("state", "name"),
    [(types_pb2.TASK_STATE_RUNNING, "running"), (types_pb2.TASK_STATE_REJECTED, "rejected"),
     (types_pb2.TASK_STATE_UNSPECIFIED, "unspecified")],
)
def test_task_state_names(state: types_pb2.TaskState.ValueType, name: str) -> None:
    assert render.task_state(state) == name


def test_node_state_names() -> None:
    assert render.node_state(types_pb2.NODE_STATE_DOWN) == "down"


@pytest.mark.parametrize(("seconds", "shown"), [(0, "0s"), (119, "119s"), (120, "2m"), (7199, "119m"),
                                                (7200, "2h"), (48 * 3600, "2d")])
def test_age(seconds: int, shown: str) -> None:
    assert render.age(ago(seconds), NOW) == shown


def test_age_of_unset_time() -> None:
    assert render.age(Timestamp(), NOW) == "-"


@pytest.mark.parametrize(("size", "shown"), [(512, "512"), (1024, "1Ki"), (1536, "1.5Ki"), (512 * 2**20, "512Mi"),
                                             (8 * 2**30 - 2**28, "7.8Gi")])
def test_memory(size: int, shown: str) -> None:
    assert render.memory(size) == shown


def test_cpus_and_labels() -> None:
    assert (render.cpus(2000), render.cpus(1500)) == ("2", "1.5")
    assert render.labels({"b": "2", "a": "1"}) == "a=1,b=2"
    assert render.labels({}) == "-"


def test_services_table_counts_running_replicas() -> None:
    services = [types_pb2.Service(spec=types_pb2.ServiceSpec(name="web", image="nginx", replicas=3))]
    tasks = [task("web", 1, RUNNING), task("web", 2, RUNNING, desired=SHUTDOWN), task("web", 3, types_pb2.TASK_STATE_STARTING)]
    lines = text_of(render.services_table(services, tasks)).splitlines()
    assert lines[0].split() == ["NAME", "IMAGE", "REPLICAS", "RUNNING"]
    assert lines[1].split() == ["web", "nginx", "3", "1"]


def test_tasks_table_keeps_user_text_literal() -> None:
    failed = task("web", 1, types_pb2.TASK_STATE_FAILED, message="[bold]exit 1[/bold]")
    failed.created_at.CopyFrom(ago(300))
    failed.container_id = "c" * 64
    lines = text_of(render.tasks_table([failed], NOW)).splitlines()
    assert lines[0].split() == ["ID", "SERVICE", "SLOT", "NODE", "DESIRED", "STATE", "CONTAINER", "AGE", "MESSAGE"]
    assert lines[1].split() == ["web-1", "web", "1", "-", "running", "failed", "c" * 12, "5m", "[bold]exit", "1[/bold]"]


def test_nodes_table() -> None:
    node = types_pb2.Node(
        id="n1", hostname="h1", address="10.0.0.1", state=types_pb2.NODE_STATE_READY,
        resources=types_pb2.Resources(cpu_millis=4000, memory_bytes=2**31), labels={"zone": "a"},
    )
    lines = text_of(render.nodes_table([node])).splitlines()
    assert lines[1].split() == ["n1", "h1", "10.0.0.1", "ready", "4", "2Gi", "zone=a"]


def test_rollout_is_done_when_every_slot_of_the_new_spec_runs() -> None:
    spec = types_pb2.ServiceSpec(name="web", image="v2", replicas=2)
    old = types_pb2.ServiceSpec(name="web", image="v1", replicas=2)
    halfway = [
        task("web", 1, RUNNING, spec),
        task("web", 2, RUNNING, old),
        task("web", 2, types_pb2.TASK_STATE_PENDING, spec, message="no ready nodes"),
    ]
    check = rollout_check([spec], halfway)
    assert (check.done, check.summary, check.failures) == (False, "running: web 1/2; web.2 pending: no ready nodes", ())
    check = rollout_check([spec], [*halfway[:2], task("web", 2, RUNNING, spec)])
    assert (check.done, check.summary) == (True, "running: web 2/2")


def test_rollout_of_zero_replicas_is_done_at_once() -> None:
    assert rollout_check([types_pb2.ServiceSpec(name="web", replicas=0)], []).done


def test_rollout_reports_failed_and_rejected_tasks_of_the_new_spec() -> None:
    spec = types_pb2.ServiceSpec(name="web", image="nope", replicas=2)
    tasks = [
        task("web", 1, types_pb2.TASK_STATE_REJECTED, spec, message="image not found: nope"),
        task("web", 2, types_pb2.TASK_STATE_FAILED, spec),
        task("web", 3, types_pb2.TASK_STATE_FAILED, spec, desired=SHUTDOWN, message="replaced"),
    ]
    assert rollout_check([spec], tasks).failures == (
        "web.1 rejected: image not found: nope",
        "web.2 failed: no message",
    )


def test_drain_waits_for_live_tasks_only() -> None:
    assert not drain_check("web", [task("web", 1, RUNNING, desired=SHUTDOWN)]).done
    assert drain_check("web", [task("web", 1, SHUTDOWN, desired=SHUTDOWN), task("other", 1, RUNNING)]).done
    assert drain_check("web", []).done


def test_log_lines_are_prefixed_with_the_task() -> None:
    entry = types_pb2.LogEntry(stream="stdout", line="hello\n", slot=2, task_id="1a2b3c4d5e6f")
    entry.time.FromSeconds(1714564800)
    assert format_entry("web", entry, timestamps=False) == "web.2.1a2b3c4d5e6f | hello"
    assert format_entry("web", entry, timestamps=True) == "2024-05-01T12:00:00Z web.2.1a2b3c4d5e6f | hello"


def test_progress_view_names_each_service_and_what_it_waits_on() -> None:
    spec = types_pb2.ServiceSpec(name="web", image="v2", replicas=2)
    check = rollout_check([spec], [task("web", 1, RUNNING, spec), task("web", 2, types_pb2.TASK_STATE_PENDING, spec,
                                                                       message="no node has 2Gi free")])  # fmt: skip
    assert check.rows == (("web", "1/2", "web.2 pending: no node has 2Gi free"),)
    shown = text_of(progress_view(check, 12.4))
    assert "running: web 1/2; web.2 pending: no node has 2Gi free (12s left)" in shown
    assert shown.splitlines()[1].split() == ["SERVICE", "RUNNING", "WAITING", "ON"]
    assert shown.splitlines()[2].split()[:3] == ["web", "1/2", "web.2"]


def test_poll_stops_at_the_first_failure() -> None:
    failing = Check(False, "running: web 0/1", ("web.1 rejected: image not found: nope",))
    with pytest.raises(CommandError, match="web.1 rejected: image not found: nope"):
        poll(lambda: failing, 30, Console(file=io.StringIO()))
