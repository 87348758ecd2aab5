"""Identity on the multi-host harness: real agents join with tokens over TLS, tokens rotate under
an apply, a removed node is locked out, a node whose certificate expired offline rejoins as itself."""

from __future__ import annotations

import pytest

from moorage import pki
from moorage.localcluster.procs import wait_for
from moorage.v1 import control_pb2, types_pb2
from tests.cluster.conftest import ClusterFactory
from tests.cluster.harness import moor, tasks, wait_tasks

pytestmark = pytest.mark.cluster

RUNNING = types_pb2.TASK_STATE_RUNNING


def live(cluster_tasks: list[types_pb2.Task]) -> list[types_pb2.Task]:
    """The tasks meant to run and running (a removed node's tasks stay as history)."""
    return [t for t in cluster_tasks if t.desired_state == RUNNING and t.observed_state == RUNNING]


def running(cluster_tasks: list[types_pb2.Task], count: int) -> bool:
    return len(live(cluster_tasks)) == count


def node_certificate(cluster: object, host: str) -> pki.Identity:
    agent = cluster.agent(host)  # type: ignore[attr-defined]
    return pki.identity((agent.state_dir / "identity" / "node.crt").read_bytes())


def test_agents_join_and_a_rotated_token_locks_out_new_joins_only(cluster_factory: ClusterFactory) -> None:
    cluster = cluster_factory(hosts=2)
    who = node_certificate(cluster, "h1")
    assert (who.name, who.role) == ("h1", pki.WORKER)
    assert oct((cluster.agent("h1").state_dir / "identity" / "node.key").stat().st_mode & 0o777) == "0o600"
    manifest = cluster.base / "web.yaml"
    manifest.write_text("name: web\nimage: busybox\nreplicas: 4\ncommand: [sleep, '1000']\n")
    moor(cluster, "apply", "-f", str(manifest))
    old = cluster.worker_token
    new = moor(cluster, "cluster", "join-token", "worker", "--rotate", "-q").stdout.strip()  # while the apply converges
    assert new != old and pki.parse_token(new).ca_digest == pki.parse_token(old).ca_digest
    wait_tasks(cluster, "web", lambda ts: running(ts, 4), "4 tasks running after the rotation")
    # A third host with the old token is refused and says so; with the new one it joins.
    cluster.worker_token = old  # the harness starts agents with its token
    third = cluster.add_host(3)
    assert third.daemon is not None
    wait_for(lambda: not third.daemon.alive(), 30, "the agent with a rotated token to give up")  # type: ignore[union-attr]
    assert "join refused" in third.daemon.tail() and "not valid" in third.daemon.tail()
    cluster.worker_token = new
    cluster.start_agent(third)
    cluster.wait_nodes_ready()
    assert node_certificate(cluster, "h3").name == "h3"
    # The already-joined nodes never needed the token again.
    assert {n.id for n in cluster.control().ListNodes(control_pb2.ListNodesRequest()).nodes} == {"h1", "h2", "h3"}


def test_a_removed_node_is_locked_out_and_its_tasks_move(cluster_factory: ClusterFactory) -> None:
    cluster = cluster_factory(hosts=2)
    manifest = cluster.base / "web.yaml"
    manifest.write_text("name: web\nimage: busybox\nreplicas: 2\ncommand: [sleep, '1000']\n")
    moor(cluster, "apply", "-f", str(manifest), "--wait")
    refused = moor(cluster, "node", "rm", "h2", check=False)
    assert refused.returncode != 0 and "drain it and stop its agent first" in refused.stderr
    out = moor(cluster, "node", "rm", "h2", "--force").stdout
    assert "node/h2 removed (1 certificate(s) revoked)" in out
    h2 = cluster.agent("h2")
    wait_for(lambda: "was revoked" in h2.daemon.tail(200) or "was removed" in h2.daemon.tail(200), 20,  # type: ignore[union-attr]
             "h2's agent to be told it was removed")  # fmt: skip
    wait_tasks(cluster, "web", lambda ts: running(ts, 2) and {t.node_id for t in live(ts)} == {"h1"}, "both tasks on h1")
    # h2's agent keeps its revoked certificate: it is refused at every reconnection.
    nodes = {n.id for n in cluster.control().ListNodes(control_pb2.ListNodesRequest()).nodes}
    assert "h2" not in nodes


def test_a_node_renews_online_and_rejoins_as_itself_after_expiring_offline(cluster_factory: ClusterFactory) -> None:
    cluster = cluster_factory(hosts=1, node_cert_ttl=6)
    joined = node_certificate(cluster, "h1")
    registered = cluster.control().GetNode(control_pb2.GetNodeRequest(id="h1")).registered_at
    agent = cluster.agent("h1")
    assert agent.daemon is not None
    # Online: renewed at 50-80 % of its life, over the live session (which is not ended for it).
    wait_for(lambda: node_certificate(cluster, "h1").serial != joined.serial, 15, "h1 to renew its certificate")
    assert "certificate renewed" in agent.daemon.tail(200) and "session ended" not in agent.daemon.tail(200)
    cluster.stop_agent(agent)
    last = node_certificate(cluster, "h1")
    wait_for(lambda: pki.now() > last.not_after, 15, "h1's certificate to expire")
    # A fresh token (the old one was rotated meanwhile) brings it back under the same id and key.
    cluster.worker_token = moor(cluster, "cluster", "join-token", "worker", "--rotate", "-q").stdout.strip()
    cluster.start_agent(agent)
    cluster.wait_nodes_ready()
    again = node_certificate(cluster, "h1")
    assert again.name == "h1" and again.serial not in (joined.serial, last.serial)
    node = cluster.control().GetNode(control_pb2.GetNodeRequest(id="h1"))
    assert node.registered_at == registered  # the same node, its history kept


def test_users_join_with_an_admin_token_or_get_a_read_only_certificate(cluster_factory: ClusterFactory) -> None:
    import os
    import subprocess

    from moorage.localcluster.cluster import MOOR

    cluster = cluster_factory(hosts=1)
    token = moor(cluster, "cluster", "join-token", "admin", "-q").stdout.strip()
    ops = cluster.base / "ops" / "config.yaml"
    env = {k: v for k, v in cluster.cli_env().items() if k not in ("MOOR_CONFIG", "MOOR_CONTROLLER")}
    joined = subprocess.run(
        [MOOR, "cluster", "join", "--token", token, "--name", "ops", "--controller", cluster.controller_address,
         "--config", str(ops)], env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert joined.returncode == 0, joined.stderr
    as_ops = {**env, "MOOR_CONFIG": str(ops)}
    nodes = subprocess.run([MOOR, "get", "nodes"], env=as_ops, capture_output=True, text=True, timeout=60)
    assert nodes.returncode == 0 and "h1" in nodes.stdout
    viewer = cluster.base / "viewer" / "config.yaml"
    made = subprocess.run([MOOR, "cluster", "user-cert", "viewer", "--role", "readonly", "--out", str(viewer)],
                          env=as_ops, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert made.returncode == 0, made.stderr
    as_viewer = {**env, "MOOR_CONFIG": str(viewer)}
    assert subprocess.run([MOOR, "get", "nodes"], env=as_viewer, capture_output=True, timeout=60).returncode == 0
    manifest = cluster.base / "web.yaml"
    manifest.write_text("name: web\nimage: busybox\nreplicas: 1\n")
    denied = subprocess.run([MOOR, "apply", "-f", str(manifest)], env=as_viewer, capture_output=True, text=True, timeout=60)
    assert denied.returncode != 0 and "readonly 'viewer' may not call ApplyServices" in denied.stderr
    # A worker token does not make an admin.
    worker = subprocess.run(
        [MOOR, "cluster", "join", "--token", cluster.worker_token, "--name", "sneaky", "--controller",
         cluster.controller_address, "--config", str(cluster.base / "sneaky.yaml")], env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert worker.returncode != 0 and "worker token" in worker.stderr
    assert not (cluster.base / "sneaky.yaml").exists()
    assert os.stat(ops.parent / "ops.key").st_mode & 0o777 == 0o600
