"""Placement throughput: the pure scheduler, then the controller's apply → assigned path.

1. ``scheduler.place`` on simulated fleets of 100, 1,000 and 5,000 nodes for
   1,000, 10,000 and 100,000 tasks (services of 10 replicas with a mix of
   reservations, host ports, zone constraints, zone spread and max-per-node).
   Anchor measured in the same run: a naive placer built from the same checks
   and rankers that scans and scores every node for every task (no sampling,
   no levels, no cached node checks, no memory of full nodes). Published
   anchors: Nomad's C1M placed ~3,750 containers/s with five servers;
   kube-scheduler's performance thresholds are 680-810 pods/s at 5,000 nodes.
2. End to end: a real etcd, a real ``moor controller`` process and simulated
   agents (lightweight AgentSession clients, all in this process, heartbeating)
   — the time from one ApplyServices call to every task assigned in etcd, and
   to every agent holding its full assignment set. Also the controller's
   placement pass alone (read all, plan, commit) on 10,000 waiting tasks.

Run: ``.venv/bin/python -m bench scheduler`` (or ``python -m bench.scheduler --help``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import aetcd
import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from controller import placement
from controller.store import Op, Put, Store, node_key, task_key
from moorage.localcluster.etcd import Etcd
from moorage.localcluster.procs import Daemon, free_port, port_open, wait_for
from moorage.v1 import agent_pb2, agent_pb2_grpc, control_pb2, control_pb2_grpc, types_pb2
from scheduler import (
    Attribute,
    Config,
    NodeInfo,
    Plan,
    Port,
    Reasons,
    Requirements,
    TaskRequest,
    parse_constraint,
    place,
)
from scheduler.feasible import explain, fit_checks, node_checks
from scheduler.ledger import Ledger
from scheduler.rank import best, rankers

NODES = (100, 1_000, 5_000)
TASKS = (1_000, 10_000, 100_000)
NAIVE_BUDGET = 10_000_000  # nodes x tasks above which the naive anchor would take minutes
REPLICAS = 10
GiB = 1 << 30
ZONE = Attribute("labels", "zone")
NOMAD_C1M = 3_750
KUBE_SCHEDULER_5K = (680, 810)


# -- the simulated fleet and workload ------------------------------------------------------


def fleet(count: int, seed: int = 1) -> list[NodeInfo]:
    """Nodes of 16 cores / 64 GiB in three zones, some already partly reserved."""
    rng = random.Random(seed)
    return [
        NodeInfo(
            id=f"node-{i:05d}",
            hostname=f"host-{i:05d}",
            cpu_millis=16_000,
            memory_bytes=64 * GiB,
            labels={"zone": f"z{i % 3}", "disk": rng.choice(["ssd", "hdd", "nvme"])},
            allocated_cpu_millis=rng.choice([0, 0, 2_000, 4_000]),
            allocated_memory_bytes=rng.choice([0, 0, 8 * GiB]),
        )
        for i in range(count)
    ]


def workload(count: int, seed: int = 2) -> list[TaskRequest]:
    """Services of ``REPLICAS`` tasks; each service draws its requirements."""
    rng = random.Random(seed)
    tasks: list[TaskRequest] = []
    for s in range((count + REPLICAS - 1) // REPLICAS):
        roll = rng.random()
        requirements = Requirements(
            cpu_millis=rng.choice([100, 250, 500, 1_000]),
            memory_bytes=rng.choice([128, 256, 512, 1_024]) << 20,
            ports=(Port(rng.choice([80, 443, 8080, 9090])),) if roll < 0.1 else (),
            constraints=(
                (parse_constraint(f"node.labels.zone == z{s % 3}"),)
                if roll < 0.2
                else (parse_constraint("node.labels.disk in (ssd, nvme)"),)
                if roll < 0.3
                else ()
            ),
            spread=(ZONE,) if 0.3 <= roll < 0.6 else (),
            max_replicas_per_node=1 if 0.6 <= roll < 0.7 else 0,
        )
        tasks += [TaskRequest(f"s{s}-{r}", f"s{s}", requirements) for r in range(REPLICAS)]
    return tasks[:count]


def naive_place(tasks: Sequence[TaskRequest], nodes: Sequence[NodeInfo], config: Config = Config()) -> Plan:
    """The anchor: every node through every check, every feasible node scored, per task."""
    ledger = Ledger(sorted(nodes, key=lambda n: n.id))
    everyone = list(range(len(ledger.nodes)))
    placements: dict[str, str] = {}
    unplaced: dict[str, Reasons] = {}
    for task in tasks:
        checks = node_checks(task.requirements) + fit_checks(task.service, task.requirements)
        feasible = everyone
        for check in checks:
            feasible = check.keep(ledger, feasible)
        if not feasible:
            unplaced[task.task_id] = explain(ledger, checks)
            continue
        chosen = best(feasible, rankers(task.service, task.requirements, config.strategy), ledger)
        ledger.place(chosen, task.service, task.requirements)
        placements[task.task_id] = ledger.nodes[chosen].id
    return Plan(placements, unplaced)


def timed(fn: Callable[[], Plan]) -> tuple[float, Plan]:
    """CPU seconds of this process (the machine is shared: wall time would count other work)."""
    started = time.process_time()
    plan = fn()
    return time.process_time() - started, plan


def bench_pure(node_counts: Sequence[int], task_counts: Sequence[int]) -> None:
    print("### scheduler.place, one process (CPU time)")
    print(f"sampling: {Config().sample or 'adaptive'} (see scheduler.place.sample_size); naive anchor skipped "
          f"where nodes x tasks > {NAIVE_BUDGET:,} (it would take minutes)")  # fmt: skip
    print()
    print("| nodes | tasks | placed | tasks/s | us/task | naive tasks/s | speed-up |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    per_task: dict[tuple[int, int], float] = {}
    for n in node_counts:
        nodes = fleet(n)
        for t in task_counts:
            tasks = workload(t)
            seconds, plan = timed(lambda: place(tasks, nodes))
            per_task[(n, t)] = seconds / t
            naive = "skipped"
            ratio = "-"
            if n * t <= NAIVE_BUDGET:
                naive_seconds, naive_plan = timed(lambda: naive_place(tasks, nodes))
                naive = f"{t / naive_seconds:,.0f}"
                ratio = f"{naive_seconds / seconds:.0f}x"
                assert len(naive_plan.placements) + len(naive_plan.unplaced) == t
            print(f"| {n:,} | {t:,} | {len(plan.placements):,} | {t / seconds:,.0f} | {seconds / t * 1e6:,.0f} "
                  f"| {naive} | {ratio} |", flush=True)  # fmt: skip
    print()
    print("cost growth (us per task relative to the smallest fleet, same task count):")
    base = node_counts[0]
    for t in task_counts:
        growth = ", ".join(f"{n:,} nodes {per_task[(n, t)] / per_task[(base, t)]:.1f}x" for n in node_counts)
        print(f"- {t:,} tasks: {growth}")
    print(f"anchors: Nomad C1M ~{NOMAD_C1M:,}/s (5 servers); kube-scheduler {KUBE_SCHEDULER_5K[0]}-"
          f"{KUBE_SCHEDULER_5K[1]} pods/s at 5,000 nodes (published figures)")  # fmt: skip


# -- end to end: etcd + controller + simulated agents --------------------------------------


class SimAgent:
    """An AgentSession client that registers, heartbeats and records what it is assigned."""

    def __init__(self, address: str, node_id: str) -> None:
        self.node_id = node_id
        self.assigned = 0
        self.registered = asyncio.Event()
        self._channel = grpc.aio.insecure_channel(address)
        self._outbox: asyncio.Queue[agent_pb2.AgentMessage | None] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None

    def start(self) -> None:
        register = agent_pb2.Register(
            node_id=self.node_id,
            hostname=self.node_id,
            address="10.231.0.9",
            resources=types_pb2.Resources(cpu_millis=64_000, memory_bytes=256 * GiB),
        )
        self._outbox.put_nowait(agent_pb2.AgentMessage(register=register))
        call = agent_pb2_grpc.AgentSessionStub(self._channel).Session(self._requests())
        self._reader = asyncio.create_task(self._read(call))

    async def close(self) -> None:
        self._outbox.put_nowait(None)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self._channel.close()

    async def _requests(self) -> AsyncIterator[agent_pb2.AgentMessage]:
        while (message := await self._outbox.get()) is not None:
            yield message

    async def _read(self, call: AsyncIterator[agent_pb2.ControllerMessage]) -> None:
        beat: asyncio.Task[None] | None = None
        try:
            async for message in call:
                kind = message.WhichOneof("body")
                if kind == "registered":
                    self.registered.set()
                    beat = asyncio.create_task(self._heartbeat(message.registered.heartbeat_interval or 1.0))
                elif kind == "assignments":
                    self.assigned = sum(t.desired_state == types_pb2.TASK_STATE_RUNNING for t in message.assignments.tasks)
        finally:
            if beat is not None:
                beat.cancel()

    async def _heartbeat(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self._outbox.put_nowait(agent_pb2.AgentMessage(heartbeat=agent_pb2.Heartbeat()))


async def assigned_in_etcd(endpoint: str) -> int:
    host, _, port = endpoint.rpartition(":")
    async with aetcd.Client(host=host, port=int(port)) as client:
        values = [kv.value for kv in await client.get_prefix(b"/moorage/tasks/")]
    return sum(1 for v in values if types_pb2.Task.FromString(v).node_id)


async def until(predicate: Callable[[], object], timeout: float, what: str) -> float:
    """Seconds until ``predicate`` (sync or async) holds, polled every 50 ms."""
    started = time.perf_counter()
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return time.perf_counter() - started
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.05)


async def placement_pass(task_count: int, node_count: int, work: Path) -> None:
    """The controller's placement step alone against a real etcd: read every node
    and task, plan, commit the plan's transactions (what ``Reconciler._place`` does)."""
    etcd = Etcd(work / "etcd-pass").start()
    try:
        store = await Store.connect([etcd.endpoint])
        try:
            nodes = [
                types_pb2.Node(id=f"sim-{i:04d}", hostname=f"sim-{i:04d}", state=types_pb2.NODE_STATE_READY,
                               resources=types_pb2.Resources(cpu_millis=64_000, memory_bytes=256 * GiB))
                for i in range(node_count)
            ]  # fmt: skip
            writes: list[Op] = [Put(node_key(n.id), n, 0) for n in nodes]
            for i in range(task_count):
                task = types_pb2.Task(id=f"t{i:06d}", service=f"svc{i // 100}", slot=i % 100 + 1,
                                      desired_state=types_pb2.TASK_STATE_RUNNING)  # fmt: skip
                task.spec.CopyFrom(types_pb2.ServiceSpec(name=task.service, image="busybox", replicas=100))
                task.spec.resources.reservations.cpu_millis = 100
                writes.append(Put(task_key(task.id), task, 0))
            for batch in range(0, len(writes), placement.MAX_TXN_OPS):
                await store.commit(writes[batch : batch + placement.MAX_TXN_OPS])

            started = time.perf_counter()
            tasks, listed_nodes = await store.list_tasks(), await store.list_nodes()
            read = time.perf_counter()
            changed = placement.step(listed_nodes.items, tasks.items, Config(), Timestamp())
            planned = time.perf_counter()
            batches = placement.transactions(changed, listed_nodes.items)
            for ops in batches:
                await store.commit(ops)
            committed = time.perf_counter()
        finally:
            await store.close()
    finally:
        etcd.stop()
    assigned = sum(1 for t in changed if t.node_id)
    print(f"### the controller's placement pass: {task_count:,} waiting tasks, {node_count} nodes, real etcd")
    print()
    print("| step | seconds | tasks/s |")
    print("|---|---:|---:|")
    print(f"| read every task and node | {read - started:.2f} | {task_count / (read - started):,.0f} |")
    print(f"| snapshot + plan ({assigned:,} assigned) | {planned - read:.2f} | {task_count / (planned - read):,.0f} |")
    print(f"| commit ({len(batches)} transactions) | {committed - planned:.2f} | "
          f"{task_count / (committed - planned):,.0f} |")  # fmt: skip
    print(f"| whole pass | {committed - started:.2f} | {task_count / (committed - started):,.0f} |")


async def end_to_end(task_count: int, agent_count: int, work: Path, timeout: float) -> None:
    async with contextlib.AsyncExitStack() as cleanup:  # stops everything, also on failure
        etcd = Etcd(work / "etcd").start()
        cleanup.callback(etcd.stop)
        port = free_port()
        address = f"127.0.0.1:{port}"
        moor = str(Path(sys.executable).with_name("moor"))
        controller = Daemon(
            "controller", [moor, "controller", "--listen", address, "--etcd", etcd.endpoint], work / "controller.log"
        ).start()
        cleanup.callback(controller.stop)
        wait_for(lambda: controller.check_alive() or port_open("127.0.0.1", port), 30, "controller listening")
        agents = [SimAgent(address, f"sim-{i:04d}") for i in range(agent_count)]
        for agent in agents:  # one by one: registration is not what is measured
            cleanup.push_async_callback(agent.close)
            agent.start()
            await asyncio.wait_for(agent.registered.wait(), 30)
        services = task_count // 100
        specs = [
            types_pb2.ServiceSpec(name=f"svc{i}", image="busybox", args=["sleep", "1d"], replicas=100)
            for i in range(services)
        ]

        async def all_assigned() -> bool:
            return await assigned_in_etcd(etcd.endpoint) >= task_count

        async with grpc.aio.insecure_channel(address) as channel:
            stub = control_pb2_grpc.ControlStub(channel)
            started = time.perf_counter()
            await stub.ApplyServices(control_pb2.ApplyServicesRequest(services=specs), timeout=60)
            applied = time.perf_counter() - started
            in_etcd = applied + await until(all_assigned, timeout, "all tasks assigned in etcd")
            at_agents = in_etcd + await until(
                lambda: sum(a.assigned for a in agents) >= task_count, timeout, "every agent holding its tasks"
            )
    print(f"### end to end: {services} services x 100 replicas = {task_count:,} tasks, {agent_count} simulated agents")
    print()
    print("| from ApplyServices to | seconds | tasks/s |")
    print("|---|---:|---:|")
    print(f"| the call returned | {applied:.2f} | |")
    print(f"| all tasks assigned in etcd | {in_etcd:.2f} | {task_count / in_etcd:,.0f} |")
    print(f"| every agent holds its full set | {at_agents:.2f} | {task_count / at_agents:,.0f} |")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scheduler", description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="*", default=list(NODES))
    parser.add_argument("--tasks", type=int, nargs="*", default=list(TASKS))
    parser.add_argument("--pass-tasks", type=int, default=10_000, help="tasks in the placement pass (0: skip it)")
    parser.add_argument("--e2e-tasks", type=int, default=2_000, help="tasks in the end-to-end run (0: skip it)")
    parser.add_argument("--agents", type=int, default=20, help="simulated agents (and nodes) in both controller runs")
    parser.add_argument("--timeout", type=float, default=600.0, help="end-to-end deadline in seconds")
    args = parser.parse_args(argv)
    bench_pure(args.nodes, args.tasks)
    with tempfile.TemporaryDirectory(prefix="moorage-bench-scheduler-") as work:
        if args.pass_tasks:
            print()
            asyncio.run(placement_pass(args.pass_tasks, args.agents, Path(work)))
        if args.e2e_tasks:
            print()
            asyncio.run(end_to_end(args.e2e_tasks, args.agents, Path(work), args.timeout))


if __name__ == "__main__":
    main(sys.argv[1:])
