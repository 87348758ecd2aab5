"""What `moor describe` prints: fields, the spec as a manifest, tasks and recent events of one object.

The work behind describe.py's commands, which import it when they run.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp
from rich.console import Console
from rich.table import Table
from rich.text import Text

from moorage.cli.common import stdout_console
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
from moorage.client import ControlClient
from moorage.v1 import types_pb2

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


def print_service(client: ControlClient, name: str) -> None:
    service = find_service(client, name)
    tasks = client.list_tasks(name, all=True)
    events = client.recent_events(service=service.spec.name, limit=RECENT_EVENTS)
    now, console = datetime.now(UTC), stdout_console()
    print_fields(console, service_fields(service, tasks, now))
    print_section(console, "Spec", Text(spec_yaml(service.spec).rstrip()))
    print_section(console, "Tasks", tasks_table(tasks, now, wide=True) if tasks else "none")
    print_section(console, "Events", events_text(events))


def print_task(client: ControlClient, reference: str) -> None:
    task = find_task(client, reference)
    events = client.recent_events(task_id=task.id, limit=RECENT_EVENTS)
    now, console = datetime.now(UTC), stdout_console()
    print_fields(console, task_fields(task, now))
    print_section(console, "Spec", Text(spec_yaml(task.spec).rstrip()))
    print_section(console, "Events", events_text(events))


def print_node(client: ControlClient, node_id: str) -> None:
    node = find_node(client, node_id)
    tasks = client.list_tasks(node_id=node.id)
    events = client.recent_events(node_id=node.id, limit=RECENT_EVENTS)
    now, console = datetime.now(UTC), stdout_console()
    print_fields(console, node_fields(node, now))
    print_section(console, "Tasks", tasks_table(tasks, now) if tasks else "none")
    print_section(console, "Events", events_text(events))
