"""Liveness, leadership, node operations and events of in-process controllers
against a real etcd (and a real three-member etcd cluster)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from controller.store import Store
from moorage.localcluster.etcd import Etcd, EtcdCluster
from moorage.v1 import control_pb2, control_pb2_grpc, types_pb2
from tests.controller.harness import agents, control, eventually, running_controller
from tests.controller.test_controller import RUNNING, SHUTDOWN, apply, live, run, spec, tasks

READY, DOWN = types_pb2.NODE_STATE_READY, types_pb2.NODE_STATE_DOWN
TTL = 2.0


async def node_state(stub: control_pb2_grpc.ControlStub, node_id: str) -> int:
    return (await stub.GetNode(control_pb2.GetNodeRequest(id=node_id))).state


async def is_leader(stub: control_pb2_grpc.ControlStub) -> bool:
    return (await stub.GetVersion(control_pb2.GetVersionRequest())).leader


def test_heartbeats_keep_a_node_up_and_silence_marks_it_down(etcd: Etcd) -> None:
    async def scenario() -> None:
        async with running_controller(etcd.endpoint, node_ttl=TTL) as address, control(address) as stub:
            async with agents(address, "node-a", "node-b") as (a, b):
                await apply(stub, spec("web", replicas=2))
                await eventually(lambda: len(a.tasks(RUNNING)) == 1 and len(b.tasks(RUNNING)) == 1, "one task each")
                (lost,) = b.tasks(RUNNING)
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 3 * TTL
                while loop.time() < deadline:  # a keeps beating, b falls silent (its session stays open)
                    a.heartbeat()
                    await asyncio.sleep(TTL / 4)
                assert await node_state(stub, "node-a") == READY
                assert await node_state(stub, "node-b") == DOWN
                await eventually(lambda: len(a.tasks(RUNNING)) == 2, "b's slot moved to a")
                assert lost.slot in {t.slot for t in a.tasks(RUNNING)}
                by_id = {t.id: t for t in await tasks(stub, "web")}
                assert by_id[lost.id].desired_state == SHUTDOWN and by_id[lost.id].node_id == "node-b"

                # b still holds its session, so it hears at once that its old task is to stop ...
                await eventually(lambda: [t.id for t in b.tasks(SHUTDOWN)] == [lost.id], "b told to stop it")
                b.heartbeat()  # ... and a heartbeat after its lease ran out registers it afresh

                async def b_ready() -> bool:
                    return await node_state(stub, "node-b") == READY

                await eventually(b_ready, "node-b READY again")

    run(scenario())


def test_registration_tells_the_ttl_and_each_renewing_heartbeat_is_answered(etcd: Etcd) -> None:
    """What an agent needs to fence itself: the TTL, and word from its controller at every heartbeat."""

    async def scenario() -> None:
        async with running_controller(etcd.endpoint, node_ttl=TTL) as address, agents(address, "node-a") as (a,):
            assert a.node_ttl == TTL
            assert a.answered_heartbeats == 0
            for beats in (1, 2, 3):
                a.heartbeat()
                await eventually(lambda beats=beats: a.answered_heartbeats == beats, f"heartbeat {beats} answered")

    run(scenario())


def test_one_leader_at_a_time_and_the_follower_takes_over(etcd: Etcd) -> None:
    async def scenario() -> None:
        first_ctx = running_controller(etcd.endpoint, controller_id="c1")
        first = await first_ctx.__aenter__()
        stopped = False
        try:
            async with control(first) as stub_1:
                # c2 starts once c1 leads: two controllers started together may elect either one
                await eventually(lambda: is_leader(stub_1), "c1 (started first) to lead")
            async with running_controller(etcd.endpoint, controller_id="c2") as second, control(second) as stub_2:
                async with control(first) as stub_1:
                    assert not await is_leader(stub_2)
                    assert await is_leader(stub_1)
                    version = await stub_1.GetVersion(control_pb2.GetVersionRequest())
                    assert (version.controller_id, version.api) == ("c1", "moorage.v1")
                events = aiter(stub_2.WatchEvents(control_pb2.WatchEventsRequest(kinds=["controller", "task"])))
                await apply(stub_2, spec("web", replicas=2))  # a follower takes writes too
                while (await asyncio.wait_for(anext(events), 10)).action != "created":
                    pass  # the stream is live once it reports the new tasks
                async with agents(second, "node-a") as (agent,):
                    await first_ctx.__aexit__(None, None, None)  # c1 stops and hands over at once
                    stopped = True
                    await eventually(lambda: is_leader(stub_2), "c2 to lead")
                    while (event := await asyncio.wait_for(anext(events), 10)).action != "leader changed" or (
                        event.message != "c2 leads"
                    ):
                        pass
                    await eventually(lambda: len(agent.tasks(RUNNING)) == 2, "both tasks placed by c2")
                    assert sorted(t.slot for t in live(await tasks(stub_2, "web"))) == [1, 2]
        finally:
            if not stopped:
                await first_ctx.__aexit__(None, None, None)

    run(scenario())


def test_node_operations_drain_label_scale_and_task_reads(etcd: Etcd) -> None:
    async def scenario() -> None:
        async with running_controller(etcd.endpoint) as address, control(address) as stub:
            async with agents(address, "node-a", "node-b") as (a, b):
                await apply(stub, spec("web", replicas=2))
                await eventually(lambda: len(a.tasks(RUNNING)) == 1 and len(b.tasks(RUNNING)) == 1, "one task each")
                drain = control_pb2.UpdateNodeRequest(
                    id="node-a", availability=types_pb2.NODE_AVAILABILITY_DRAIN, set_labels={"disk": "ssd"}
                )
                node = await stub.UpdateNode(drain)
                assert node.availability == types_pb2.NODE_AVAILABILITY_DRAIN and node.labels["disk"] == "ssd"
                await eventually(lambda: not a.tasks(RUNNING) and len(b.tasks(RUNNING)) == 2, "web off node-a")
                on_a = await stub.ListTasks(control_pb2.ListTasksRequest(node_id="node-a"))
                assert [t.desired_state for t in on_a.tasks] == [SHUTDOWN]
                (stopping,) = on_a.tasks
                assert (await stub.GetTask(control_pb2.GetTaskRequest(id=stopping.id))).id == stopping.id

                scaled = await stub.ScaleService(control_pb2.ScaleServiceRequest(name="web", replicas=3))
                assert scaled.spec.replicas == 3
                await eventually(lambda: len(b.tasks(RUNNING)) == 3, "the third task lands on node-b only")
                activate = control_pb2.UpdateNodeRequest(id="node-a", availability=types_pb2.NODE_AVAILABILITY_ACTIVE)
                await stub.UpdateNode(activate)
                await stub.ScaleService(control_pb2.ScaleServiceRequest(name="web", replicas=4))
                await eventually(lambda: len(a.tasks(RUNNING)) == 1, "node-a takes tasks again")

    run(scenario())


def test_store_fails_over_between_etcd_members(tmp_path: Path) -> None:
    members = EtcdCluster(tmp_path / "moorage-etcd").start()
    try:

        async def scenario() -> None:
            store = await Store.connect(members.endpoints)
            try:
                used = next(m for m in members.members if m.endpoint == store.endpoint)
                lease = await store.grant(5)
                await store.put_leased("/moorage/alive/x", b"", lease)
                used.daemon.kill()  # type: ignore[union-attr]
                assert await store.get_raw("/moorage/alive/x") == b""
                assert store.endpoint != used.endpoint
                assert await store.refresh(lease)
            finally:
                await store.close()

        asyncio.run(asyncio.wait_for(scenario(), 60))
    finally:
        members.stop()
