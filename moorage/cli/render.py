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


def services_table(services: Sequence[types_pb2.Service], tasks: Sequence[types_pb2.Task]) -> Table:
    running = running_counts(tasks)
    table = _table("NAME", "IMAGE", "REPLICAS", "RUNNING")
    for service in sorted(services, key=lambda s: s.spec.name):
        spec = service.spec
        _row(table, spec.name, spec.image, spec.replicas, running[spec.name])
    return table


def tasks_table(tasks: Sequence[types_pb2.Task], now: datetime) -> Table:
    table = _table("ID", "SERVICE", "SLOT", "NODE", "DESIRED", "STATE", "CONTAINER", "AGE", "MESSAGE")
    for task in sorted(tasks, key=lambda t: (t.service, t.slot, t.created_at.ToNanoseconds())):
        _row(
            table,
            task.id,
            task.service,
            task.slot,
            task.node_id or "-",
            task_state(task.desired_state),
            task_state(task.observed_state),
            task.container_id[:12] or "-",
            age(task.created_at, now),
            task.message or "",
        )
    return table


def nodes_table(nodes: Sequence[types_pb2.Node]) -> Table:
    table = _table("ID", "HOSTNAME", "ADDRESS", "STATE", "CPUS", "MEMORY", "LABELS")
    for node in sorted(nodes, key=lambda n: n.id):
        _row(
            table,
            node.id,
            node.hostname,
            node.address or "-",
            node_state(node.state),
            cpus(node.resources.cpu_millis),
            memory(node.resources.memory_bytes),
            labels(dict(node.labels)),
        )
    return table
