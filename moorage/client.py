"""A small typed client for the controller's public ``Control`` API.

Every gRPC failure leaves this module as a ``ClientError`` whose message is one
readable line and whose ``code`` is the gRPC status code, so callers can tell
"not found" from "unreachable" without parsing text.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import TypeVar

import grpc

from moorage.v1 import control_pb2, control_pb2_grpc, types_pb2

__all__ = [
    "DEFAULT_CONTROLLER",
    "ENV_CONTROLLER",
    "ClientError",
    "ControlClient",
    "controller_address",
]

DEFAULT_CONTROLLER = "127.0.0.1:7420"
ENV_CONTROLLER = "MOOR_CONTROLLER"

_Response = TypeVar("_Response")


class ClientError(Exception):
    """A call to the controller failed; ``str()`` is one line for the user."""

    def __init__(self, message: str, code: grpc.StatusCode) -> None:
        super().__init__(message)
        self.code = code


def controller_address(flag: str | None = None) -> str:
    """The ``--controller`` flag, else ``$MOOR_CONTROLLER``, else 127.0.0.1:7420."""
    return flag or os.environ.get(ENV_CONTROLLER) or DEFAULT_CONTROLLER


class ControlClient:
    """Synchronous client over one channel; use it as a context manager.

    Unary calls fail after ``timeout`` seconds; the log stream has no deadline
    (``follow`` keeps it open until the caller stops iterating).
    """

    def __init__(self, address: str, timeout: float = 10.0) -> None:
        self.address = address
        self.timeout = timeout
        self._channel = grpc.insecure_channel(address)
        self._stub = control_pb2_grpc.ControlStub(self._channel)

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
        self._channel.close()

    def apply(self, specs: Sequence[types_pb2.ServiceSpec]) -> list[control_pb2.ApplyResult]:
        request = control_pb2.ApplyServicesRequest(services=specs)
        return list(self._call(self._stub.ApplyServices, request).results)

    def get_service(self, name: str) -> types_pb2.Service:
        return self._call(self._stub.GetService, control_pb2.GetServiceRequest(name=name))

    def list_services(self) -> list[types_pb2.Service]:
        return list(self._call(self._stub.ListServices, control_pb2.ListServicesRequest()).services)

    def delete_service(self, name: str) -> None:
        self._call(self._stub.DeleteService, control_pb2.DeleteServiceRequest(name=name))

    def list_tasks(self, service: str = "") -> list[types_pb2.Task]:
        request = control_pb2.ListTasksRequest(service=service)
        return list(self._call(self._stub.ListTasks, request).tasks)

    def list_nodes(self) -> list[types_pb2.Node]:
        return list(self._call(self._stub.ListNodes, control_pb2.ListNodesRequest()).nodes)

    def logs(self, service: str, *, follow: bool = False, tail: int = 0) -> Iterator[types_pb2.LogEntry]:
        """Log entries of every task of ``service``, as the controller streams them."""
        stream = self._stub.Logs(control_pb2.LogsRequest(service=service, follow=follow, tail=tail))
        try:
            yield from stream
        except grpc.RpcError as exc:
            raise _translate(self.address, exc) from exc
        finally:
            stream.cancel()

    def _call(self, method: Callable[..., _Response], request: object) -> _Response:
        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            raise _translate(self.address, exc) from exc


def _translate(address: str, exc: grpc.RpcError) -> ClientError:
    code: grpc.StatusCode = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
    details: str = (exc.details() if isinstance(exc, grpc.Call) else None) or str(exc)
    if code is grpc.StatusCode.UNAVAILABLE:
        message = f"controller {address} unreachable: {_last_cause(details)}"
    elif code is grpc.StatusCode.DEADLINE_EXCEEDED:
        message = f"controller {address} did not answer in time: {details}"
    elif code is grpc.StatusCode.NOT_FOUND:
        message = f"not found: {details}"
    elif code is grpc.StatusCode.INVALID_ARGUMENT:
        message = f"invalid: {details}"
    else:
        message = f"{code.name.lower().replace('_', ' ')}: {details}"
    return ClientError(message, code)


def _last_cause(details: str) -> str:
    """``"failed to connect ...: ipv4:127.0.0.1:1: Failed to connect to remote host: Connection refused"``
    → ``"connection refused"``: the innermost reason is the one a user can act on."""
    cause = details.rsplit(": ", 1)[-1].strip()
    return cause[:1].lower() + cause[1:] if cause else details
