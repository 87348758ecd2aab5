"""The public Control service (protos/moorage/v1/control.proto)."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import grpc
import structlog

import moorage
from controller import authz
from controller import exec as exec_relay
from controller import logs as log_relay
from controller.clock import now
from controller.errors import (
    ConflictError,
    ControllerError,
    FailedPreconditionError,
    InvalidSpecError,
    NotFoundError,
    StoreUnavailableError,
)
from controller.events import EventHub
from controller.identity import Authority
from controller.leader import Election
from controller.sessions import Sessions
from controller.slots import FINISHED
from controller.network import subnet_key
from controller.store import (
    Check,
    Delete,
    Op,
    Put,
    Store,
    alive_key,
    node_key,
    retry_on_conflict,
    service_key,
    task_key,
)
from controller.validation import validate_specs
from moorage.v1 import control_pb2, control_pb2_grpc, types_pb2

log = structlog.get_logger("controller.api")

API_VERSION = "moorage.v1"

Context = grpc.aio.ServicerContext  # type: ignore[type-arg]
S = TypeVar("S")
O = TypeVar("O")
Req = TypeVar("Req")
Resp = TypeVar("Resp")

_STATUS: tuple[tuple[type[Exception], grpc.StatusCode], ...] = (
    (NotFoundError, grpc.StatusCode.NOT_FOUND),
    (InvalidSpecError, grpc.StatusCode.INVALID_ARGUMENT),
    (ConflictError, grpc.StatusCode.ABORTED),
    (FailedPreconditionError, grpc.StatusCode.FAILED_PRECONDITION),
    (StoreUnavailableError, grpc.StatusCode.UNAVAILABLE),
)


def _code(error: ControllerError) -> grpc.StatusCode:
    return next((code for cls, code in _STATUS if isinstance(error, cls)), grpc.StatusCode.INTERNAL)


def _required(found: O | None, kind: str, name: str) -> O:
    """``found``, or NotFoundError for the ``kind`` called ``name`` that a request asked for."""
    if found is None:
        raise NotFoundError(kind, name)
    return found


def _unary(method: Callable[[S, Req, Context], Awaitable[Resp]]) -> Callable[[S, Req, Context], Awaitable[Resp]]:
    """Answer the controller's own errors with their gRPC status code."""

    @functools.wraps(method)
    async def wrapper(self: S, request: Req, context: Context) -> Resp:
        try:
            return await method(self, request, context)
        except ControllerError as e:
            await context.abort(_code(e), str(e))
            raise  # abort raises; this only tells type checkers

    return wrapper


def is_history(task: types_pb2.Task) -> bool:
    """A task that was stopped and has ended: shown only when asked for ``all``."""
    return task.desired_state == types_pb2.TASK_STATE_SHUTDOWN and task.observed_state in FINISHED


MASK = "<hidden>"


def masked(spec: types_pb2.ServiceSpec) -> None:
    """Hide ``spec``'s environment values in place: read-only callers see the names only."""
    for name in spec.env:
        spec.env[name] = MASK


Shown = TypeVar("Shown", types_pb2.Service, types_pb2.Task, control_pb2.ListServicesResponse, control_pb2.ListTasksResponse)


def for_caller(message: Shown) -> Shown:
    """``message`` as the caller may see it: a read-only caller's copy has its env values hidden."""
    if not authz.read_only():
        return message
    shown = type(message)()
    shown.CopyFrom(message)
    if isinstance(shown, types_pb2.Service | types_pb2.Task):
        masked(shown.spec)
    else:
        for item in shown.services if isinstance(shown, control_pb2.ListServicesResponse) else shown.tasks:
            masked(item.spec)
    return shown


def updated_node(node: types_pb2.Node, request: control_pb2.UpdateNodeRequest) -> types_pb2.Node:
    """``node`` with the availability and label changes of ``request`` (UNSPECIFIED keeps the availability)."""
    updated = types_pb2.Node()
    updated.CopyFrom(node)
    if request.availability != types_pb2.NODE_AVAILABILITY_UNSPECIFIED:
        updated.availability = request.availability
    updated.labels.update(request.set_labels)
    for key in request.remove_labels:
        updated.labels.pop(key, None)
    return updated


class ControlService(control_pb2_grpc.ControlServicer):
    def __init__(
        self, store: Store, sessions: Sessions, events: EventHub, election: Election, authority: Authority | None
    ) -> None:
        self._store = store
        self._authority = authority
        self._sessions = sessions
        self._events = events
        self._election = election

    @_unary
    async def ApplyServices(  # noqa: N802
        self, request: control_pb2.ApplyServicesRequest, context: Context
    ) -> control_pb2.ApplyServicesResponse:
        validate_specs(request.services)
        results = await retry_on_conflict(lambda: self._apply(request.services))
        for result in results:
            log.info("service applied", service=result.name, action=control_pb2.ApplyAction.Name(result.action))
        return control_pb2.ApplyServicesResponse(results=results)

    async def _apply(self, specs: list[types_pb2.ServiceSpec]) -> list[control_pb2.ApplyResult]:
        """Write every changed service in one transaction (all or nothing)."""
        ops: list[Op] = []
        results: list[control_pb2.ApplyResult] = []
        stamp = now()
        for spec in specs:
            existing = await self._store.get_service(spec.name)
            if existing is not None and existing.spec == spec:
                ops.append(Check(service_key(spec.name), existing.version))
                results.append(control_pb2.ApplyResult(name=spec.name, action=control_pb2.APPLY_ACTION_UNCHANGED))
                continue
            service = types_pb2.Service(spec=spec, updated_at=stamp)
            service.created_at.CopyFrom(existing.created_at if existing is not None else stamp)
            ops.append(Put(service_key(spec.name), service, existing.version if existing is not None else 0))
            action = control_pb2.APPLY_ACTION_UPDATED if existing is not None else control_pb2.APPLY_ACTION_CREATED
            results.append(control_pb2.ApplyResult(name=spec.name, action=action))
        await self._store.commit(ops)
        return results

    @_unary
    async def GetService(self, request: control_pb2.GetServiceRequest, context: Context) -> types_pb2.Service:  # noqa: N802
        return for_caller(_required(await self._store.get_service(request.name), "service", request.name))

    @_unary
    async def ListServices(  # noqa: N802
        self, request: control_pb2.ListServicesRequest, context: Context
    ) -> control_pb2.ListServicesResponse:
        services = (await self._store.list_services()).items
        return for_caller(control_pb2.ListServicesResponse(services=sorted(services, key=lambda s: s.spec.name)))

    @_unary
    async def ListTasks(self, request: control_pb2.ListTasksRequest, context: Context) -> control_pb2.ListTasksResponse:  # noqa: N802
        listing = await self._store.list_tasks(service=request.service or None, node_id=request.node_id or None)
        tasks = [t for t in listing.items if request.all or not is_history(t)]
        tasks.sort(key=lambda t: (t.service, t.slot, t.created_at.ToNanoseconds(), t.id))
        return for_caller(control_pb2.ListTasksResponse(tasks=tasks))

    @_unary
    async def GetTask(self, request: control_pb2.GetTaskRequest, context: Context) -> types_pb2.Task:  # noqa: N802
        return for_caller(_required(await self._store.get_task(request.id), "task", request.id))

    @_unary
    async def GetNode(self, request: control_pb2.GetNodeRequest, context: Context) -> types_pb2.Node:  # noqa: N802
        return _required(await self._store.get_node(request.id), "node", request.id)

    @_unary
    async def UpdateNode(self, request: control_pb2.UpdateNodeRequest, context: Context) -> types_pb2.Node:  # noqa: N802
        if any(not key for key in request.set_labels):
            raise InvalidSpecError(request.id, "set_labels", "label names must not be empty")

        async def update() -> types_pb2.Node:
            node = _required(await self._store.get_node(request.id), "node", request.id)
            updated = updated_node(node, request)
            if updated != node:
                await self._store.commit([Put(node_key(node.id), updated, node.version)])
            return updated

        node = await retry_on_conflict(update)
        log.info("node updated", node=node.id, availability=types_pb2.NodeAvailability.Name(node.availability))
        return node

    @_unary
    async def RemoveNode(  # noqa: N802
        self, request: control_pb2.RemoveNodeRequest, context: Context
    ) -> control_pb2.RemoveNodeResponse:
        """Forget a node: revoke its certificates (its agent can no longer act), end its session,
        release its subnet. A node still up is refused without ``force``: its tasks would be
        replaced only once it is down, so drain it and stop its agent first."""
        node = _required(await self._store.get_node(request.id), "node", request.id)
        if node.state != types_pb2.NODE_STATE_DOWN and not request.force:
            raise FailedPreconditionError(
                f"node {node.id!r} is up: drain it and stop its agent first, or remove it with --force"
            )
        revoked = await self._authority.revoke_node(node.id) if self._authority is not None else []
        self._sessions.disconnect(node.id)

        async def remove() -> None:
            current = _required(await self._store.get_node(request.id), "node", request.id)
            ops: list[Op] = [Delete(node_key(current.id), current.version)]
            if current.subnet:
                _, revision = await self._store.get_raw_versioned(subnet_key(current.subnet))
                if revision:
                    ops.append(Delete(subnet_key(current.subnet), revision))
            await self._store.commit(ops)

        await retry_on_conflict(remove)
        await self._store.delete_raw(alive_key(node.id))
        log.info("node removed", node=node.id, subnet=node.subnet or None, revoked=revoked)
        return control_pb2.RemoveNodeResponse(revoked_serials=revoked)

    @_unary
    async def ScaleService(self, request: control_pb2.ScaleServiceRequest, context: Context) -> types_pb2.Service:  # noqa: N802
        async def scale() -> types_pb2.Service:
            service = _required(await self._store.get_service(request.name), "service", request.name)
            if service.spec.replicas == request.replicas:
                return service
            scaled = types_pb2.Service()
            scaled.CopyFrom(service)
            scaled.spec.replicas = request.replicas
            scaled.updated_at.CopyFrom(now())
            await self._store.commit([Put(service_key(request.name), scaled, service.version)])
            return scaled

        service = await retry_on_conflict(scale)
        log.info("service scaled", service=request.name, replicas=request.replicas)
        return service

    @_unary
    async def GetVersion(self, request: control_pb2.GetVersionRequest, context: Context) -> control_pb2.VersionInfo:  # noqa: N802
        return control_pb2.VersionInfo(
            version=moorage.__version__,
            api=API_VERSION,
            controller_id=self._election.controller_id,
            leader=self._election.is_leader,
        )

    async def WatchEvents(  # noqa: N802
        self, request: control_pb2.WatchEventsRequest, context: Context
    ) -> AsyncIterator[types_pb2.Event]:
        """Events from now on, as this controller's watches see them (any controller serves it)."""
        async for event in self._events.subscribe(set(request.kinds)):
            yield event

    @_unary
    async def ListEvents(  # noqa: N802
        self, request: control_pb2.ListEventsRequest, context: Context
    ) -> control_pb2.ListEventsResponse:
        """The recent events this controller has seen, filtered (for `moor describe`)."""
        found = self._events.recent(
            service=request.service, node_id=request.node_id, task_id=request.task_id, limit=request.limit
        )
        return control_pb2.ListEventsResponse(events=found)

    @_unary
    async def ListNodes(self, request: control_pb2.ListNodesRequest, context: Context) -> control_pb2.ListNodesResponse:  # noqa: N802
        nodes = (await self._store.list_nodes()).items
        return control_pb2.ListNodesResponse(nodes=sorted(nodes, key=lambda n: n.id))

    @_unary
    async def DeleteService(  # noqa: N802
        self, request: control_pb2.DeleteServiceRequest, context: Context
    ) -> control_pb2.DeleteServiceResponse:
        await retry_on_conflict(lambda: self._delete(request.name))
        log.info("service deleted", service=request.name)
        return control_pb2.DeleteServiceResponse()

    async def _delete(self, name: str) -> None:
        """Remove the service and stop its tasks in one transaction; tasks no
        node holds are deleted outright, the others wait for their agent."""
        service = _required(await self._store.get_service(name), "service", name)
        ops: list[Op] = [Delete(service_key(name), service.version)]
        for task in (await self._store.list_tasks(service=name)).items:
            if not task.node_id:
                ops.append(Delete(task_key(task.id), task.version))
            elif task.desired_state != types_pb2.TASK_STATE_SHUTDOWN:
                stopped = types_pb2.Task()
                stopped.CopyFrom(task)
                stopped.desired_state = types_pb2.TASK_STATE_SHUTDOWN
                stopped.updated_at.CopyFrom(now())
                ops.append(Put(task_key(task.id), stopped, task.version))
        await self._store.commit(ops)

    async def Exec(  # noqa: N802
        self, request_iterator: AsyncIterator[control_pb2.ExecInput], context: Context
    ) -> AsyncIterator[control_pb2.ExecOutput]:
        """Run a command in a task's container, relayed through its agent (see controller/exec.py)."""
        async for output in exec_relay.serve(self._store, self._sessions.execs, request_iterator, context):
            yield output

    async def Logs(self, request: control_pb2.LogsRequest, context: Context) -> AsyncIterator[types_pb2.LogEntry]:  # noqa: N802
        """The lines of every task with a container (or of the one task asked for), relayed from
        their agents (see controller/logs.py)."""
        try:
            if request.task_id:
                tasks = [_required(await self._store.get_task(request.task_id), "task", request.task_id)]
            else:
                _required(await self._store.get_service(request.service), "service", request.service)
                tasks = (await self._store.list_tasks(service=request.service)).items
        except ControllerError as e:
            await context.abort(_code(e), str(e))
            raise
        async for entry in log_relay.relay(self._sessions.logs, tasks, request):
            yield entry
