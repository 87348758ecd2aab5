"""controller.placement: snapshots and plan transactions (pure), then against a real etcd and controller."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from controller import placement
from controller.errors import ConflictError
from controller.store import Check, Put, Store, node_key, task_key
from moorage.localcluster.etcd import Etcd
from moorage.v1 import control_pb2, types_pb2
from scheduler import Attribute, Availability, Config, NodeInfo, Port, parse_constraint

from tests.controller.harness import agents, control, eventually, running_controller

S = types_pb2
RUNNING = S.TASK_STATE_RUNNING
SHUTDOWN = S.TASK_STATE_SHUTDOWN
STAMP = Timestamp(seconds=1_700_000_000)
GiB = 1 << 30


def spec(name: str = "web", *, cpu: int = 0, memory: int = 0, ports: tuple[int, ...] = (), constraints: tuple[str, ...] = (),
         replicas: int = 1, **extra: Any) -> S.ServiceSpec:  # fmt: skip
    s = S.ServiceSpec(name=name, image="busybox", replicas=replicas, **extra)
    s.resources.reservations.cpu_millis = cpu
    s.resources.reservations.memory_bytes = memory
    s.ports.extend(S.PortMapping(host_port=p, container_port=p) for p in ports)
    s.placement.constraints.extend(constraints)
    return s


def task(task_id: str, service: str = "web", node: str = "", desired: int = RUNNING, observed: int = S.TASK_STATE_NEW,
         slot: int = 1, task_spec: S.ServiceSpec | None = None) -> S.Task:  # fmt: skip
    t = S.Task(id=task_id, service=service, slot=slot, node_id=node, desired_state=desired, observed_state=observed)
    t.spec.CopyFrom(task_spec if task_spec is not None else spec(service))
    return t


def node(node_id: str, state: int = S.NODE_STATE_READY, **extra: Any) -> S.Node:
    return S.Node(id=node_id, hostname=f"host-{node_id}", state=state,
                  resources=S.Resources(cpu_millis=1000, memory_bytes=GiB), **extra)  # fmt: skip


# -- pure ------------------------------------------------------------------------------


def test_snapshot_counts_what_live_tasks_hold() -> None:
    nodes = [
        node("a", labels={"zone": "x"}, availability=S.NODE_AVAILABILITY_PAUSE),
        node("b", state=S.NODE_STATE_DOWN, availability=S.NODE_AVAILABILITY_DRAIN),
    ]
    web = spec(cpu=100, memory=10, ports=(80,))
    tasks = [
        task("1", node="a", task_spec=web),
        task("2", "db", node="a", task_spec=spec("db", cpu=50, ports=(5432,))),
        # stopping but still running: holds resources and ports, not counted for spread
        task("3", node="a", desired=SHUTDOWN, observed=RUNNING, task_spec=spec(cpu=1000, ports=(81,))),
        task("4", node="a", desired=SHUTDOWN, observed=SHUTDOWN, task_spec=spec(cpu=1000)),  # gone
        task("5", task_spec=web),  # not placed
    ]
    a, b = placement.snapshot(nodes, tasks)
    assert a == NodeInfo(
        id="a", hostname="host-a", ready=True, availability=Availability.PAUSE, cpu_millis=1000, memory_bytes=GiB,
        labels={"zone": "x"}, allocated_cpu_millis=1150, allocated_memory_bytes=10,
        used_ports=frozenset({Port(80), Port(5432), Port(81)}), service_counts={"web": 1, "db": 1},
    )  # fmt: skip
    assert (b.ready, b.availability, b.service_counts, b.allocated_cpu_millis) == (False, Availability.DRAIN, {}, 0)


def test_requirements_from_a_spec() -> None:
    s = spec(cpu=250, memory=GiB, ports=(80,), constraints=("node.labels.zone == a",), volumes_from=["data"])
    s.ports.append(S.PortMapping(host_port=53, container_port=53, protocol="udp"))
    s.ports.append(S.PortMapping(container_port=8080))  # not published: binds no host port
    s.placement.spread.append("node.labels.zone")
    s.placement.max_replicas_per_node = 2
    r = placement.requirements(s)
    assert (r.cpu_millis, r.memory_bytes, r.max_replicas_per_node, r.volumes_from) == (250, GiB, 2, ("data",))
    assert r.ports == (Port(80), Port(53, "udp"))
    assert r.constraints == (parse_constraint("node.labels.zone == a"),)
    assert r.spread == (Attribute("labels", "zone"),)
    host = spec(network=S.NETWORK_MODE_HOST)
    host.ports.append(S.PortMapping(container_port=8080))
    assert placement.requirements(host).ports == (Port(8080),)


def test_requests_parse_each_spec_once_and_name_bad_constraints() -> None:
    requests = placement.Requests()
    bad = task("x", task_spec=spec(constraints=("zone == a",)))
    assert requests.of(bad) == (
        "invalid placement: constraint 'zone == a': 'zone' is not a node attribute (node.id, node.hostname or "
        "node.labels.KEY)"
    )
    first, second = requests.of(task("1")), requests.of(task("2"))
    assert not isinstance(first, str) and not isinstance(second, str)
    assert first.requirements is second.requirements


def test_apply_plan_assigns_and_marks_pending_once() -> None:
    placed, waiting, already = task("p"), task("w"), task("q", observed=S.TASK_STATE_PENDING)
    already.message = "no nodes in the cluster"
    reasons = {"w": "no nodes in the cluster", "q": "no nodes in the cluster"}
    changed = placement.apply_plan([placed, waiting, already], {"p": "a"}, reasons, STAMP)
    assert [(t.id, t.node_id, t.observed_state, t.message) for t in changed] == [
        ("p", "a", S.TASK_STATE_ASSIGNED, ""),
        ("w", "", S.TASK_STATE_PENDING, "no nodes in the cluster"),
    ]
    assert all(t.updated_at == STAMP for t in changed)


def test_step_places_explains_and_moves_tasks_whose_node_lost_a_label() -> None:
    nodes = [node("a", labels={"zone": "b"}), node("b", labels={"zone": "a"}), node("c", state=S.NODE_STATE_DOWN)]
    in_a = spec("api", constraints=("node.labels.zone == a",))
    big = spec("big", memory=2 * GiB)
    tasks = [
        task("t1", "api", task_spec=in_a),
        task("t2", "big", task_spec=big),
        task("t3", "api", node="a", observed=RUNNING, slot=2, task_spec=in_a),  # a's zone changed: must move
        task("t4", "api", node="c", observed=RUNNING, slot=3, task_spec=in_a),  # down: the slot reconciler's job
        task("t5", "bad", task_spec=spec("bad", constraints=("node.cpu > 2",))),
    ]
    changed = {t.id: t for t in placement.step(nodes, tasks, Config(), STAMP)}
    assert set(changed) == {"t1", "t2", "t3", "t5"}
    assert (changed["t1"].node_id, changed["t1"].observed_state) == ("b", S.TASK_STATE_ASSIGNED)
    assert changed["t2"].observed_state == S.TASK_STATE_PENDING
    assert changed["t2"].message == "no node fits (2 nodes: insufficient memory; 1 node: down)"
    assert (changed["t3"].desired_state, changed["t3"].message) == (
        SHUTDOWN, "moved off a: constraint node.labels.zone == a not met"
    )  # fmt: skip
    assert changed["t5"].message.startswith("invalid placement: constraint 'node.cpu > 2'")


def test_transactions_fit_etcd_and_fence_each_node_they_place_on() -> None:
    nodes = [node("a", version=11), node("b", version=12)]
    changed = [task(f"t{i}", node="ab"[i % 2]) for i in range(300)] + [task("pending")]
    for i, t in enumerate(changed):
        t.version = 100 + i
    batches = placement.transactions(changed, nodes)
    assert all(len(ops) <= placement.MAX_TXN_OPS for ops in batches)
    puts = [op for ops in batches for op in ops if isinstance(op, Put)]
    assert sorted((op.key, op.expect) for op in puts) == sorted((task_key(t.id), t.version) for t in changed)
    for ops in batches:
        nodes_placed_on = {op.message.node_id for op in ops if isinstance(op, Put) and op.message.node_id}  # type: ignore[attr-defined]
        checks = [(op.key, op.expect) for op in ops if isinstance(op, Check)]
        assert sorted(checks) == sorted((node_key(n), {"a": 11, "b": 12}[n]) for n in nodes_placed_on)
    assert len(batches) == 3  # 301 puts and one check per node and transaction
    assert placement.transactions([], nodes) == []


# -- against a real etcd -----------------------------------------------------------------


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 60))


async def plan_once(store: Store) -> list[list[Any]]:
    """One writer's read and plan, not yet committed."""
    nodes, tasks = await store.list_nodes(), await store.list_tasks()
    return placement.transactions(placement.step(nodes.items, tasks.items, Config(), STAMP), nodes.items)


async def assigned(store: Store) -> dict[str, str]:
    return {t.id: t.node_id for t in (await store.list_tasks()).items if t.node_id}


def test_a_plan_conflicts_when_its_node_changed_and_the_re_plan_avoids_it(etcd: Etcd) -> None:
    async def scenario() -> None:
        store = await Store.connect([etcd.endpoint])
        try:
            await store.commit([Put(node_key(n.id), n, 0) for n in (node("a"), node("b"))])
            await store.commit([Put(task_key("t1"), task("t1"), 0)])
            first = await plan_once(store)
            target = next(op for op in first[0] if isinstance(op, Put)).message.node_id  # type: ignore[attr-defined]

            # the second writer drains the node the first plan chose
            drained = await store.get_node(target)
            assert drained is not None
            drained.availability = S.NODE_AVAILABILITY_DRAIN
            await store.commit([Put(node_key(target), drained, drained.version)])

            with pytest.raises(ConflictError):
                await store.commit(first[0])
            assert await assigned(store) == {}
            for ops in await plan_once(store):  # re-plan from a fresh read
                await store.commit(ops)
            assert await assigned(store) == {"t1": "b" if target == "a" else "a"}
        finally:
            await store.close()

    run(scenario())


def test_two_writers_placing_the_same_tasks_one_wins_the_other_re_plans_to_nothing(etcd: Etcd) -> None:
    async def scenario() -> None:
        store, other = await Store.connect([etcd.endpoint]), await Store.connect([etcd.endpoint])
        try:
            await store.commit([Put(node_key(n.id), n, 0) for n in (node("a"), node("b"))])
            await store.commit([Put(task_key(f"t{i}"), task(f"t{i}", slot=i), 0) for i in range(4)])
            mine, theirs = await plan_once(store), await plan_once(other)
            for ops in theirs:
                await other.commit(ops)
            placed = await assigned(store)
            assert sorted(placed.values()) == ["a", "a", "b", "b"]
            with pytest.raises(ConflictError):
                await store.commit(mine[0])
            assert await plan_once(store) == []  # nothing left to place, nothing moved
            assert await assigned(store) == placed
        finally:
            await store.close()
            await other.close()

    run(scenario())


def test_controller_marks_unplaceable_tasks_pending_with_counted_reasons(etcd: Etcd) -> None:
    specs = [
        spec("zoned", constraints=("node.labels.zone == a",)),  # the fake agents are in zone "test"
        spec("huge", memory=4 * GiB),  # they have 1 GiB each
        spec("http", ports=(80,), replicas=3),  # two nodes: one port 80 each
    ]
    expected = {
        "zoned": "no node fits (2 nodes: constraint node.labels.zone == a not met)",
        "huge": "no node fits (2 nodes: insufficient memory)",
        "http": "no node fits (2 nodes: port 80/tcp in use)",
    }

    async def scenario() -> None:
        async with running_controller(etcd.endpoint) as address, control(address) as stub:
            async with agents(address, "node-a", "node-b"):
                await stub.ApplyServices(control_pb2.ApplyServicesRequest(services=specs))

                async def pending() -> dict[str, set[str]]:
                    listed = (await stub.ListTasks(control_pb2.ListTasksRequest())).tasks
                    return {
                        s: {t.message for t in listed if t.service == s and t.observed_state == S.TASK_STATE_PENDING}
                        for s in expected
                    }

                async def explained() -> bool:
                    return await pending() == {s: {m} for s, m in expected.items()}

                await eventually(explained, "PENDING tasks with their reasons")
                listed = (await stub.ListTasks(control_pb2.ListTasksRequest(service="http"))).tasks
                assert sorted(t.node_id for t in listed if t.node_id) == ["node-a", "node-b"]

                async def on_services() -> bool:
                    for name, reason in expected.items():
                        service = await stub.GetService(control_pb2.GetServiceRequest(name=name))
                        if reason not in service.message:
                            return False
                    return True

                await eventually(on_services, "the reasons in each Service.message")

    run(scenario())
