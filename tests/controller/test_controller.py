"""The controller against a real etcd, a real gRPC server and fake (real-protocol) agents."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine, Iterator
from typing import Any

import grpc
import pytest

from moorage.localcluster.etcd import Etcd
from moorage.v1 import control_pb2, control_pb2_grpc, types_pb2

from tests.controller.harness import FakeAgent, agents, control, etcd_keys, eventually, running_controller

RUNNING = types_pb2.TASK_STATE_RUNNING
SHUTDOWN = types_pb2.TASK_STATE_SHUTDOWN


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 60))


def spec(name: str, replicas: int = 1, image: str = "busybox", **extra: Any) -> types_pb2.ServiceSpec:
    return types_pb2.ServiceSpec(name=name, image=image, replicas=replicas, args=["sleep", "1000"], **extra)


async def apply(stub: control_pb2_grpc.ControlStub, *specs: types_pb2.ServiceSpec) -> list[int]:
    response = await stub.ApplyServices(control_pb2.ApplyServicesRequest(services=specs))
    return [r.action for r in response.results]


async def tasks(stub: control_pb2_grpc.ControlStub, service: str = "") -> list[types_pb2.Task]:
    return list((await stub.ListTasks(control_pb2.ListTasksRequest(service=service))).tasks)


def live(task_list: list[types_pb2.Task]) -> list[types_pb2.Task]:
    return [t for t in task_list if t.desired_state == RUNNING]


@contextlib.contextmanager
def rpc_fails(code: grpc.StatusCode) -> Iterator[pytest.ExceptionInfo[grpc.aio.AioRpcError]]:
    """The block must end in an RPC error with status ``code``."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        yield caught
    assert caught.value.code() == code


async def has_container(stub: control_pb2_grpc.ControlStub) -> bool:
    return all(t.container_id for t in await tasks(stub, "web"))


async def logging_web_task(stub: control_pb2_grpc.ControlStub, agent: FakeAgent, lines: list[str]) -> types_pb2.Task:
    """One ``web`` replica on ``agent``, reported running with a container whose log is ``lines``."""
    await apply(stub, spec("web"))
    await eventually(lambda: len(agent.tasks(RUNNING)) == 1, "task assigned")
    (task,) = agent.tasks()
    agent.log_lines[task.id] = lines
    agent.report(task.id, RUNNING)
    await eventually(lambda: has_container(stub), "container id recorded")
    return task


def test_two_replicas_spread_over_two_agents_and_status_is_recorded(etcd: Etcd) -> None:
    async def scenario() -> None:
        async with running_controller(etcd.endpoint) as address, control(address) as stub:
            async with agents(address, "node-a", "node-b") as (a, b):
                assert await apply(stub, spec("web", replicas=2)) == [control_pb2.APPLY_ACTION_CREATED]
                await eventually(lambda: len(a.tasks(RUNNING)) == 1 and len(b.tasks(RUNNING)) == 1, "one task each")
                (task_a,), (task_b,) = a.tasks(), b.tasks()
                assert {task_a.slot, task_b.slot} == {1, 2}
                assert task_a.node_id == "node-a" and task_b.node_id == "node-b"
                assert task_a.spec == spec("web", replicas=2)

                a.report(task_a.id, RUNNING, container_id="ctr-1")

                async def recorded() -> bool:
                    by_id = {t.id: t for t in await tasks(stub, "web")}
                    return by_id[task_a.id].observed_state == RUNNING

                await eventually(recorded, "status RUNNING in ListTasks")
                listed = await tasks(stub, "web")
                assert [t.slot for t in listed] == [1, 2]
                assert {t.id: t.container_id for t in listed}[task_a.id] == "ctr-1"
                assert {t.id: t.observed_state for t in listed}[task_b.id] == types_pb2.TASK_STATE_ASSIGNED
                assert a.versions == sorted(a.versions) and len(set(a.versions)) == len(a.versions)

                nodes = (await stub.ListNodes(control_pb2.ListNodesRequest())).nodes
                assert [(n.id, n.state) for n in nodes] == [
                    ("node-a", types_pb2.NODE_STATE_READY),
                    ("node-b", types_pb2.NODE_STATE_READY),
                ]
                assert nodes[0].resources.cpu_millis == 2000 and nodes[0].labels["zone"] == "test"

            async def both_down() -> bool:
                nodes = (await stub.ListNodes(control_pb2.ListNodesRequest())).nodes
                return all(n.state == types_pb2.NODE_STATE_DOWN for n in nodes)

            await eventually(both_down, "nodes DOWN after their sessions ended")

    run(scenario())


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        pytest.param(spec("Web_1"), "name", id="bad-name"),
        pytest.param(spec("web", image=""), "image", id="empty-image"),
    ],
)
def test_invalid_spec_is_rejected_and_nothing_written(etcd: Etcd, bad: types_pb2.ServiceSpec, field: str) -> None:
    async def scenario() -> None:
        async with running_controller(etcd.endpoint) as address, control(address) as stub:
            before = {p: await etcd_keys(etcd.endpoint, p) for p in ("/moorage/services/", "/moorage/tasks/")}
            with rpc_fails(grpc.StatusCode.INVALID_ARGUMENT) as caught:
                await apply(stub, bad)
            assert bad.name in (caught.value.details() or "") and field in (caught.value.details() or "")
            assert {p: await etcd_keys(etcd.endpoint, p) for p in before} == before

    run(scenario())


@pytest.mark.parametrize(
    "second",
    [pytest.param(spec("db", image=""), id="one-invalid"), pytest.param(spec("web", replicas=3), id="duplicate-name")],
)
def test_apply_is_all_or_nothing(etcd: Etcd, second: types_pb2.ServiceSpec) -> None:
    async def scenario() -> None:
        async with running_controller(etcd.endpoint) as address, control(address) as stub:
            with rpc_fails(grpc.StatusCode.INVALID_ARGUMENT):
                await apply(stub, spec("web"), second)
            assert await etcd_keys(etcd.endpoint, "/moorage/services/") == {}
            assert (await stub.ListServices(control_pb2.ListServicesRequest())).services == []

    run(scenario())


def test_apply_reports_created_updated_unchanged(etcd: Etcd) -> None:
    async def scenario() -> None:
        async with running_controller(etcd.endpoint) as address, control(address) as stub:
            assert await apply(stub, spec("web"), spec("db")) == [control_pb2.APPLY_ACTION_CREATED] * 2
            assert await apply(stub, spec("web", replicas=2), spec("db")) == [
                control_pb2.APPLY_ACTION_UPDATED,
                control_pb2.APPLY_ACTION_UNCHANGED,
            ]
            assert await apply(stub) == []
            got = await stub.GetService(control_pb2.GetServiceRequest(name="web"))
            assert got.spec == spec("web", replicas=2) and got.version > 0
            with rpc_fails(grpc.StatusCode.NOT_FOUND):
                await stub.GetService(control_pb2.GetServiceRequest(name="nope"))

    run(scenario())


def test_scale_down_shuts_down_the_highest_slot(etcd: Etcd) -> None:
    async def scenario() -> None:
        async with running_controller(etcd.endpoint) as address, control(address) as stub:
            async with agents(address, "node-a", "node-b") as pair:
                await apply(stub, spec("web", replicas=2))
                await eventually(lambda: sum(len(x.tasks(RUNNING)) for x in pair) == 2, "two tasks assigned")
                ids = {t.slot: t.id for t in await tasks(stub, "web")}
                await apply(stub, spec("web", replicas=1))

                async def slot2_shutdown() -> bool:
                    return {t.slot: t.desired_state for t in await tasks(stub, "web")} == {1: RUNNING, 2: SHUTDOWN}

                await eventually(slot2_shutdown, "slot 2 desired SHUTDOWN")
                assert {t.slot: t.id for t in await tasks(stub, "web")} == ids, "scaling must not replace tasks"
                holder = next(x for x in pair if any(t.slot == 2 for t in x.tasks()))
                await eventually(lambda: [t.slot for t in holder.tasks(SHUTDOWN)] == [2], "agent told to stop slot 2")

    run(scenario())


def test_delete_service_stops_tasks_and_removes_them_once_stopped(etcd: Etcd) -> None:
    async def scenario() -> None:
        async with running_controller(etcd.endpoint) as address, control(address) as stub:
            async with agents(address, "node-a") as (agent,):
                await apply(stub, spec("web", replicas=2))
                await eventually(lambda: len(agent.tasks(RUNNING)) == 2, "two tasks on node-a")
                await stub.DeleteService(control_pb2.DeleteServiceRequest(name="web"))
                with rpc_fails(grpc.StatusCode.NOT_FOUND):
                    await stub.GetService(control_pb2.GetServiceRequest(name="web"))
                assert [t.desired_state for t in await tasks(stub, "web")] == [SHUTDOWN, SHUTDOWN]
                await eventually(lambda: len(agent.tasks(SHUTDOWN)) == 2, "agent told to stop both")

                for task in agent.tasks():
                    agent.report(task.id, SHUTDOWN)

                async def gone() -> bool:
                    return await etcd_keys(etcd.endpoint, "/moorage/tasks/") == {}

                await eventually(gone, "task keys deleted")
                await eventually(lambda: agent.tasks() == [], "empty assignments")
                with rpc_fails(grpc.StatusCode.NOT_FOUND):
                    await stub.DeleteService(control_pb2.DeleteServiceRequest(name="web"))

    run(scenario())


def test_tasks_wait_pending_without_nodes_and_are_deleted_directly(etcd: Etcd) -> None:
    async def scenario() -> None:
        async with running_controller(etcd.endpoint) as address, control(address) as stub:
            await apply(stub, spec("web", replicas=2))

            async def pending() -> bool:
                listed = await tasks(stub, "web")
                return len(listed) == 2 and all(t.observed_state == types_pb2.TASK_STATE_PENDING for t in listed)

            await eventually(pending, "tasks PENDING")
            assert {t.message for t in await tasks(stub, "web")} == {"no nodes in the cluster"}
            await stub.DeleteService(control_pb2.DeleteServiceRequest(name="web"))
            assert await etcd_keys(etcd.endpoint, "/moorage/tasks/") == {}

    run(scenario())


def test_logs_are_read_from_the_agents(etcd: Etcd) -> None:
    async def scenario() -> None:
        async with running_controller(etcd.endpoint) as address, control(address) as stub:
            async with agents(address, "node-a") as (agent,):
                task = await logging_web_task(stub, agent, ["hello", "world"])
                entries = [e async for e in stub.Logs(control_pb2.LogsRequest(service="web"))]
                assert [e.line for e in entries] == ["hello", "world"]
                assert {(e.task_id, e.slot, e.node_id, e.stream) for e in entries} == {(task.id, 1, "node-a", "stdout")}
                with rpc_fails(grpc.StatusCode.NOT_FOUND):
                    [e async for e in stub.Logs(control_pb2.LogsRequest(service="nope"))]

    run(scenario())


def test_following_logs_cancels_the_agent_query_when_the_client_leaves(etcd: Etcd) -> None:
    async def scenario() -> None:
        async with running_controller(etcd.endpoint) as address, control(address) as stub:
            async with agents(address, "node-a") as (agent,):
                await logging_web_task(stub, agent, ["first"])

                call = stub.Logs(control_pb2.LogsRequest(service="web", follow=True))
                first = await call.read()
                assert first.line == "first"
                call.cancel()
                await eventually(lambda: len(agent.cancelled_queries) == 1, "agent told to cancel the query")

    run(scenario())


def test_restarted_controller_resumes_from_etcd_without_duplicates(etcd: Etcd) -> None:
    async def scenario() -> None:
        async with running_controller(etcd.endpoint) as address, control(address) as stub:
            async with agents(address, "node-a") as (agent,):
                await apply(stub, spec("web", replicas=3))
                await eventually(lambda: len(agent.tasks(RUNNING)) == 3, "three tasks assigned")
                before = await tasks(stub)
                services_before = (await stub.ListServices(control_pb2.ListServicesRequest())).services

        async with running_controller(etcd.endpoint) as address, control(address) as stub:
            assert await tasks(stub) == before
            assert (await stub.ListServices(control_pb2.ListServicesRequest())).services == services_before
            async with agents(address, "node-a") as (agent,):
                await eventually(lambda: len(agent.tasks(RUNNING)) == 3, "same tasks sent again")
                assert {t.id for t in agent.tasks()} == {t.id for t in before}
                await apply(stub, spec("web", replicas=4))
                await eventually(lambda: len(agent.tasks(RUNNING)) == 4, "fourth task assigned")
            after = await tasks(stub)
            assert [t.slot for t in after] == [1, 2, 3, 4]
            assert [t.id for t in after[:3]] == [t.id for t in before]

    run(scenario())


def test_two_controllers_on_one_etcd_create_one_task_per_slot(etcd: Etcd) -> None:
    async def scenario() -> None:
        async with running_controller(etcd.endpoint) as first, running_controller(etcd.endpoint) as second:
            async with control(first) as stub_1, control(second) as stub_2:
                async with agents(first, "node-a"), agents(second, "node-b"):
                    for replicas in (5, 2, 6):
                        await apply(stub_1, spec("web", replicas=replicas))

                        async def settled(n: int = replicas) -> bool:
                            listed = live(await tasks(stub_2, "web"))
                            return sorted(t.slot for t in listed) == list(range(1, n + 1)) and all(
                                t.node_id for t in listed
                            )

                        await eventually(settled, f"{replicas} live tasks, one per slot")
                    assert len(live(await tasks(stub_1, "web"))) == 6

    run(scenario())


