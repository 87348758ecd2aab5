"""Finding what a user named: a task by id, id prefix or SERVICE.SLOT; a service or a node by name."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from moorage.cli.common import EXIT_INVALID, CommandError, NotFound
from moorage.client import ClientError, ControlClient
from moorage.v1 import types_pb2

_LIVE = types_pb2.TASK_STATE_RUNNING


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
        if exc.code not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNIMPLEMENTED):
            raise
    task = pick_task(reference, client.list_tasks(all=True))
    if task is None:
        raise NotFound(f"task {reference!r}")
    return task


def find_service(client: ControlClient, name: str) -> types_pb2.Service:
    try:
        return client.get_service(name)
    except ClientError as exc:
        if exc.code is grpc.StatusCode.NOT_FOUND:
            raise NotFound(f"service {name!r}") from exc
        raise


def find_node(client: ControlClient, node_id: str) -> types_pb2.Node:
    try:
        return client.get_node(node_id)
    except ClientError as exc:
        if exc.code is grpc.StatusCode.NOT_FOUND:
            raise NotFound(f"node {node_id!r}") from exc
        if exc.code is not grpc.StatusCode.UNIMPLEMENTED:
            raise
    for node in client.list_nodes():
        if node_id in (node.id, node.hostname):
            return node
    raise NotFound(f"node {node_id!r}")
