"""Faults injected into a running cluster: dead hosts, restarted agents,
partitions (the cut-off host fences itself), and a crashing container. Real etcd, controllers, agents and
containers; the faults are real kills and a real cut veth."""

from __future__ import annotations

from moorage.localcluster.cluster import LocalCluster
from moorage.localcluster.procs import wait_for
from moorage.v1 import control_pb2, types_pb2
from tests.cluster.conftest import ClusterFactory
from tests.cluster.harness import (
    containers,
    live,
    one_running_per_slot,
    running_containers,
    tasks,
    wait_tasks,
)

S = types_pb2.TaskState
TTL = 2.0
GRACE = 2.0
LOOP = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]


def spec(name: str, replicas: int, args: list[str] = LOOP, **extra: object) -> types_pb2.ServiceSpec:
    return types_pb2.ServiceSpec(
        name=name, image="busybox", replicas=replicas, args=args,
        stop_grace_period=GRACE, **extra,  # type: ignore[arg-type]
    )


def apply(cluster: LocalCluster, *specs: types_pb2.ServiceSpec) -> None:
    cluster.control().ApplyServices(control_pb2.ApplyServicesRequest(services=specs), timeout=10)


def node_state(cluster: LocalCluster, node_id: str) -> int:
    return cluster.control().GetNode(control_pb2.GetNodeRequest(id=node_id), timeout=5).state


def test_killed_host_tasks_run_on_the_others_and_stay_stopped_when_it_returns(cluster_factory: ClusterFactory) -> None:
    cluster = cluster_factory(hosts=3, node_ttl=TTL)
    apply(cluster, spec("web", 6))
    before = wait_tasks(cluster, "web", one_running_per_slot(6), "six web tasks running")
    victim = cluster.agent("h1")
    lost = {t.id for t in before if t.node_id == victim.name}
    assert lost, "spread placed nothing on h1"

    killed = cluster.kill_host(victim)
    assert killed >= {p.pid for p in containers(victim).values() if p.pid}

    after = wait_tasks(cluster, "web", one_running_per_slot(6, avoid="h1"), "web back to six tasks without h1")
    assert not lost & {t.id for t in live(after)}
    assert node_state(cluster, "h1") == types_pb2.NODE_STATE_DOWN

    # The host comes back: its agent learns the old tasks are not its own any more.
    cluster.start_agent(victim)
    cluster.wait_nodes_ready()
    wait_for(lambda: not running_containers(victim) & lost, 20, "h1 to run none of its old tasks")
    history = {t.id: t for t in tasks(cluster, "web", all=True)}
    assert all(history[i].desired_state == S.TASK_STATE_SHUTDOWN for i in lost if i in history)
    assert one_running_per_slot(6)(tasks(cluster, "web"))


def test_restarted_agent_readopts_its_containers(cluster_factory: ClusterFactory) -> None:
    cluster = cluster_factory(hosts=2, node_ttl=3)
    apply(cluster, spec("web", 2))
    before = wait_tasks(cluster, "web", one_running_per_slot(2), "both web tasks running")
    agent = cluster.agents[0]
    pids = {c.id: c.pid for c in containers(agent).values()}
    assert pids and all(pids.values())

    cluster.kill_agent(agent)
    cluster.start_agent(agent)
    cluster.wait_nodes_ready()
    after = wait_tasks(cluster, "web", one_running_per_slot(2), "both web tasks running after the restart")

    assert {t.id for t in after} == {t.id for t in before}
    assert {c.id: c.pid for c in containers(agent).values()} == pids
    assert node_state(cluster, agent.name) == types_pb2.NODE_STATE_READY


def test_partitioned_host_fences_itself_and_rejoins_after_healing(cluster_factory: ClusterFactory) -> None:
    cluster = cluster_factory(hosts=3, node_ttl=TTL)
    apply(cluster, spec("web", 3))
    before = wait_tasks(cluster, "web", one_running_per_slot(3), "three web tasks running")
    victim = cluster.agent("h2")
    cut_off = {t.id for t in before if t.node_id == victim.name}
    assert cut_off

    cluster.partition(victim)
    try:
        wait_tasks(cluster, "web", one_running_per_slot(3, avoid="h2"), "web replaced off the partitioned h2")
        # Still cut off, h2 hears no controller for a TTL and stops its old tasks (grace 2 s) by itself.
        wait_for(lambda: not set(containers(victim)) & cut_off, TTL + GRACE + 10, "the partitioned h2 to fence")
        assert not running_containers(victim)
    finally:
        cluster.heal(victim)

    wait_for(lambda: node_state(cluster, "h2") == types_pb2.NODE_STATE_READY, 30, "h2 ready again")
    after = wait_tasks(cluster, "web", one_running_per_slot(3), "three web tasks running after healing")
    assert not cut_off & {t.id for t in live(after)}
    assert not set(containers(victim)) & cut_off


def test_failing_container_is_restarted_on_its_host_until_the_policy_gives_up(cluster_factory: ClusterFactory) -> None:
    cluster = cluster_factory(hosts=2)
    policy = types_pb2.RestartPolicy(condition=types_pb2.RestartPolicy.CONDITION_ON_FAILURE, max_attempts=2, delay=0.1)
    apply(cluster, spec("crash", 1, args=["sh", "-c", "exit 3"], restart=policy))

    def gave_up() -> bool:
        service = cluster.control().GetService(control_pb2.GetServiceRequest(name="crash"), timeout=5)
        return "gave up after 2 restarts" in service.message

    wait_for(gave_up, 30, "the restart policy to give up")
    history = tasks(cluster, "crash", all=True)
    assert [(t.slot, t.observed_state, t.exit_code) for t in history] == [(1, S.TASK_STATE_FAILED, 3)] * 3
    assert [t.restarts for t in history] == [0, 1, 2]
    assert len({t.node_id for t in history}) == 1  # restarted where it ran
    assert [t.id for t in tasks(cluster, "crash")] == [history[-1].id]  # without --all: the current one


def test_drained_node_hands_its_tasks_over_and_takes_none(cluster_factory: ClusterFactory) -> None:
    cluster = cluster_factory(hosts=2)
    apply(cluster, spec("web", 2))
    wait_tasks(cluster, "web", one_running_per_slot(2), "both web tasks running")
    drain = control_pb2.UpdateNodeRequest(id="h1", availability=types_pb2.NODE_AVAILABILITY_DRAIN)
    assert cluster.control().UpdateNode(drain, timeout=5).availability == types_pb2.NODE_AVAILABILITY_DRAIN

    wait_tasks(cluster, "web", one_running_per_slot(2, avoid="h1"), "web off the drained h1")
    wait_for(lambda: not running_containers(cluster.agents[0]), 20, "h1 to stop its containers")
    activate = control_pb2.UpdateNodeRequest(id="h1", availability=types_pb2.NODE_AVAILABILITY_ACTIVE)
    cluster.control().UpdateNode(activate, timeout=5)
    apply(cluster, spec("web", 4))
    found = wait_tasks(cluster, "web", one_running_per_slot(4), "four web tasks running")
    assert "h1" in {t.node_id for t in found}
