"""Reading logs through the controller for `moor logs`: one task's stream, or a service's streams merged.

With ``follow`` on a service, tasks that start later (replacements, scale-ups)
are followed too: a watcher lists the service's tasks and opens a stream for each
new one, and all streams feed one printer. logs.py imports this when it runs.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import grpc
import typer
from google.protobuf.timestamp_pb2 import Timestamp

from moorage.cli.common import NotFound
from moorage.cli.lookup import find_task
from moorage.client import ClientError, ControlClient
from moorage.manifest.units import parse_duration
from moorage.v1 import types_pb2

NEW_TASK_POLL = 1.0
# A task's log can be read once its container has started (a created one may have no log yet).
_RUNNING = types_pb2.TASK_STATE_RUNNING
_STARTED = frozenset({_RUNNING, types_pb2.TASK_STATE_COMPLETE, types_pb2.TASK_STATE_FAILED})


def parse_since(value: str, now: datetime) -> Timestamp:
    """``"10m"`` (that long ago) or an RFC 3339 time (``2024-05-01T10:00:00Z``) → a Timestamp."""
    stamp = Timestamp()
    try:
        stamp.FromDatetime(now - timedelta(seconds=parse_duration(value)))
        return stamp
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is neither a duration like 10m nor a time like 2024-05-01T10:00:00Z"
        ) from None
    stamp.FromDatetime(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    return stamp


def format_entry(service: str, entry: types_pb2.LogEntry, timestamps: bool) -> str:
    """``hello.2.1a2b3c4d5e6f | line``, after the time with ``timestamps``."""
    prefix = f"{entry.time.ToJsonString()} " if timestamps else ""
    return f"{prefix}{service}.{entry.slot}.{entry.task_id} | {entry.line.rstrip(chr(10))}"


def print_logs(
    client: ControlClient, target: str, *, follow: bool, tail: int, since: Timestamp | None, timestamps: bool
) -> None:
    """Print the lines of ``target`` (a service, else a task); the container's stderr lines go to stderr."""
    service, task_id = _target(client, target)
    entries = _follow_service(client, service, tail, since) if follow and not task_id else (
        _stream(client, service, task_id, follow, tail, since)
    )
    floor = since.ToNanoseconds() if since else 0
    for entry in entries:
        if entry.time.ToNanoseconds() >= floor:
            typer.echo(format_entry(service, entry, timestamps), err=entry.stream == "stderr")


def _target(client: ControlClient, target: str) -> tuple[str, str]:
    """(service, task id or "") of what the user named: a service first, else a task."""
    try:
        client.get_service(target)
        return target, ""
    except ClientError as exc:
        if exc.code is not grpc.StatusCode.NOT_FOUND:
            raise
    try:
        task = find_task(client, target)
    except NotFound:
        raise NotFound(f"service or task {target!r}") from None
    return task.service, task.id


def _stream(
    client: ControlClient, service: str, task_id: str, follow: bool, tail: int, since: Timestamp | None
) -> Iterator[types_pb2.LogEntry]:
    yield from client.logs(service, task_id=task_id, follow=follow, tail=tail, since=since)


def _follow_service(
    client: ControlClient, service: str, tail: int, since: Timestamp | None
) -> Iterator[types_pb2.LogEntry]:
    """The service's stream, plus one stream per task that gets a container later.

    A task's stream that ends before its first line is opened again while the
    task's container is running.
    """
    lines: queue.Queue[object] = queue.Queue()
    known = {t.id for t in client.list_tasks(service, all=True) if t.container_id}
    empty: set[str] = set()  # tasks whose stream ended before their first line

    def pump(entries: Iterator[types_pb2.LogEntry], task_id: str = "") -> None:
        count = 0
        try:
            for entry in entries:
                count += 1
                lines.put(entry)
        except ClientError as exc:
            lines.put(exc)
        if task_id and not count:  # try again while it runs
            empty.add(task_id)
            known.discard(task_id)

    def start(entries: Iterator[types_pb2.LogEntry], task_id: str = "") -> None:
        threading.Thread(target=pump, args=(entries, task_id), daemon=True).start()

    def watch_new_tasks() -> None:
        while True:
            time.sleep(NEW_TASK_POLL)
            try:
                current = client.list_tasks(service, all=True)
            except ClientError:
                continue
            for task in current:
                started = task.observed_state in _STARTED and (task.id not in empty or task.observed_state == _RUNNING)
                if task.container_id and task.id not in known and started:
                    known.add(task.id)
                    start(_stream(client, service, task.id, True, 0, since), task.id)

    start(_stream(client, service, "", True, tail, since))
    threading.Thread(target=watch_new_tasks, daemon=True).start()
    while True:
        item = lines.get()
        if isinstance(item, ClientError):
            raise item
        if isinstance(item, types_pb2.LogEntry):
            yield item
