"""Cluster identity over real TLS: who may call what, joining, tokens, impostors, revocation.

Every call here goes over a real gRPC TLS connection to an in-process controller whose CA lives
in a real etcd; the certificates are issued by that CA (or, for the impostors, by another one).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import grpc
import pytest

from agent.identity import JoinError, NodeIdentity
from controller import authz
from controller.identity import KEYS, REVOKED
from moorage import pki, tlsconfig
from moorage.localcluster.etcd import Etcd
from moorage.tlsconfig import ClientTLS
from moorage.v1 import agent_pb2, control_pb2, identity_pb2, identity_pb2_grpc, types_pb2
from tests.controller.harness import CLUSTERS, FakeAgent, control, credentials, etcd_keys, eventually, running_controller



def synchronous(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test function to completion (60 s at most) as a plain pytest test."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(test(*args, **kwargs), 60))

    return run

DENIED = {grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED}


def all_methods() -> dict[str, tuple[bool, bool]]:
    """Every RPC the controller serves: full name -> (client streams, server streams)."""
    from moorage.v1 import agent_pb2 as a, control_pb2 as c, identity_pb2 as i

    found = {}
    for module in (a, c, i):
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                found[f"/{service.full_name}/{method.name}"] = (method.client_streaming, method.server_streaming)
    return found


def refused_by_authz(error: grpc.aio.AioRpcError) -> bool:
    """A refusal of the access rules (controller/authz.py), not of the call's own checks."""
    details = error.details() or ""
    return error.code() in DENIED and any(s in details for s in ("may not call", "certificate of this cluster is required", "was revoked"))


async def call(channel: grpc.aio.Channel, method: str) -> grpc.StatusCode:
    """Call ``method`` with an empty request; the status it ends with (OK if it answered;
    PERMISSION_DENIED only when the access rules refused it)."""
    client_streams, server_streams = all_methods()[method]
    ident = lambda b: b  # noqa: E731 (raw bytes in and out: an empty message is b"")
    try:
        if not client_streams and not server_streams:
            await channel.unary_unary(method, ident, ident)(b"", timeout=5)
        elif not client_streams:
            stream = channel.unary_stream(method, ident, ident)(b"", timeout=2)
            async for _ in stream:
                break
        else:
            async def nothing() -> AsyncIterator[bytes]:
                await asyncio.sleep(0.5)
                yield b""

            stream = channel.stream_stream(method, ident, ident)(nothing(), timeout=2)
            async for _ in stream:
                break
    except grpc.aio.AioRpcError as e:
        if e.code() in DENIED and not refused_by_authz(e):
            return grpc.StatusCode.FAILED_PRECONDITION  # admitted, then refused by the call itself
        return e.code()
    return grpc.StatusCode.OK


def test_every_rpc_has_an_access_rule() -> None:
    """A new RPC without a rule would be closed to everyone; this says so before a user finds out."""
    assert set(all_methods()) == set(authz.ALLOWED)


@synchronous
async def test_role_by_call_matrix(etcd: Etcd) -> None:
    """Each role is allowed exactly the calls authz.ALLOWED gives it; a caller without a certificate
    cannot even connect to the API port, and on the join port may only Join."""
    async with running_controller(etcd.endpoint) as address:
        outcome: dict[tuple[str, str], bool] = {}
        for role in (pki.ADMIN, pki.READONLY, pki.WORKER):
            tls = credentials(address, f"matrix-{role}", role)
            async with tlsconfig.aio_channel(address, tls) as channel:
                for method in all_methods():
                    code = await call(channel, method)
                    outcome[(role, method)] = code not in DENIED
        for (role, method), allowed in outcome.items():
            rule = authz.ALLOWED[method]
            expected = rule is authz.ANYONE or role in rule
            assert allowed == expected, (role, method)
        # No certificate: the API port's handshake fails; the join port answers Join only.
        ca = CLUSTERS[address].record.ca_certificate
        async with tlsconfig.aio_channel(address, ClientTLS(ca)) as channel:
            assert await call(channel, "/moorage.v1.Control/ListServices") == grpc.StatusCode.UNAVAILABLE
        async with tlsconfig.aio_channel(tlsconfig.join_address(address), ClientTLS(ca)) as channel:
            for method in all_methods():
                code = await call(channel, method)
                if method == "/moorage.v1.Identity/Join":
                    assert code == grpc.StatusCode.INVALID_ARGUMENT  # reached: the empty token is refused
                else:
                    assert code == grpc.StatusCode.UNAUTHENTICATED, method


@synchronous
async def test_impostors_are_refused(etcd: Etcd) -> None:
    """No cert, a self-signed cluster of its own, and node h1's real certificate acting as h2."""
    async with running_controller(etcd.endpoint) as address, control(address) as stub:
        # Another cluster's CA: the TLS handshake itself fails.
        other_ca, other_key = pki.new_ca("evil")
        key = pki.new_key()
        forged = pki.issue(other_ca, other_key, pki.make_csr(key, "h2"), name="h2", role=pki.WORKER, lifetime=dt.timedelta(days=1))
        ours = CLUSTERS[address].record.ca_certificate
        async with tlsconfig.aio_channel(address, ClientTLS(ours, forged, key)) as channel:
            assert await call(channel, "/moorage.v1.AgentSession/Session") == grpc.StatusCode.UNAVAILABLE
        # The real h2 runs a task; h1's real certificate cannot open h2's session.
        h2 = await FakeAgent(address, "h2").start()
        try:
            spec = types_pb2.ServiceSpec(name="web", image="busybox", replicas=1, args=["sleep", "60"])
            await stub.ApplyServices(control_pb2.ApplyServicesRequest(services=[spec]))
            await eventually(lambda: len(h2.tasks(types_pb2.TASK_STATE_RUNNING)) == 1, "h2 gets the task")
            impostor = FakeAgent(address, "h2", cluster=address)
            impostor_tls = credentials(address, "h1", pki.WORKER)
            impostor._channel = tlsconfig.aio_channel(address, impostor_tls)
            from moorage.v1 import agent_pb2_grpc

            register = agent_pb2.AgentMessage(register=agent_pb2.Register(node_id="h2", hostname="h2", address="10.0.0.66"))

            async def messages() -> AsyncIterator[agent_pb2.AgentMessage]:
                yield register
                await asyncio.sleep(3)

            stream = agent_pb2_grpc.AgentSessionStub(impostor._channel).Session(messages())
            received = []
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                async for message in stream:
                    received.append(message)
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "h1" in (refused.value.details() or "")
            assert received == []  # nothing of h2's: no Registered, no Assignments
            await impostor._channel.close()
            node = await stub.GetNode(control_pb2.GetNodeRequest(id="h2"))
            assert node.address == "10.231.0.9"  # still the real h2's
        finally:
            await h2.close()


async def join(address: str, token: str, name: str, key: bytes | None = None) -> identity_pb2.JoinResponse:
    return await tlsconfig.join(address, token, key or pki.new_key(), name)


async def identity_stub_call(address: str, method: str, request: object) -> object:
    async with tlsconfig.aio_channel(address, credentials(address)) as channel:
        return await getattr(identity_pb2_grpc.IdentityStub(channel), method)(request, timeout=5)


@synchronous
async def test_join_rotate_and_ttl(etcd: Etcd) -> None:
    async with running_controller(etcd.endpoint) as address:
        token = (await identity_stub_call(address, "GetJoinToken", identity_pb2.GetJoinTokenRequest(role="worker"))).token
        joined = await join(address, token, "n1")
        who = pki.identity(joined.certificate)
        assert (who.name, who.role, who.cluster_id) == ("n1", pki.WORKER, CLUSTERS[address].record.cluster_id)
        # The token pins the CA: a token with another digest fails before anything is sent.
        wrong = "MOOR1-" + "0" * 64 + "-" + pki.parse_token(token).secret
        with pytest.raises(pki.PKIError, match="does not present the CA"):
            await join(address, wrong, "n2")
        # Rotation: the old token stops working, the joined node keeps working.
        rotated = await identity_stub_call(address, "GetJoinToken", identity_pb2.GetJoinTokenRequest(role="worker", rotate=True))
        assert rotated.token != token
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await join(address, token, "n3")
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        tls = ClientTLS(joined.ca_certificate, joined.certificate, None)
        assert tls.identity() is not None
        await join(address, rotated.token, "n3")
        # An expiry in the past is refused; a TTL is set and shown.
        timed = await identity_stub_call(address, "GetJoinToken", identity_pb2.GetJoinTokenRequest(role="worker", ttl=1))
        assert timed.HasField("expires_at")
        await eventually(lambda: timed.expires_at.ToDatetime(tzinfo=dt.UTC) < pki.now(), "the token to expire", 5)
        with pytest.raises(grpc.aio.AioRpcError, match="expired"):
            await join(address, timed.token, "n4")


@synchronous
async def test_a_node_id_belongs_to_its_key(etcd: Etcd) -> None:
    """A rejoin under an existing id needs the node's own key (an expired node rejoins with a fresh
    token and keeps its id); anyone else with a token is refused that id."""
    async with running_controller(etcd.endpoint) as address:
        token = (await identity_stub_call(address, "GetJoinToken", identity_pb2.GetJoinTokenRequest(role="worker"))).token
        key = pki.new_key()
        first = await join(address, token, "steady", key)
        with pytest.raises(grpc.aio.AioRpcError, match="another key"):
            await join(address, token, "steady")
        again = await join(address, token, "steady", key)
        assert pki.identity(again.certificate).name == "steady"
        assert pki.identity(again.certificate).serial != pki.identity(first.certificate).serial


@synchronous
async def test_join_flood_is_rate_limited(etcd: Etcd) -> None:
    async with running_controller(etcd.endpoint) as address:
        token = (await identity_stub_call(address, "GetJoinToken", identity_pb2.GetJoinTokenRequest(role="worker"))).token
        refused = 0
        for n in range(40):
            try:
                await join(address, token, f"flood{n}")
            except grpc.aio.AioRpcError as e:
                assert "too many joins" in (e.details() or "")
                refused += 1
        assert refused >= 10  # a burst of 20, then 5 a second
        # Joining gives certificates only: no node, no subnet exists until a session registers.
        keys = await etcd_keys(etcd.endpoint)
        assert not any(k.startswith("/moorage/subnets/") for k in keys)


@synchronous
async def test_readonly_sees_no_env_values_and_cannot_write(etcd: Etcd) -> None:
    async with running_controller(etcd.endpoint) as address, control(address) as admin:
        spec = types_pb2.ServiceSpec(name="db", image="busybox", replicas=0, env={"PASSWORD": "hunter2"})
        await admin.ApplyServices(control_pb2.ApplyServicesRequest(services=[spec]))
        assert (await admin.GetService(control_pb2.GetServiceRequest(name="db"))).spec.env["PASSWORD"] == "hunter2"
        async with control(address, pki.READONLY) as reader:
            shown = await reader.GetService(control_pb2.GetServiceRequest(name="db"))
            assert shown.spec.env["PASSWORD"] != "hunter2"
            listed = await reader.ListServices(control_pb2.ListServicesRequest())
            assert all("hunter2" not in v for s in listed.services for v in s.spec.env.values())
            with pytest.raises(grpc.aio.AioRpcError) as denied:
                await reader.ApplyServices(control_pb2.ApplyServicesRequest(services=[spec]))
            assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED


@synchronous
async def test_removing_a_node_revokes_it(etcd: Etcd) -> None:
    async with running_controller(etcd.endpoint) as address, control(address) as stub:
        token = (await identity_stub_call(address, "GetJoinToken", identity_pb2.GetJoinTokenRequest(role="worker"))).token
        key = pki.new_key()
        joined = await join(address, token, "gone", key)
        agent = FakeAgent(address, "gone")
        tls = ClientTLS(joined.ca_certificate, joined.certificate, key)
        agent._channel = tlsconfig.aio_channel(address, tls)
        await _start_with(agent)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.RemoveNode(control_pb2.RemoveNodeRequest(id="gone"))
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        removed = await stub.RemoveNode(control_pb2.RemoveNodeRequest(id="gone", force=True))
        assert removed.revoked_serials == [pki.identity(joined.certificate).serial_hex]
        await eventually(lambda: agent._reader is not None and agent._reader.done(), "the removed node's session to end")
        keys = await etcd_keys(etcd.endpoint)
        assert REVOKED + removed.revoked_serials[0] in keys
        assert KEYS + "gone" not in keys and "/moorage/nodes/gone" not in keys
        assert not any(k.startswith("/moorage/subnets/") for k in keys)  # its subnet is free again
        async with tlsconfig.aio_channel(address, tls) as channel:
            assert await call(channel, "/moorage.v1.AgentSession/Session") == grpc.StatusCode.PERMISSION_DENIED
        await agent._channel.close()


async def _start_with(agent: FakeAgent) -> None:
    """FakeAgent.start on a channel the test made."""
    from moorage.v1 import agent_pb2_grpc

    assert agent._channel is not None
    call_ = agent_pb2_grpc.AgentSessionStub(agent._channel).Session(agent._requests())
    agent.send(agent_pb2.AgentMessage(register=agent_pb2.Register(node_id=agent.node_id, hostname=agent.node_id, address="10.0.0.7")))
    agent._reader = asyncio.create_task(agent._read(call_))
    await eventually(lambda: agent.registered is not None, f"{agent.node_id} registered")


@synchronous
async def test_a_forged_chunk_from_another_session_is_dropped(etcd: Etcd) -> None:
    """A log query goes out on h1's session; h2 answers it with the same request id: dropped."""
    async with running_controller(etcd.endpoint) as address, control(address) as stub:
        h1 = await FakeAgent(address, "h1", log_lines={}).start()
        h2 = await FakeAgent(address, "h2").start()
        try:
            spec = types_pb2.ServiceSpec(name="one", image="busybox", replicas=1, placement=types_pb2.Placement(constraints=["node.id==h1"]))
            await stub.ApplyServices(control_pb2.ApplyServicesRequest(services=[spec]))
            await eventually(lambda: len(h1.tasks(types_pb2.TASK_STATE_RUNNING)) == 1, "h1 gets the task")
            task = h1.tasks(types_pb2.TASK_STATE_RUNNING)[0]
            h1.report(task.id, types_pb2.TASK_STATE_RUNNING)
            await eventually(lambda: _has_container(stub, task.id), "the task's container is recorded")
            queries: list[agent_pb2.LogsQuery] = []
            h1._answer = queries.append  # type: ignore[method-assign]  (h1 holds the query, answers later)
            entries: list[str] = []

            async def read() -> None:
                async for entry in stub.Logs(control_pb2.LogsRequest(task_id=task.id)):
                    entries.append(entry.line)

            reader = asyncio.create_task(read())
            await eventually(lambda: bool(queries), "the query reaches h1")
            forged = agent_pb2.LogChunk(
                request_id=queries[0].request_id, eof=True,
                entries=[types_pb2.LogEntry(stream="stdout", line="forged by h2", time={"seconds": 1})],
            )  # fmt: skip
            h2.send(agent_pb2.AgentMessage(logs=forged))
            await asyncio.sleep(0)  # let h2's message go out first
            real = agent_pb2.LogChunk(
                request_id=queries[0].request_id, eof=True,
                entries=[types_pb2.LogEntry(stream="stdout", line="from h1", time={"seconds": 2})],
            )  # fmt: skip
            await eventually(lambda: h2._outbox.empty(), "h2's forged chunk sent")
            h1.send(agent_pb2.AgentMessage(logs=real))
            await asyncio.wait_for(reader, 10)
            assert entries == ["from h1"]
        finally:
            await h1.close()
            await h2.close()


async def _has_container(stub: object, task_id: str) -> bool:
    task = await stub.GetTask(control_pb2.GetTaskRequest(id=task_id))  # type: ignore[attr-defined]
    return bool(task.container_id)


@synchronous
async def test_a_node_renews_its_certificate_without_dropping_its_session(etcd: Etcd, tmp_path: object) -> None:
    """NodeIdentity joins, opens a session, renews over it: new serial, same key, session still answering."""
    async with running_controller(etcd.endpoint, node_cert_lifetime=dt.timedelta(minutes=5)) as address:
        token = (await identity_stub_call(address, "GetJoinToken", identity_pb2.GetJoinTokenRequest(role="worker"))).token
        node = NodeIdentity(tmp_path, "renewer")  # type: ignore[arg-type]
        with pytest.raises(JoinError, match="join-token"):
            await node.ensure([address], None)
        tls = await node.ensure([address], token)
        first = pki.identity(tls.cert or b"")
        assert 0 < node.renewal_delay() <= 0.8 * 300
        agent = FakeAgent(address, "renewer")
        agent._channel = tlsconfig.aio_channel(address, tls)
        await _start_with(agent)
        await node.renew(agent._channel)
        second = pki.identity(node.tls.cert or b"")  # type: ignore[union-attr]
        assert second.serial != first.serial and second.name == "renewer"
        beats = agent.answered_heartbeats
        agent.heartbeat()
        await eventually(lambda: agent.answered_heartbeats > beats, "the session still answers")
        assert NodeIdentity(tmp_path, "renewer").load() is not None  # type: ignore[arg-type]  (kept on disk)
        await agent.close()


@synchronous
async def test_expired_and_oversized_credentials_are_refused(etcd: Etcd) -> None:
    async with running_controller(etcd.endpoint) as address:
        record = CLUSTERS[address].record
        key = pki.new_key()
        stale = pki.issue(
            record.ca_certificate, record.ca_key, pki.make_csr(key, "old"), name="old", role=pki.ADMIN,
            lifetime=dt.timedelta(hours=1), at=pki.now() - dt.timedelta(days=1),
        )  # fmt: skip
        async with tlsconfig.aio_channel(address, ClientTLS(record.ca_certificate, stale, key)) as channel:
            assert await call(channel, "/moorage.v1.Control/ListServices") == grpc.StatusCode.UNAVAILABLE
        token = (await identity_stub_call(address, "GetJoinToken", identity_pb2.GetJoinTokenRequest(role="worker"))).token
        joining = tlsconfig.join_address(address)
        async with tlsconfig.aio_channel(joining, ClientTLS(record.ca_certificate)) as channel:
            stub = identity_pb2_grpc.IdentityStub(channel)
            for request, expected in (
                (identity_pb2.JoinRequest(token=token, csr=b"x" * 100_000, name="big"), "larger than"),
                (identity_pb2.JoinRequest(token=token, csr=pki.make_csr(pki.new_key(), "n"), name="n" * 1_000_000), "must be 1-128"),
                (identity_pb2.JoinRequest(token=token + "x" * 1000, csr=b"", name="n"), "not a Moorage join token"),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await stub.Join(request, timeout=5)
                assert expected in (refused.value.details() or "")
                assert len(refused.value.details() or "") <= 500


@synchronous
async def test_a_controller_serves_tls_on_every_listen_address(etcd: Etcd) -> None:
    """Two API addresses (as `make demo` has) and their join ports: each has credentials of its own."""
    from controller.server import serve
    from moorage.localcluster.procs import free_port_pair, port_open
    from tests.controller.harness import TestPKI, cluster_pki

    addresses = [f"127.0.0.1:{free_port_pair()}" for _ in range(2)]
    found: TestPKI = await cluster_pki([etcd.endpoint])
    stop = asyncio.Event()
    server = asyncio.create_task(serve(addresses, [etcd.endpoint], stop=stop))
    try:
        await eventually(lambda: all(port_open("127.0.0.1", int(a.rsplit(":", 1)[1]) + 1) for a in addresses), "both ports")
        for address in addresses:
            async with tlsconfig.aio_channel(address, found.credentials("two", pki.ADMIN)) as channel:
                assert await call(channel, "/moorage.v1.Control/GetVersion") == grpc.StatusCode.OK
    finally:
        stop.set()
        await server
