"""The Identity service (protos/moorage/v1/identity.proto): join, renew, tokens, user certificates.

Who may call each method is decided in controller/authz.py; this module does what is asked.
"""

from __future__ import annotations

import datetime as dt

import grpc
import structlog

from controller import authz
from controller.identity import Authority, IdentityError
from moorage import pki
from moorage.v1 import identity_pb2, identity_pb2_grpc

log = structlog.get_logger("controller.identity")

Context = grpc.aio.ServicerContext  # type: ignore[type-arg]
MAX_USER_CERT_LIFETIME = dt.timedelta(days=3650)


async def _refuse(context: Context, error: Exception) -> None:
    permission = isinstance(error, IdentityError) and error.permission
    code = grpc.StatusCode.PERMISSION_DENIED if permission else grpc.StatusCode.INVALID_ARGUMENT
    await context.abort(code, str(error)[:500])


class IdentityService(identity_pb2_grpc.IdentityServicer):
    def __init__(self, authority: Authority) -> None:
        self._authority = authority

    async def Join(self, request: identity_pb2.JoinRequest, context: Context) -> identity_pb2.JoinResponse:  # noqa: N802
        try:
            return await self._authority.join(request)
        except (IdentityError, pki.PKIError) as e:
            log.warning("join refused", name=request.name[:64], peer=context.peer(), reason=str(e)[:200])
            await _refuse(context, e)
            raise

    async def Renew(self, request: identity_pb2.RenewRequest, context: Context) -> identity_pb2.JoinResponse:  # noqa: N802
        who = authz.caller()
        assert who is not None  # authz admits only certificate holders
        try:
            return await self._authority.renew(who, request.csr)
        except (IdentityError, pki.PKIError) as e:
            await _refuse(context, e)
            raise

    async def GetJoinToken(self, request: identity_pb2.GetJoinTokenRequest, context: Context) -> identity_pb2.JoinToken:  # noqa: N802
        try:
            return await self._authority.join_token(request.role, rotate=request.rotate, ttl=request.ttl)
        except IdentityError as e:
            await _refuse(context, e)
            raise

    async def IssueUserCertificate(  # noqa: N802
        self, request: identity_pb2.IssueUserCertificateRequest, context: Context
    ) -> identity_pb2.JoinResponse:
        try:
            if not 0 <= request.lifetime <= MAX_USER_CERT_LIFETIME.total_seconds():  # NaN fails too
                raise IdentityError(f"lifetime must be 0 (the default) to {MAX_USER_CERT_LIFETIME.days} days in seconds")
            lifetime = dt.timedelta(seconds=request.lifetime) if request.lifetime else pki.USER_CERT_LIFETIME
            return await self._authority.issue_user(request.name, request.role, request.csr, lifetime)
        except (IdentityError, pki.PKIError) as e:
            await _refuse(context, e)
            raise
