"""Turning API messages into what `moor get` prints. Pure functions, no I/O."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp
from rich.table import Table
from rich.text import Text

from moorage.v1 import types_pb2


def task_state(state: types_pb2.TaskState.ValueType) -> str:
    """``TASK_STATE_RUNNING`` → ``running``."""
    return types_pb2.TaskState.Name(state).removeprefix("TASK_STATE_").lower()


def node_state(state: types_pb2.NodeState.ValueType) -> str:
    return types_pb2.NodeState.Name(state).removeprefix("NODE_STATE_").lower()


def age(then: Timestamp, now: datetime) -> str:
    """kubectl-style age: 42s, 5m, 3h, 2d; ``-`` when the time is unset."""
    if then.seconds == 0 and then.nanos == 0:
        return "-"
    seconds = max(0, int(now.timestamp()) - then.seconds)
    for unit, size, limit in (("s", 1, 120), ("m", 60, 120 * 60), ("h", 3600, 48 * 3600)):
        if seconds < limit:
            return f"{seconds // size}{unit}"
    return f"{seconds // 86400}d"


def cpus(millis: int) -> str:
    """1500 millicores → ``1.5``."""
    return f"{millis / 1000:g}"


def memory(size: int) -> str:
    """Bytes in binary units: ``512Mi``, ``7.8Gi``."""
    if size < 1024:
        return str(size)
    value = float(size)
    unit = ""
    for unit in ("Ki", "Mi", "Gi", "Ti", "Pi"):
        value /= 1024
        if value < 1024:
            break
    return f"{value:.1f}".rstrip("0").rstrip(".") + unit


def labels(values: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(values.items())) or "-"


def running_counts(tasks: Sequence[types_pb2.Task]) -> Counter[str]:
    """Tasks per service that are running and meant to be."""
    return Counter(
        t.service
        for t in tasks
        if t.observed_state == types_pb2.TASK_STATE_RUNNING and t.desired_state == types_pb2.TASK_STATE_RUNNING
    )


def _table(*columns: str) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold", show_edge=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _row(table: Table, *cells: object) -> None:
    # Text() keeps user data (messages, labels) from being read as Rich markup.
    table.add_row(*(Text(str(cell)) for cell in cells))


def availability(value: types_pb2.NodeAvailability.ValueType) -> str:
    name = types_pb2.NodeAvailability.Name(value).removeprefix("NODE_AVAILABILITY_").lower()
    return "active" if name == "unspecified" else name


def health(value: types_pb2.TaskHealth.ValueType) -> str:
    return "-" if value == types_pb2.TASK_HEALTH_UNSPECIFIED else types_pb2.TaskHealth.Name(value).removeprefix(
        "TASK_HEALTH_"
    ).lower()


def ports(spec: types_pb2.ServiceSpec) -> str:
    return ",".join(f"{p.host_port}:{p.container_port}/{p.protocol or 'tcp'}" for p in spec.ports) or "-"


def exit_code(task: types_pb2.Task) -> str:
    """The exit code once the task's container has ended, else ``-``."""
    ended = task.observed_state in (types_pb2.TASK_STATE_COMPLETE, types_pb2.TASK_STATE_FAILED)
    return str(task.exit_code) if ended or task.exit_code else "-"


def services_table(
    services: Sequence[types_pb2.Service], tasks: Sequence[types_pb2.Task], wide: bool = False
) -> Table:
    running = running_counts(tasks)
    columns = ["NAME", "IMAGE", "REPLICAS", "RUNNING"] + (["PORTS", "UPDATE", "MESSAGE"] if wide else [])
    table = _table(*columns)
    for service in sorted(services, key=lambda s: s.spec.name):
        spec = service.spec
        cells: list[object] = [spec.name, spec.image, spec.replicas, running[spec.name]]
        if wide:
            update = types_pb2.UpdateStatus.State.Name(service.update_status.state).removeprefix("STATE_").lower()
            cells += [ports(spec), "-" if update == "unspecified" else update, service.message or ""]
        _row(table, *cells)
    return table


def tasks_table(tasks: Sequence[types_pb2.Task], now: datetime, wide: bool = False) -> Table:
    columns = ["ID", "SERVICE", "SLOT", "NODE", "DESIRED", "STATE", "CONTAINER", "AGE", "MESSAGE"]
    if wide:
        columns[-1:-1] = ["EXIT", "HEALTH", "RESTARTS", "ADDRESS", "IMAGE"]
    table = _table(*columns)
    for task in sorted(tasks, key=lambda t: (t.service, t.slot, t.created_at.ToNanoseconds())):
        cells: list[object] = [
            task.id,
            task.service,
            task.slot,
            task.node_id or "-",
            task_state(task.desired_state),
            task_state(task.observed_state),
            task.container_id[:12] or "-",
            age(task.created_at, now),
        ]
        if wide:
            cells += [exit_code(task), health(task.health), task.restarts, task.address or "-", task.spec.image]
        _row(table, *cells, task.message or "")
    return table


def nodes_table(nodes: Sequence[types_pb2.Node], wide: bool = False, tasks: Sequence[types_pb2.Task] = ()) -> Table:
    columns = ["ID", "HOSTNAME", "ADDRESS", "STATE", "CPUS", "MEMORY", "LABELS"]
    if wide:
        columns += ["AVAILABILITY", "TASKS", "SUBNET", "AGENT"]
    table = _table(*columns)
    per_node = Counter(t.node_id for t in tasks if t.desired_state == types_pb2.TASK_STATE_RUNNING)
    for node in sorted(nodes, key=lambda n: n.id):
        cells: list[object] = [
            node.id,
            node.hostname,
            node.address or "-",
            node_state(node.state),
            cpus(node.resources.cpu_millis),
            memory(node.resources.memory_bytes),
            labels(dict(node.labels)),
        ]
        if wide:
            cells += [availability(node.availability), per_node[node.id], node.subnet or "-", node.agent_version or "-"]
        _row(table, *cells)
    return table
