"""A small typed client for the controller's public ``Control`` API.

Every gRPC failure leaves this module as a ``ClientError`` whose message is one
readable line and whose ``code`` is the gRPC status code, so callers can tell
"not found" from "unreachable" without parsing text.

The client may be given several controller addresses: a call that finds one
unreachable tries the next, and the client keeps using the first that answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from moorage.addresses import split_addresses
from moorage.tlsconfig import ClientTLS, secure_channel
from moorage.v1 import control_pb2, control_pb2_grpc, identity_pb2, identity_pb2_grpc, types_pb2

__all__ = ["ClientError", "ControlClient"]

_Response = TypeVar("_Response")
_Item = TypeVar("_Item")


class ClientError(Exception):
    """A call to the controller failed; ``str()`` is one line for the user."""

    def __init__(self, message: str, code: grpc.StatusCode) -> None:
        super().__init__(message)
        self.code = code


class ControlClient:
    """Synchronous client; use it as a context manager.

    ``addresses`` is one ``HOST:PORT``, a comma-separated list, or a sequence of
    them. Unary calls fail after ``timeout`` seconds; streams have no deadline
    (they stay open until the caller stops iterating). ``tls``: the CA and the
    caller's certificate; None talks plaintext (to an --insecure controller).
    """

    def __init__(
        self,
        addresses: str | Sequence[str],
        timeout: float = 10.0,
        tls: ClientTLS | None = None,
        *,
        missing_credentials: str = "",
    ) -> None:
        self.addresses = split_addresses(addresses) if isinstance(addresses, str) else list(addresses)
        if not self.addresses:
            raise ValueError("no controller address given")
        self.timeout = timeout
        self.tls = tls
        self._missing_credentials = missing_credentials  # set: refuse every call with this message
        self._current = 0
        self._channels: dict[int, grpc.Channel] = {}

    @property
    def address(self) -> str:
        """The controller in use (the last one that answered)."""
        return self.addresses[self._current]

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()

    # --- services -------------------------------------------------------------------

    def apply(self, specs: Sequence[types_pb2.ServiceSpec]) -> list[control_pb2.ApplyResult]:
        request = control_pb2.ApplyServicesRequest(services=specs)
        return list(self._call("ApplyServices", request).results)

    def get_service(self, name: str) -> types_pb2.Service:
        return self._call("GetService", control_pb2.GetServiceRequest(name=name))

    def list_services(self) -> list[types_pb2.Service]:
        return list(self._call("ListServices", control_pb2.ListServicesRequest()).services)

    def delete_service(self, name: str) -> None:
        self._call("DeleteService", control_pb2.DeleteServiceRequest(name=name))

    def scale(self, name: str, replicas: int) -> types_pb2.Service:
        return self._call("ScaleService", control_pb2.ScaleServiceRequest(name=name, replicas=replicas))

    # --- tasks and nodes ---------------------------------------------------------------

    def list_tasks(
        self, service: str = "", *, all: bool = False, node_id: str = ""  # noqa: A002 (the API's name)
    ) -> list[types_pb2.Task]:
        request = control_pb2.ListTasksRequest(service=service, all=all, node_id=node_id)
        return list(self._call("ListTasks", request).tasks)

    def get_task(self, task_id: str) -> types_pb2.Task:
        return self._call("GetTask", control_pb2.GetTaskRequest(id=task_id))

    def list_nodes(self) -> list[types_pb2.Node]:
        return list(self._call("ListNodes", control_pb2.ListNodesRequest()).nodes)

    def get_node(self, node_id: str) -> types_pb2.Node:
        return self._call("GetNode", control_pb2.GetNodeRequest(id=node_id))

    def update_node(
        self,
        node_id: str,
        *,
        availability: types_pb2.NodeAvailability.ValueType = types_pb2.NODE_AVAILABILITY_UNSPECIFIED,
        set_labels: Mapping[str, str] | None = None,
        remove_labels: Sequence[str] = (),
    ) -> types_pb2.Node:
        request = control_pb2.UpdateNodeRequest(
            id=node_id, availability=availability, set_labels=set_labels or {}, remove_labels=remove_labels
        )
        return self._call("UpdateNode", request)

    def version(self) -> control_pb2.VersionInfo:
        return self._call("GetVersion", control_pb2.GetVersionRequest())

    # --- streams ------------------------------------------------------------------------

    def logs(
        self,
        service: str = "",
        *,
        task_id: str = "",
        follow: bool = False,
        tail: int = 0,
        since: Timestamp | None = None,
    ) -> Iterator[types_pb2.LogEntry]:
        """Log entries of every task of ``service`` (or of one task), as the controller streams them."""
        request = control_pb2.LogsRequest(service=service, task_id=task_id, follow=follow, tail=tail, since=since)
        return self._stream("Logs", request)

    def recent_events(
        self, *, service: str = "", node_id: str = "", task_id: str = "", limit: int = 0
    ) -> list[types_pb2.Event]:
        request = control_pb2.ListEventsRequest(service=service, node_id=node_id, task_id=task_id, limit=limit)
        return list(self._call("ListEvents", request).events)

    def events(self, kinds: Sequence[str] = ()) -> Iterator[types_pb2.Event]:
        return self._stream("WatchEvents", control_pb2.WatchEventsRequest(kinds=kinds))

    def exec(self, inputs: Iterable[control_pb2.ExecInput]) -> Iterator[control_pb2.ExecOutput]:
        """Run a command in a task's container: ``inputs`` starts with an ``ExecStart``.

        The controller is picked before the first input is sent, so failover
        never loses what a user typed.
        """
        self._call("GetVersion", control_pb2.GetVersionRequest(), reachable_only=True)
        stream = self._stub(self._current).Exec(iter(inputs))
        try:
            yield from stream
        except grpc.RpcError as exc:
            raise _translate(self.address, exc) from exc
        finally:
            stream.cancel()

    def remove_node(self, node_id: str, *, force: bool = False) -> list[str]:
        """Remove a node; the serials of the certificates revoked with it."""
        return list(self._call("RemoveNode", control_pb2.RemoveNodeRequest(id=node_id, force=force)).revoked_serials)

    # --- identity ---------------------------------------------------------------------------

    def join_token(self, role: str, *, rotate: bool = False, ttl: float = 0) -> identity_pb2.JoinToken:
        request = identity_pb2.GetJoinTokenRequest(role=role, rotate=rotate, ttl=ttl)
        return self._call("GetJoinToken", request, stub=identity_pb2_grpc.IdentityStub)  # type: ignore[no-any-return]

    def issue_user_certificate(self, name: str, role: str, csr: bytes, lifetime: float = 0) -> identity_pb2.JoinResponse:
        request = identity_pb2.IssueUserCertificateRequest(name=name, role=role, csr=csr, lifetime=lifetime)
        return self._call("IssueUserCertificate", request, stub=identity_pb2_grpc.IdentityStub)  # type: ignore[no-any-return]

    def renew(self, csr: bytes) -> identity_pb2.JoinResponse:
        request = identity_pb2.RenewRequest(csr=csr)
        return self._call("Renew", request, stub=identity_pb2_grpc.IdentityStub)  # type: ignore[no-any-return]

    # --- plumbing -------------------------------------------------------------------------

    def _stub(self, index: int, stub: type[Any] = control_pb2_grpc.ControlStub) -> Any:
        if self._missing_credentials:
            raise ClientError(self._missing_credentials, grpc.StatusCode.UNAUTHENTICATED)
        if index not in self._channels:
            address = self.addresses[index]
            channel = grpc.insecure_channel(address) if self.tls is None else secure_channel(address, self.tls)
            self._channels[index] = channel
        return stub(self._channels[index])

    def _order(self) -> list[int]:
        """The controller in use first, then the others in the order given."""
        return [self._current, *(i for i in range(len(self.addresses)) if i != self._current)]

    def _call(self, method: str, request: object, *, reachable_only: bool = False, stub: type[Any] = control_pb2_grpc.ControlStub) -> Any:
        """A unary call on the first controller that answers.

        With ``reachable_only`` any answer but "unavailable" will do (used to pick
        a controller before a stream that cannot be replayed).
        """
        failure: grpc.RpcError | None = None
        for index in self._order():
            try:
                response = getattr(self._stub(index, stub), method)(request, timeout=self.timeout)
            except grpc.RpcError as exc:
                if _code(exc) is not grpc.StatusCode.UNAVAILABLE:
                    self._current = index
                    if reachable_only:
                        return None
                    raise _translate(self.addresses[index], exc) from exc
                failure = exc
                continue
            self._current = index
            return response
        assert failure is not None
        raise self._unreachable(failure) from failure

    def _stream(self, method: str, request: object) -> Iterator[Any]:
        """A server stream from the first controller that answers; failover only before the first item."""
        failure: grpc.RpcError | None = None
        for index in self._order():
            stream = getattr(self._stub(index), method)(request)
            started = False
            try:
                for item in stream:
                    started = True
                    self._current = index
                    yield item
                return
            except grpc.RpcError as exc:
                if started or _code(exc) is not grpc.StatusCode.UNAVAILABLE:
                    raise _translate(self.addresses[index], exc) from exc
                failure = exc
            finally:
                stream.cancel()
        assert failure is not None
        raise self._unreachable(failure) from failure

    def _unreachable(self, exc: grpc.RpcError) -> ClientError:
        if len(self.addresses) == 1:
            return _translate(self.addresses[0], exc)
        return ClientError(
            f"no controller reachable ({', '.join(self.addresses)}): {_last_cause(_details(exc))}",
            grpc.StatusCode.UNAVAILABLE,
        )


def _code(exc: grpc.RpcError) -> grpc.StatusCode:
    return exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN


def _details(exc: grpc.RpcError) -> str:
    return (exc.details() if isinstance(exc, grpc.Call) else None) or str(exc)


def _translate(address: str, exc: grpc.RpcError) -> ClientError:
    code, details = _code(exc), _details(exc)
    if code is grpc.StatusCode.UNAVAILABLE:
        message = f"controller {address} unreachable: {_last_cause(details)}"
    elif code is grpc.StatusCode.DEADLINE_EXCEEDED:
        message = f"controller {address} did not answer in time: {details}"
    elif code is grpc.StatusCode.UNIMPLEMENTED:
        message = f"controller {address} does not implement this yet: {details}"
    else:
        message = f"{code.name.lower().replace('_', ' ')}: {details}"
    return ClientError(message, code)


def _last_cause(details: str) -> str:
    """``"failed to connect ...: ipv4:127.0.0.1:1: Failed to connect to remote host: Connection refused"``
    → ``"connection refused"``: the innermost reason is the one a user can act on."""
    cause = details.rsplit(": ", 1)[-1].strip()
    return cause[:1].lower() + cause[1:] if cause else details

