"""`moor describe service|task|node NAME`: everything about one object, for a person.

A service shows its spec as a manifest, its status and every task it has had
(states, exit codes, and the reason a task is pending or failed: placement and
runtime messages). A node shows its resources and the tasks on it. Each ends with
the recent events the answering controller has seen about it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated

import typer
from google.protobuf.timestamp_pb2 import Timestamp
from rich.console import Console
from rich.table import Table
from rich.text import Text

from moorage.cli.common import ControllerOption, stdout_console
from moorage.cli.config import connect
from moorage.cli.events import format_event
from moorage.cli.lookup import find_node, find_service, find_task
from moorage.cli.output import as_data, to_yaml
from moorage.cli.render import (
    age,
    availability,
    cpus,
    exit_code,
    health,
    labels,
    memory,
    node_state,
    task_state,
    tasks_table,
)
from moorage.cli.reporting import reporting
from moorage.v1 import types_pb2

app = typer.Typer(
    help="Show everything about one service, task or node.\n\nExample: moor describe service hello",
    no_args_is_help=True,
)

Fields = list[tuple[str, object]]


def when(stamp: Timestamp, now: datetime) -> str:
    """``2024-05-01T12:00:00Z (5m ago)``, or ``-``."""
    if stamp.seconds == 0 and stamp.nanos == 0:
        return "-"
    return f"{stamp.ToJsonString()} ({age(stamp, now)} ago)"


def spec_yaml(spec: types_pb2.ServiceSpec) -> str:
    """The spec as the manifest that would produce it (fields at their defaults left out)."""
    from pydantic import ValidationError

    from moorage.manifest import ServiceManifest

    try:
        data = ServiceManifest.from_spec(spec).model_dump(mode="json", exclude_defaults=True)
    except ValidationError:  # written by another client, not through a manifest
        data = as_data(spec)
    return to_yaml(data, sort_keys=False)


def service_fields(service: types_pb2.Service, tasks: Sequence[types_pb2.Task], now: datetime) -> Fields:
    spec = service.spec
    running = sum(1 for t in tasks if t.desired_state == t.observed_state == types_pb2.TASK_STATE_RUNNING)
    update = types_pb2.UpdateStatus.State.Name(service.update_status.state).removeprefix("STATE_").lower()
    fields: Fields = [
        ("Name", spec.name),
        ("Image", spec.image),
        ("Replicas", f"{spec.replicas} desired, {running} running"),
        ("Created", when(service.created_at, now)),
        ("Updated", when(service.updated_at, now)),
    ]
    if update != "unspecified":
        fields.append(("Update", f"{update}: {service.update_status.message}".rstrip(": ")))
    fields.append(("Message", service.message or "-"))
    return fields


def task_fields(task: types_pb2.Task, now: datetime) -> Fields:
    return [
        ("ID", task.id),
        ("Service", f"{task.service} (slot {task.slot})"),
        ("Node", task.node_id or "-"),
        ("Desired", task_state(task.desired_state)),
        ("State", task_state(task.observed_state)),
        ("Exit code", exit_code(task)),
        ("Message", task.message or "-"),
        ("Container", task.container_id or "-"),
        ("Address", task.address or "-"),
        ("Health", health(task.health)),
        ("Restarts", task.restarts),
        ("Image", task.spec.image),
        ("Created", when(task.created_at, now)),
        ("Started", when(task.started_at, now)),
        ("Finished", when(task.finished_at, now)),
    ]


def node_fields(node: types_pb2.Node, now: datetime) -> Fields:
    return [
        ("ID", node.id),
        ("Hostname", node.hostname),
        ("Address", node.address or "-"),
        ("State", node_state(node.state)),
        ("Availability", availability(node.availability)),
        ("CPUs", cpus(node.resources.cpu_millis)),
        ("Memory", memory(node.resources.memory_bytes)),
        ("Labels", labels(dict(node.labels))),
        ("Subnet", node.subnet or "-"),
        ("Agent", node.agent_version or "-"),
        ("Registered", when(node.registered_at, now)),
        ("Last seen", when(node.last_seen, now)),
    ]


def print_fields(console: Console, fields: Fields) -> None:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    for label, value in fields:
        table.add_row(f"{label}:", Text(str(value)))
    console.print(table)


def print_section(console: Console, title: str, body: object) -> None:
    console.print(Text(f"\n{title}:", style="bold"))
    console.print(body)


RECENT_EVENTS = 20


def events_text(events: Sequence[types_pb2.Event]) -> Text | str:
    return Text("\n".join(format_event(event) for event in events)) if events else "none seen recently"


@app.command("service")
@reporting
def describe_service(
    name: Annotated[str, typer.Argument(help="Service name.")], controller: ControllerOption = None
) -> None:
    """Spec, status and every task of a service, with states, exit codes and why tasks are not running.

    Example: moor describe service hello
    """
    with connect(controller) as client:
        service = find_service(client, name)
        tasks = client.list_tasks(name, all=True)
        events = client.recent_events(service=service.spec.name, limit=RECENT_EVENTS)
    now, console = datetime.now(UTC), stdout_console()
    print_fields(console, service_fields(service, tasks, now))
    print_section(console, "Spec", Text(spec_yaml(service.spec).rstrip()))
    print_section(console, "Tasks", tasks_table(tasks, now, wide=True) if tasks else "none")
    print_section(console, "Events", events_text(events))


@app.command("task")
@reporting
def describe_task(
    task: Annotated[str, typer.Argument(help="Task id, id prefix or SERVICE.SLOT.")],
    controller: ControllerOption = None,
) -> None:
    """State, exit code, placement and messages of one task.

    Example: moor describe task hello.1
    """
    with connect(controller) as client:
        found = find_task(client, task)
        events = client.recent_events(task_id=found.id, limit=RECENT_EVENTS)
    now, console = datetime.now(UTC), stdout_console()
    print_fields(console, task_fields(found, now))
    print_section(console, "Spec", Text(spec_yaml(found.spec).rstrip()))
    print_section(console, "Events", events_text(events))


@app.command("node")
@reporting
def describe_node(node: Annotated[str, typer.Argument(help="Node id.")], controller: ControllerOption = None) -> None:
    """Resources, labels, availability and the tasks of one node.

    Example: moor describe node h1
    """
    with connect(controller) as client:
        found = find_node(client, node)
        tasks = client.list_tasks(node_id=found.id)
        events = client.recent_events(node_id=found.id, limit=RECENT_EVENTS)
    now, console = datetime.now(UTC), stdout_console()
    print_fields(console, node_fields(found, now))
    print_section(console, "Tasks", tasks_table(tasks, now) if tasks else "none")
    print_section(console, "Events", events_text(events))
