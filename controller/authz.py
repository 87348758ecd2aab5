"""Who may call what: every RPC is checked against the certificate its caller presented.

The TLS layer has already verified the certificate against the cluster CA (a client may come
without one: a joining agent has none yet). Here the certificate's role (its OU) must be one
the method allows, its cluster (O) this one, and its serial not on the deny-list. A method
missing from ``ALLOWED`` is refused: a new RPC is closed until someone decides who may call it.

The caller's identity is then in ``CALLER`` for the handler: an agent session may act only as
the node its certificate names, and read-only callers see secrets masked.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from typing import Any

import grpc
import structlog

from controller.identity import Authority, IdentityError
from moorage import pki

log = structlog.get_logger("controller.authz")

CALLER: ContextVar[pki.Identity | None] = ContextVar("caller", default=None)

ANYONE: frozenset[str] = frozenset()  # no certificate needed
READ = frozenset({pki.ADMIN, pki.READONLY})
WRITE = frozenset({pki.ADMIN})
AGENT = frozenset({pki.WORKER})
HOLDERS = frozenset({pki.ADMIN, pki.READONLY, pki.WORKER})

_CONTROL = "/moorage.v1.Control/"
_IDENTITY = "/moorage.v1.Identity/"
ALLOWED: dict[str, frozenset[str]] = {
    _CONTROL + "ApplyServices": WRITE,
    _CONTROL + "GetService": READ,
    _CONTROL + "ListServices": READ,
    _CONTROL + "DeleteService": WRITE,
    _CONTROL + "ListTasks": READ,
    _CONTROL + "ListNodes": READ,
    _CONTROL + "Logs": READ,
    _CONTROL + "ScaleService": WRITE,
    _CONTROL + "GetTask": READ,
    _CONTROL + "GetNode": READ,
    _CONTROL + "UpdateNode": WRITE,
    _CONTROL + "RemoveNode": WRITE,
    _CONTROL + "WatchEvents": READ,
    _CONTROL + "ListEvents": READ,
    _CONTROL + "Exec": WRITE,
    _CONTROL + "GetVersion": HOLDERS,
    "/moorage.v1.AgentSession/Session": AGENT,
    _IDENTITY + "Join": ANYONE,
    _IDENTITY + "Renew": HOLDERS,
    _IDENTITY + "GetJoinToken": WRITE,
    _IDENTITY + "IssueUserCertificate": WRITE,
}


def caller() -> pki.Identity | None:
    """The identity of the current call's client (None on an --insecure controller, or before a join)."""
    return CALLER.get()


def read_only() -> bool:
    who = CALLER.get()
    return who is not None and who.role == pki.READONLY


class Authorizer(grpc.aio.ServerInterceptor):
    """Checks each call before its handler runs; ``authority`` None means an --insecure controller."""

    def __init__(self, authority: Authority | None) -> None:
        self._authority = authority

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or self._authority is None:
            return handler
        method: str = details.method  # type: ignore[attr-defined]
        allowed = ALLOWED.get(method)
        return _guarded(handler, lambda context: self._admit(context, method, allowed))

    async def _admit(self, context: grpc.aio.ServicerContext[Any, Any], method: str, allowed: frozenset[str] | None) -> None:
        assert self._authority is not None
        certificates = context.auth_context().get("x509_pem_cert") or []
        who = None
        if certificates:
            try:
                who = self._authority.check_peer(certificates[0])
            except (IdentityError, pki.PKIError) as e:
                await _deny(context, grpc.StatusCode.PERMISSION_DENIED, str(e), method)
        CALLER.set(who)
        if allowed is None:
            await _deny(context, grpc.StatusCode.PERMISSION_DENIED, f"{method} is not open to any caller", method)
        if allowed is ANYONE:
            return
        if who is None:
            await _deny(
                context, grpc.StatusCode.UNAUTHENTICATED,
                "a client certificate of this cluster is required (see moor cluster user-cert)", method,
            )  # fmt: skip
        elif who.role not in allowed:
            await _deny(
                context, grpc.StatusCode.PERMISSION_DENIED,
                f"{who.role} {who.name!r} may not call {method.rsplit('/', 1)[-1]}", method,
            )  # fmt: skip


async def _deny(context: grpc.aio.ServicerContext[Any, Any], code: grpc.StatusCode, message: str, method: str) -> None:
    who = CALLER.get()
    log.warning("call refused", method=method, code=code.name, caller=who.name if who else None, reason=message)
    await context.abort(code, message)


def _guarded(
    handler: grpc.RpcMethodHandler, admit: Callable[[grpc.aio.ServicerContext[Any, Any]], Awaitable[None]]
) -> grpc.RpcMethodHandler:
    """``handler`` with ``admit`` awaited before it runs, whatever its kind of stream.

    gRPC serves a streaming handler that is an async generator by iterating it, and any other by
    awaiting it (it writes with context.write): the guard takes the same form as the handler.
    """
    codec = {"request_deserializer": handler.request_deserializer, "response_serializer": handler.response_serializer}
    for kind, make in (
        ("unary_unary", grpc.unary_unary_rpc_method_handler),
        ("unary_stream", grpc.unary_stream_rpc_method_handler),
        ("stream_unary", grpc.stream_unary_rpc_method_handler),
        ("stream_stream", grpc.stream_stream_rpc_method_handler),
    ):
        inner = getattr(handler, kind)
        if inner is not None:
            return make(_generator_guard(inner, admit) if inspect.isasyncgenfunction(inner) else _guard(inner, admit), **codec)
    raise AssertionError("a handler of no kind")


def _guard(inner: Callable[[Any, Any], Awaitable[Any]], admit: Callable[[Any], Awaitable[None]]) -> Callable[[Any, Any], Awaitable[Any]]:
    async def guarded(request: Any, context: Any) -> Any:
        await admit(context)
        return await inner(request, context)

    return guarded


def _generator_guard(inner: Callable[[Any, Any], AsyncIterator[Any]], admit: Callable[[Any], Awaitable[None]]) -> Callable[[Any, Any], AsyncIterator[Any]]:
    async def guarded(request: Any, context: Any) -> AsyncIterator[Any]:
        await admit(context)
        async for response in inner(request, context):
            yield response

    return guarded
