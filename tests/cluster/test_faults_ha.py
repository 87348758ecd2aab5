"""The control plane's own faults: a leader controller killed, an etcd member lost."""

from __future__ import annotations

import grpc

from moorage.localcluster.procs import wait_for
from moorage.v1 import control_pb2, types_pb2
from tests.cluster.conftest import ClusterFactory
from tests.cluster.harness import one_running_per_slot, tasks, wait_tasks
from tests.cluster.test_faults import apply, spec


def test_killing_the_leader_during_an_apply_loses_and_duplicates_nothing(cluster_factory: ClusterFactory) -> None:
    cluster = cluster_factory(hosts=2, controllers=2)
    leader = cluster.leader()
    follower = next(c for c in cluster.controllers if c is not leader)
    assert not cluster.control(follower).GetVersion(control_pb2.GetVersionRequest(), timeout=5).leader

    request = control_pb2.ApplyServicesRequest(services=[spec("web", 4), spec("db", 2)])
    cluster.control(follower).ApplyServices(request, timeout=10)  # a follower takes writes too
    cluster.kill_controller(leader)

    assert cluster.leader() is follower
    wait_tasks(cluster, "web", one_running_per_slot(4), "web's four tasks running under the new leader")
    wait_tasks(cluster, "db", one_running_per_slot(2), "db's two tasks running under the new leader")
    # Each slot got exactly one task, ever: no duplicate was made and stopped meanwhile.
    everything = tasks(cluster, all=True)
    assert sorted((t.service, t.slot) for t in everything) == sorted(
        [("web", s) for s in range(1, 5)] + [("db", s) for s in range(1, 3)]
    )
    nodes = cluster.control().ListNodes(control_pb2.ListNodesRequest(), timeout=5).nodes
    assert all(n.state == types_pb2.NODE_STATE_READY for n in nodes)


def test_losing_an_etcd_member_in_steady_state_loses_nothing(cluster_factory: ClusterFactory) -> None:
    cluster = cluster_factory(hosts=2, etcd_members=3)
    apply(cluster, spec("web", 2))
    before = wait_tasks(cluster, "web", one_running_per_slot(2), "web running")

    cluster.etcd_daemons[0].kill()  # the member the controller talks to first

    def same_tasks() -> bool:
        try:
            return {t.id for t in tasks(cluster, "web")} == {t.id for t in before}
        except grpc.RpcError:
            return False

    wait_for(same_tasks, 20, "the controller to read the same tasks through another member")
    apply(cluster, spec("db", 2))
    wait_tasks(cluster, "db", one_running_per_slot(2), "a service applied after the loss running")
    assert {t.id for t in tasks(cluster, "web")} == {t.id for t in before}


def test_losing_an_etcd_member_during_an_apply_loses_nothing(cluster_factory: ClusterFactory) -> None:
    cluster = cluster_factory(hosts=2, etcd_members=3)
    apply(cluster, spec("web", 4))
    cluster.etcd_daemons[0].kill()

    wait_tasks(cluster, "web", one_running_per_slot(4), "web running despite the lost member")
    assert sorted(t.slot for t in tasks(cluster, "web", all=True)) == [1, 2, 3, 4]
