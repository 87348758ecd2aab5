"""What an agent session carries for task history: the ended tasks stay assigned (their
containers hold their logs), and log queries never hang on a session that was replaced."""

from __future__ import annotations

import asyncio

import grpc

from moorage.localcluster.etcd import Etcd
from moorage.v1 import control_pb2, types_pb2

from tests.controller.harness import FakeAgent, agents, control, eventually, running_controller
from tests.controller.test_controller import RUNNING, SHUTDOWN, apply, logging_web_task, run, spec

FAILED = types_pb2.TASK_STATE_FAILED


def test_ended_tasks_stay_assigned_as_history(etcd: Etcd) -> None:
    policy = types_pb2.RestartPolicy(condition=types_pb2.RestartPolicy.CONDITION_ON_FAILURE, delay=0.05)

    async def scenario() -> None:
        async with running_controller(etcd.endpoint) as address, control(address) as stub:
            async with agents(address, "node-a") as (agent,):
                await apply(stub, spec("web", restart=policy))
                await eventually(lambda: len(agent.tasks(RUNNING)) == 1, "the first task assigned")
                (first,) = agent.tasks()
                agent.report(first.id, RUNNING)
                agent.report(first.id, FAILED)

                def replaced() -> bool:
                    live, ended = agent.tasks(RUNNING), agent.tasks(SHUTDOWN)
                    return len(live) == 1 and live[0].id != first.id and [t.id for t in ended] == [first.id]

                await eventually(replaced, "a new task, and the failed one still assigned as history")
                (kept,) = agent.tasks(SHUTDOWN)
                assert (kept.observed_state, kept.container_id) == (FAILED, f"ctr-{first.id}")

                (second,) = agent.tasks(RUNNING)
                await stub.DeleteService(control_pb2.DeleteServiceRequest(name="web"))
                await eventually(lambda: second.id in {t.id for t in agent.tasks(SHUTDOWN)}, "the live task to stop")
                agent.report(second.id, SHUTDOWN)
                await eventually(lambda: agent.tasks() == [], "the history gone with its service")

    run(scenario())


def test_a_replaced_session_ends_the_log_queries_sent_on_it(etcd: Etcd) -> None:
    async def scenario() -> None:
        async with running_controller(etcd.endpoint) as address, control(address) as stub:
            async with agents(address, "node-a") as (old,):
                task = await logging_web_task(stub, old, ["before"])
                call = stub.Logs(control_pb2.LogsRequest(service="web", follow=True))
                assert (await call.read()).line == "before"
                # The node's agent comes back (restarted) before the old stream is seen to break.
                new = await FakeAgent(address, "node-a").start()
                try:
                    end = await asyncio.wait_for(call.read(), 20)
                    assert end is grpc.aio.EOF, "the follow query on the replaced session ended"
                    new.log_lines[task.id] = ["after"]
                    entries = [e async for e in stub.Logs(control_pb2.LogsRequest(service="web"))]
                    assert [e.line for e in entries] == ["after"]
                finally:
                    await new.close()

    run(scenario())

