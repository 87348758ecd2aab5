"""Finding what a user named: a task by id, id prefix or SERVICE.SLOT; a service or a node by name."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import grpc

from moorage.cli.common import EXIT_INVALID, CommandError, NotFound
from moorage.client import ClientError, ControlClient
from moorage.v1 import types_pb2

_LIVE = types_pb2.TASK_STATE_RUNNING
T = TypeVar("T")


def pick_task(reference: str, tasks: Sequence[types_pb2.Task]) -> types_pb2.Task | None:
    """The task ``reference`` names among ``tasks``: its id, a unique id prefix, or ``service.slot``.

    For ``service.slot`` the task the controller wants running wins, then the newest.
    Raises ``CommandError`` when a prefix matches several tasks.
    """
    exact = [t for t in tasks if t.id == reference]
    if exact:
        return exact[0]
    service, dot, slot = reference.rpartition(".")
    if dot and slot.isdigit():
        in_slot = [t for t in tasks if t.service == service and t.slot == int(slot)]
        if in_slot:
            return max(in_slot, key=lambda t: (t.desired_state == _LIVE, t.created_at.ToNanoseconds()))
    prefixed = [t for t in tasks if t.id.startswith(reference)]
    if len(prefixed) > 1:
        ids = ", ".join(sorted(t.id for t in prefixed)[:5])
        raise CommandError(f"task {reference!r} is ambiguous: it starts {ids}", EXIT_INVALID)
    return prefixed[0] if prefixed else None


def find_task(client: ControlClient, reference: str) -> types_pb2.Task:
    try:
        return client.get_task(reference)
    except ClientError as exc:
        if exc.code is not grpc.StatusCode.NOT_FOUND:
            raise
    task = pick_task(reference, client.list_tasks(all=True))
    if task is None:
        raise NotFound(f"task {reference!r}")
    return task


def _found(fetch: Callable[[], T], what: str) -> T:
    """``fetch()``, with the controller's NOT_FOUND turned into the CLI's NotFound naming ``what``."""
    try:
        return fetch()
    except ClientError as exc:
        if exc.code is grpc.StatusCode.NOT_FOUND:
            raise NotFound(what) from exc
        raise


def find_service(client: ControlClient, name: str) -> types_pb2.Service:
    return _found(lambda: client.get_service(name), f"service {name!r}")


def find_node(client: ControlClient, node_id: str) -> types_pb2.Node:
    return _found(lambda: client.get_node(node_id), f"node {node_id!r}")
