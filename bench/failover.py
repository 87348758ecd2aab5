"""Dead host → its tasks running elsewhere, and dead leader → a new leader.

Workload: one service of 6 replicas on 3 agent hosts (2 per host), node TTL
2 s (``--ttl``). Each round kills every process of the host holding slot 1
(agent, shims, containers: as a power cut would) and measures, polling the API
every 10 ms:

  detect   kill → the node is marked DOWN (its heartbeat lease expired)
  replace  kill → every slot it held RUNNING on another host (the target, ≤ 5 s)

then brings the host back for the next round. A second cluster partitions
(cuts the veth of) the host holding slot 1 instead, and measures:

  fenced   cut → none of the host's old containers runs (the cut-off agent
           stops them itself, a node TTL after it last heard a controller)
  twice    how long a slot ran on both sides: fenced minus the moment every
           replacement was RUNNING (0 if the fence came first)

A third cluster, with two controllers, measures kill -9 of the leader → the
other controller says it leads.

Anchors, in the same run: the node TTL itself (the floor of ``detect`` by
construction), and a fresh start of the same tasks on the same cluster (apply
→ running: what ``replace`` costs beyond detection if nothing were faster than
starting anew). Published anchors for the same event: Docker Swarm ~15 s +
restart delay (dispatcher heartbeat 5 s × grace), Kubernetes ~5 min 50 s with
its defaults (node-monitor-grace-period 50 s + 5 min pod eviction).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from agent.runtime.containers.containers import ContainerStatus, Runtime
from agent.runtime.images.store import ImageStore
from moorage.localcluster import busybox
from moorage.localcluster.cluster import AgentHost, LocalCluster
from moorage.localcluster.procs import wait_for
from moorage.v1 import control_pb2, types_pb2

HOSTS = 3
REPLICAS = 6
COMMAND = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
POLL = 0.01


def spec(name: str) -> types_pb2.ServiceSpec:
    return types_pb2.ServiceSpec(name=name, image="busybox", args=COMMAND, replicas=REPLICAS, stop_grace_period=1)


def live_running(cluster: LocalCluster, service: str, avoid: str = "") -> bool:
    found = cluster.control().ListTasks(control_pb2.ListTasksRequest(service=service), timeout=5).tasks
    live = [t for t in found if t.desired_state == types_pb2.TASK_STATE_RUNNING]
    return (
        sorted(t.slot for t in live) == list(range(1, REPLICAS + 1))
        and all(t.observed_state == types_pb2.TASK_STATE_RUNNING for t in live)
        and all(t.node_id != avoid for t in live)
    )


def node_down(cluster: LocalCluster, node_id: str) -> bool:
    node = cluster.control().GetNode(control_pb2.GetNodeRequest(id=node_id), timeout=5)
    return node.state == types_pb2.NODE_STATE_DOWN


def host_failover(rootfs: Path, work: Path, ttl: float, rounds: int) -> tuple[list[float], list[float], list[float]]:
    """(fresh starts, detect times, replace times) in seconds."""
    cluster = LocalCluster(work / "moorage-bench-failover", HOSTS, image_sources={"busybox": rootfs}, node_ttl=ttl)
    cluster.start()
    try:
        control = cluster.control()
        fresh: list[float] = []
        detect: list[float] = []
        replace: list[float] = []
        for round_ in range(rounds):
            name = f"web{round_}"
            started = time.monotonic()
            control.ApplyServices(control_pb2.ApplyServicesRequest(services=[spec(name)]), timeout=30)
            wait_for(lambda: live_running(cluster, name), 60, f"{name} running", interval=POLL)
            fresh.append(time.monotonic() - started)
            tasks = control.ListTasks(control_pb2.ListTasksRequest(service=name), timeout=5).tasks
            victim_id = next(t.node_id for t in tasks if t.slot == 1)
            victim = cluster.agent(victim_id)

            killed = time.monotonic()
            cluster.kill_host(victim)
            seen_down: list[float] = []

            def replaced() -> bool:
                if not seen_down and node_down(cluster, victim_id):
                    seen_down.append(time.monotonic())
                return live_running(cluster, name, avoid=victim_id)

            wait_for(replaced, 60, f"{name} off {victim_id}", interval=POLL)
            replace.append(time.monotonic() - killed)
            detect.append((seen_down[0] if seen_down else time.monotonic()) - killed)
            cluster.start_agent(victim)
            cluster.wait_nodes_ready()
            control.DeleteService(control_pb2.DeleteServiceRequest(name=name), timeout=10)
        return fresh, detect, replace
    finally:
        cluster.stop()


def running_containers(agent: AgentHost) -> set[str]:
    """The ids of the containers running on ``agent``'s host, read from its state directory."""
    runtime = Runtime(agent.state_dir, ImageStore(agent.state_dir / "images"))
    return {c.id for c in runtime.list() if c.status is ContainerStatus.RUNNING}


def partition_fencing(rootfs: Path, work: Path, ttl: float, rounds: int) -> tuple[list[float], list[float]]:
    """(partition → the host's old containers stopped, seconds a slot ran twice) per round."""
    cluster = LocalCluster(work / "moorage-bench-fence", HOSTS, image_sources={"busybox": rootfs}, node_ttl=ttl)
    cluster.start()
    try:
        control = cluster.control()
        fenced: list[float] = []
        twice: list[float] = []
        for round_ in range(rounds):
            name = f"cut{round_}"
            control.ApplyServices(control_pb2.ApplyServicesRequest(services=[spec(name)]), timeout=30)
            wait_for(lambda: live_running(cluster, name), 60, f"{name} running", interval=POLL)
            tasks = control.ListTasks(control_pb2.ListTasksRequest(service=name), timeout=5).tasks
            victim_id = next(t.node_id for t in tasks if t.slot == 1)
            victim = cluster.agent(victim_id)
            held = {t.id for t in tasks if t.node_id == victim_id}
            replaced_at: list[float] = []
            fenced_at: list[float] = []

            def settled() -> bool:
                moment = time.monotonic()
                if not replaced_at and live_running(cluster, name, avoid=victim_id):
                    replaced_at.append(moment)
                if not fenced_at and not held & running_containers(victim):
                    fenced_at.append(moment)
                return bool(replaced_at and fenced_at)

            cut = time.monotonic()
            cluster.partition(victim)
            try:
                wait_for(settled, 60, f"{name} replaced and {victim_id} fenced", interval=POLL)
            finally:
                cluster.heal(victim)
            fenced.append(fenced_at[0] - cut)
            twice.append(max(0.0, fenced_at[0] - replaced_at[0]))
            cluster.wait_nodes_ready()
            control.DeleteService(control_pb2.DeleteServiceRequest(name=name), timeout=10)
        return fenced, twice
    finally:
        cluster.stop()


def leader_failover(rootfs: Path, work: Path, rounds: int) -> list[float]:
    """Seconds from kill -9 of the leading controller to another one leading."""
    times: list[float] = []
    for round_ in range(rounds):
        base = work / f"moorage-bench-leader{round_}"
        cluster = LocalCluster(base, 1, image_sources={"busybox": rootfs}, controllers=2).start()
        try:
            leader = cluster.leader()
            killed = time.monotonic()
            cluster.kill_controller(leader)
            cluster.leader(timeout=30)
            times.append(time.monotonic() - killed)
        finally:
            cluster.stop()
    return times


def row(what: str, values: list[float], anchor: str) -> str:
    worst = max(values)
    return f"| {what} | {statistics.median(values):.2f} s | {worst:.2f} s | {anchor} |"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench failover")
    parser.add_argument("--ttl", type=float, default=2.0, help="node TTL in seconds (default 2)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="moorage-bench-") as tmp:
        work = Path(tmp)
        rootfs = busybox.make_rootfs(work / "rootfs")
        fresh, detect, replace = host_failover(rootfs, work, args.ttl, args.rounds)
        fenced, twice = partition_fencing(rootfs, work, args.ttl, args.rounds)
        leader = leader_failover(rootfs, work, args.rounds)
    print(f"{HOSTS} hosts, {REPLICAS} replicas (2 per host), node TTL {args.ttl:g} s, {args.rounds} rounds")
    print("| what | median | worst | anchor (same run) |")
    print("|---|---|---|---|")
    print(row("kill host → node DOWN", detect, f"node TTL {args.ttl:g} s"))
    print(row("kill host → its tasks RUNNING elsewhere", replace, f"target ≤ 5 s; fresh apply of {REPLICAS} tasks: "
              f"median {statistics.median(fresh):.2f} s"))
    print(row("partition host → its old tasks stopped (fenced)", fenced, f"node TTL {args.ttl:g} s + stop"))
    print(row("partition host → a slot running twice", twice, f"node TTL {args.ttl:g} s (the bound)"))
    print(row("kill -9 leader → new leader", leader, "leader lease TTL 2 s"))
    print("published: Swarm ~15 s + restart delay; Kubernetes defaults ~5 min 50 s")
