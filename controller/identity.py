"""The cluster's identity as the controllers keep it: the CA, join tokens, the deny-list.

Everything lives in etcd under ``/moorage/pki/``:

    cluster            ClusterIdentity: cluster id, CA certificate and key (made by `moor cluster init`)
    tokens/<role>      JoinTokenRecord: the current secret of the role's join token, its expiry
    keys/<node>        NodeKey: the public key a node joined with and its live certificates
    revoked/<serial>   RevokedCertificate, on a lease that ends at the certificate's NotAfter

The CA key sits in etcd beside the rest of the cluster's state, as swarmkit keeps its root key
in raft: whoever can read etcd can already write any spec, so etcd's own TLS (client
certificates, controllers only) is what protects both. Every controller can therefore sign, and
any of them can fail without the cluster losing its CA.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import structlog
from google.protobuf.timestamp_pb2 import Timestamp

from controller.errors import ConflictError
from controller.store import PREFIX, Store
from moorage import pki
from moorage.v1 import identity_pb2

log = structlog.get_logger("controller.identity")

PKI = PREFIX + "pki/"
CLUSTER = PKI + "cluster"
TOKENS = PKI + "tokens/"
KEYS = PKI + "keys/"
REVOKED = PKI + "revoked/"

JOINS_PER_SECOND = 5.0  # per controller: a leaked token cannot register nodes by the hundred
JOIN_BURST = 20


class IdentityError(Exception):
    """A join, renewal or issue refused; ``permission`` tells a denial from bad input."""

    def __init__(self, message: str, *, permission: bool = False) -> None:
        super().__init__(message)
        self.permission = permission


def _timestamp(when: dt.datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(when)
    return stamp


def _datetime(stamp: Timestamp) -> dt.datetime:
    return stamp.ToDatetime(tzinfo=dt.UTC)


async def init_cluster(store: Store, cluster_id: str | None = None) -> identity_pb2.ClusterIdentity:
    """Make the cluster's CA and join tokens; refuse if the cluster already has them."""
    cluster_id = pki.check_name(cluster_id or secrets.token_hex(8), "cluster id")
    ca_cert, ca_key = pki.new_ca(cluster_id)
    record = identity_pb2.ClusterIdentity(
        cluster_id=cluster_id, ca_certificate=ca_cert, ca_key=ca_key, created_at=_timestamp(pki.now())
    )
    if not await store.create(CLUSTER, record):
        raise IdentityError("this etcd already holds a cluster identity (moor cluster init was run before)")
    for role in pki.TOKEN_ROLES:
        await store.put_raw(TOKENS + role, _token_record(role, pki.new_secret(), None).SerializeToString())
    log.info("cluster initialised", cluster=cluster_id)
    return record


@dataclass(frozen=True)
class Bootstrap:
    """What `moor cluster init` hands its user: the CA, a first admin's key and certificate, the worker token."""

    ca: bytes
    admin_cert: bytes
    admin_key: bytes
    worker_token: str


async def bootstrap(store: Store, *, cluster_id: str | None = None, admin: str = "admin") -> Bootstrap:
    """Initialise the cluster's identity in etcd and issue the first admin certificate."""
    record = await init_cluster(store, cluster_id)
    authority = Authority(store, record)
    key = pki.new_key()
    cert = authority.sign(pki.make_csr(key, admin), name=admin, role=pki.ADMIN, lifetime=pki.USER_CERT_LIFETIME)
    token = await authority.join_token(pki.WORKER, rotate=False, ttl=0)
    return Bootstrap(bytes(record.ca_certificate), cert, key, token.token)


async def load_cluster(store: Store) -> identity_pb2.ClusterIdentity | None:
    raw = await store.get_raw(CLUSTER)
    return None if raw is None else identity_pb2.ClusterIdentity.FromString(raw)


def _token_record(role: str, secret: str, expires: dt.datetime | None) -> identity_pb2.JoinTokenRecord:
    record = identity_pb2.JoinTokenRecord(role=role, secret=secret, created_at=_timestamp(pki.now()))
    if expires is not None:
        record.expires_at.CopyFrom(_timestamp(expires))
    return record


@dataclass
class _Bucket:
    """A token bucket: ``rate`` per second, up to ``burst`` at once."""

    rate: float
    burst: float
    level: float = 0.0
    stamp: float = 0.0

    def take(self) -> bool:
        moment = time.monotonic()
        self.level = min(self.burst, self.level + (moment - self.stamp) * self.rate) if self.stamp else self.burst
        self.stamp = moment
        if self.level < 1:
            return False
        self.level -= 1
        return True


class Authority:
    """What one controller does with the cluster's identity: sign, check, revoke.

    Token secrets are stored as they are, as swarmkit keeps its join tokens: an admin can read
    them again (`moor cluster join-token worker`), and whoever reads etcd holds the CA key anyway.
    ``revoked`` is the deny-list, kept current by ``follow_revocations``.
    """

    def __init__(
        self,
        store: Store,
        record: identity_pb2.ClusterIdentity,
        *,
        node_cert_lifetime: dt.timedelta = pki.NODE_CERT_LIFETIME,
    ) -> None:
        self._store = store
        self.cluster_id = record.cluster_id
        self.ca_cert = bytes(record.ca_certificate)
        self._ca_key = bytes(record.ca_key)
        self.node_cert_lifetime = node_cert_lifetime
        self.revoked: set[str] = set()
        self._joins = _Bucket(JOINS_PER_SECOND, JOIN_BURST)

    # -- certificates -----------------------------------------------------------------

    def sign(self, csr: bytes, *, name: str, role: str, lifetime: dt.timedelta, server_names: tuple[str, ...] = ()) -> bytes:
        return pki.issue(self.ca_cert, self._ca_key, csr, name=name, role=role, lifetime=lifetime, server_names=server_names)

    def controller_credentials(self, controller_id: str, server_names: Iterable[str]) -> tuple[bytes, bytes]:
        """A key and certificate chain (certificate + CA) for this controller's own TLS server."""
        key = pki.new_key()
        cert = self.sign(
            pki.make_csr(key, controller_id), name=controller_id, role=pki.CONTROLLER,
            lifetime=self.node_cert_lifetime, server_names=tuple(server_names),
        )  # fmt: skip
        return key, cert + self.ca_cert

    def response(self, cert: bytes) -> identity_pb2.JoinResponse:
        who = pki.identity(cert)
        return identity_pb2.JoinResponse(
            certificate=cert, ca_certificate=self.ca_cert, name=who.name, role=who.role, cluster_id=self.cluster_id
        )

    def check_peer(self, cert_pem: bytes) -> pki.Identity:
        """The identity a TLS peer's verified certificate names, if it may act in this cluster."""
        who = pki.identity(cert_pem)
        if who.cluster_id != self.cluster_id:
            raise IdentityError(f"the certificate belongs to cluster {who.cluster_id!r}, not this one", permission=True)
        if who.serial_hex in self.revoked:
            raise IdentityError(f"the certificate of {who.name!r} was revoked", permission=True)
        if who.role not in pki.ROLES:
            raise IdentityError(f"unknown role {who.role!r}", permission=True)
        return who

    # -- joining ------------------------------------------------------------------------

    async def join(self, request: identity_pb2.JoinRequest) -> identity_pb2.JoinResponse:
        if not self._joins.take():
            raise IdentityError("too many joins: try again in a few seconds", permission=True)
        try:
            token = pki.parse_token(request.token)
        except pki.PKIError as e:
            raise IdentityError(str(e)) from None  # malformed: a typo, not a guess
        if token.ca_digest != pki.ca_digest(self.ca_cert):
            raise IdentityError("the join token is for another cluster (its CA digest does not match)", permission=True)
        role = await self._role_of(token.secret)
        name = pki.check_name(request.name, "node id" if role == pki.WORKER else "user name")
        key_digest = pki.public_key_digest(request.csr)
        if role == pki.WORKER:
            lifetime = self.node_cert_lifetime
            await self._claim_node(name, key_digest)
        else:
            lifetime = pki.USER_CERT_LIFETIME
        cert = self.sign(request.csr, name=name, role=role, lifetime=lifetime)
        if role == pki.WORKER:
            await self._record_certificate(name, cert)
        log.info("joined", name=name, role=role)
        return self.response(cert)

    async def _role_of(self, secret: str) -> str:
        for role in pki.TOKEN_ROLES:
            raw = await self._store.get_raw(TOKENS + role)
            if raw is None:
                continue
            record = identity_pb2.JoinTokenRecord.FromString(raw)
            if pki.secrets_equal(secret, record.secret):
                if record.HasField("expires_at") and _datetime(record.expires_at) < pki.now():
                    raise IdentityError(f"the {role} join token expired", permission=True)
                return role
        raise IdentityError("the join token is not valid (rotated, or never issued)", permission=True)

    async def _claim_node(self, node_id: str, key_digest: str) -> None:
        """A node id is its first joiner's: a later join under it must come with the same key."""
        record = identity_pb2.NodeKey(node_id=node_id, public_key_sha256=key_digest)
        if await self._store.create(KEYS + node_id, record):
            return
        raw = await self._store.get_raw(KEYS + node_id)
        existing = identity_pb2.NodeKey.FromString(raw) if raw is not None else None
        if existing is not None and existing.public_key_sha256 != key_digest:
            raise IdentityError(
                f"node id {node_id!r} belongs to a node with another key (remove it with moor node rm first)",
                permission=True,
            )

    async def _record_certificate(self, node_id: str, cert: bytes) -> None:
        """Keep the serials of a node's live certificates, so that removing the node revokes them all."""
        who = pki.identity(cert)

        async def step() -> None:
            raw, revision = await self._store.get_raw_versioned(KEYS + node_id)
            if raw is None:
                raise IdentityError(f"node {node_id!r} was removed meanwhile", permission=True)
            record = identity_pb2.NodeKey.FromString(raw)
            moment = pki.now()
            live = [c for c in record.certificates if _datetime(c.not_after) > moment]
            del record.certificates[:]
            record.certificates.extend(live)
            record.certificates.add(serial=who.serial_hex, not_after=_timestamp(who.not_after))
            if not await self._store.put_raw_if(KEYS + node_id, record.SerializeToString(), revision):
                raise ConflictError(KEYS + node_id)

        from controller.store import retry_on_conflict

        await retry_on_conflict(step)

    async def renew(self, who: pki.Identity, csr: bytes) -> identity_pb2.JoinResponse:
        """A new certificate for the holder of a valid one: same name and role, a worker keeps its key."""
        if who.role == pki.WORKER:
            raw = await self._store.get_raw(KEYS + who.name)
            if raw is None:
                raise IdentityError(f"node {who.name!r} was removed", permission=True)
            if identity_pb2.NodeKey.FromString(raw).public_key_sha256 != pki.public_key_digest(csr):
                raise IdentityError("a renewal must keep the node's key", permission=True)
            lifetime = self.node_cert_lifetime
        elif who.role in pki.USER_ROLES:
            lifetime = pki.USER_CERT_LIFETIME
        else:
            raise IdentityError(f"a {who.role} certificate is not renewed over the API", permission=True)
        cert = self.sign(csr, name=who.name, role=who.role, lifetime=lifetime)
        if who.role == pki.WORKER:
            await self._record_certificate(who.name, cert)
        return self.response(cert)

    async def issue_user(self, name: str, role: str, csr: bytes, lifetime: dt.timedelta) -> identity_pb2.JoinResponse:
        if role not in pki.USER_ROLES:
            raise IdentityError(f"a user certificate's role is one of {', '.join(pki.USER_ROLES)}, not {role[:32]!r}")
        cert = self.sign(csr, name=pki.check_name(name, "user name"), role=role, lifetime=lifetime)
        log.info("user certificate issued", name=name, role=role)
        return self.response(cert)

    # -- tokens -------------------------------------------------------------------------

    async def join_token(self, role: str, *, rotate: bool, ttl: float) -> identity_pb2.JoinToken:
        """The role's token; ``rotate`` replaces its secret (joins with the old one fail from then
        on, nodes that joined with it keep their certificates); ``ttl`` seconds sets its expiry."""
        if role not in pki.TOKEN_ROLES:
            raise IdentityError(f"a join token's role is one of {', '.join(pki.TOKEN_ROLES)}, not {role[:32]!r}")
        if not 0 <= ttl < 10 * 365 * 86400:  # NaN fails too
            raise IdentityError("ttl must be a number of seconds under ten years (0: no expiry)")
        raw = await self._store.get_raw(TOKENS + role)
        record = identity_pb2.JoinTokenRecord.FromString(raw) if raw is not None else None
        if record is None or rotate or ttl:
            secret = pki.new_secret() if record is None or rotate else record.secret
            record = _token_record(role, secret, pki.now() + dt.timedelta(seconds=ttl) if ttl else None)
            await self._store.put_raw(TOKENS + role, record.SerializeToString())
            log.info("join token set", role=role, rotated=rotate, ttl=ttl or None)
        answer = identity_pb2.JoinToken(role=role, token=pki.format_token(self.ca_cert, record.secret))
        if record.HasField("expires_at"):
            answer.expires_at.CopyFrom(record.expires_at)
        return answer

    # -- revocation ---------------------------------------------------------------------

    async def revoke_node(self, node_id: str) -> list[str]:
        """Deny every live certificate of ``node_id`` and forget its key; the serials revoked."""
        raw = await self._store.get_raw(KEYS + node_id)
        if raw is None:
            return []
        record = identity_pb2.NodeKey.FromString(raw)
        moment = pki.now()
        revoked = []
        for cert in record.certificates:
            not_after = _datetime(cert.not_after)
            if not_after <= moment:
                continue
            entry = identity_pb2.RevokedCertificate(
                serial=cert.serial, name=node_id, not_after=cert.not_after, revoked_at=_timestamp(moment)
            )
            ttl = max(1, int((not_after - moment).total_seconds()) + 1)
            await self._store.put_with_ttl(REVOKED + cert.serial, entry.SerializeToString(), ttl)
            self.revoked.add(cert.serial)
            revoked.append(cert.serial)
        await self._store.delete_raw(KEYS + node_id)
        log.info("node certificates revoked", node=node_id, serials=revoked)
        return revoked

    async def follow_revocations(self, on_revoked: Callable[[str], None]) -> None:
        """Keep ``revoked`` equal to the deny-list in etcd (entries leave with their lease);
        ``on_revoked(serial)`` for each certificate revoked while this runs (to end its session)."""
        while True:
            try:
                async for change in self._store.watch(REVOKED):
                    if change is None:
                        self.revoked = {key[len(REVOKED) :] for key in await self._store.keys(REVOKED)}
                    elif change.value is None:
                        self.revoked.discard(change.key[len(REVOKED) :])
                    else:
                        serial = change.key[len(REVOKED) :]
                        self.revoked.add(serial)
                        on_revoked(serial)
            except Exception as e:  # a watch lost with etcd: start again
                log.warning("revocation watch lost", error=str(e))
                await asyncio.sleep(0.5 + random.random())
