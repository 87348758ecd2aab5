"""Host networking across real namespace hosts: container to container across hosts by
address and by link name, published ports, masquerade, addresses across an agent restart,
clean teardown, and `moor agent --cleanup`. Real agents, kernel, packets and nftables."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

from pyroute2 import IPRoute

from agent.network import nat
from agent.network.links import BRIDGE
from agent.network.routes import RTPROT_MOORAGE
from moorage.localcluster.cluster import MOOR, NSENTER, AgentHost, LocalCluster
from moorage.localcluster.procs import Daemon, wait_for
from moorage.v1 import control_pb2, types_pb2
from tests.cluster.conftest import ClusterFactory
from tests.cluster.harness import moor, tasks, wait_tasks
from tests.agent.network.support import Responder, ask, entered

S = types_pb2.TaskState
PORT = 7000
# Answers every TCP connection on PORT with "pong from <hostname>".
SERVER = ["sh", "-c", f"trap 'exit 0' TERM; nc -ll -p {PORT} -e sh -c 'echo pong from $(hostname)' & wait"]
LOOP = "trap 'exit 0' TERM; while true; do sleep 0.2; done"


def spec(name: str, args: list[str], node: str = "", replicas: int = 1, **extra: object) -> types_pb2.ServiceSpec:
    placement = types_pb2.Placement(constraints=[f"node.id == {node}"] if node else [])
    return types_pb2.ServiceSpec(
        name=name, image="busybox", replicas=replicas, args=args, stop_grace_period=1, placement=placement,
        **extra,  # type: ignore[arg-type]
    )  # fmt: skip


def apply(cluster: LocalCluster, *specs: types_pb2.ServiceSpec) -> None:
    cluster.control().ApplyServices(control_pb2.ApplyServicesRequest(services=specs), timeout=10)


def running_with_addresses(count: int) -> Callable[[list[types_pb2.Task]], bool]:
    def check(found: list[types_pb2.Task]) -> bool:
        live = [t for t in found if t.desired_state == S.TASK_STATE_RUNNING]
        return len(live) == count and all(t.observed_state == S.TASK_STATE_RUNNING and t.address for t in live)

    return check


def netns_of(agent: AgentHost) -> Path:
    return Path("/run/netns") / agent.host.name


def node_subnets(cluster: LocalCluster) -> dict[str, str]:
    return {n.id: n.subnet for n in cluster.control().ListNodes(control_pb2.ListNodesRequest(), timeout=5).nodes}


def logs(cluster: LocalCluster, service: str) -> str:
    return moor(cluster, "logs", service).stdout


def wait_logs(cluster: LocalCluster, service: str, *needles: str) -> str:
    seen = [""]

    def check() -> bool:
        seen[0] = logs(cluster, service)
        return all(n in seen[0] for n in needles)

    try:
        wait_for(check, 30, f"{service} to log {needles}", interval=0.2)
    except TimeoutError as err:
        raise AssertionError(f"{err}; logs so far:\n{seen[0]}\n{cluster.logs()}") from err
    return seen[0]


def test_container_reaches_a_container_on_another_host_by_address_and_by_link(cluster_factory: ClusterFactory) -> None:
    cluster = cluster_factory(hosts=3)
    apply(cluster, spec("db", SERVER, node="h3"))
    (db,) = wait_tasks(cluster, "db", running_with_addresses(1), "db running with an address")
    assert db.node_id == "h3"
    subnets = node_subnets(cluster)
    assert len(set(subnets.values())) == 3 and all(subnets.values())
    assert db.address.rsplit(".", 1)[0] == subnets["h3"].rsplit(".", 1)[0]

    client = (
        f"cat /etc/hosts; echo by-ip: $(nc {db.address} {PORT} </dev/null); "
        f"echo by-link: $(nc db {PORT} </dev/null); echo by-alias: $(nc database {PORT} </dev/null); {LOOP}"
    )
    links = [types_pb2.Link(service="db", alias="database")]
    apply(cluster, spec("web", ["sh", "-c", client], node="h1", links=links))
    (web,) = wait_tasks(cluster, "web", running_with_addresses(1), "web running")
    assert web.node_id == "h1" and web.address != db.address

    pong = f"pong from db.1.{db.id}"
    out = wait_logs(cluster, "web", f"by-ip: {pong}", f"by-link: {pong}", f"by-alias: {pong}")
    assert f"{db.address}\tdb database" in out
    assert f"{web.address}\tweb.1.{web.id}" in out


def test_published_port_answers_on_the_host_address_from_another_host(cluster_factory: ClusterFactory) -> None:
    cluster = cluster_factory(hosts=2)
    ports = [types_pb2.PortMapping(host_port=8080, container_port=PORT, protocol="tcp")]
    apply(cluster, spec("web", SERVER, node="h1", ports=ports))
    (web,) = wait_tasks(cluster, "web", running_with_addresses(1), "web running")
    h1, h2 = cluster.agent("h1"), cluster.agent("h2")
    reply = ask(h1.host.address, 8080, netns_path=netns_of(h2))
    assert reply.decode().strip() == f"pong from web.1.{web.id}"


def test_outbound_traffic_is_masqueraded_through_the_host_address(cluster_factory: ClusterFactory) -> None:
    cluster = cluster_factory(hosts=2)
    h1, h2 = cluster.agent("h1"), cluster.agent("h2")
    with Responder(netns_of(h2), h2.host.address, 7100, b"seen\n") as responder:
        command = f"echo got: $(nc {h2.host.address} 7100 </dev/null); {LOOP}"
        apply(cluster, spec("out", ["sh", "-c", command], node="h1"))
        wait_logs(cluster, "out", "got: seen")
    assert responder.peers == [h1.host.address]  # not the container's own address


def interfaces(log: str) -> set[str]:
    return set(log.split("links:", 1)[1].splitlines()[0].split())


def test_host_and_none_networks_as_docker_has_them(cluster_factory: ClusterFactory) -> None:
    cluster = cluster_factory(hosts=1)
    show = ["sh", "-c", f"echo links: $(tail -n +3 /proc/net/dev | cut -d: -f1 | sort | xargs); {LOOP}"]
    apply(
        cluster,
        spec("onhost", show, network=types_pb2.NETWORK_MODE_HOST),
        spec("isolated", show, network=types_pb2.NETWORK_MODE_NONE),
    )
    assert interfaces(wait_logs(cluster, "onhost", "links:")) == {"eth0", "lo", BRIDGE}  # the host's own
    assert interfaces(wait_logs(cluster, "isolated", "links:")) == {"lo"}
    assert all(not t.address for t in tasks(cluster))  # neither has an address of its own


def test_two_services_cannot_share_a_host_port(cluster_factory: ClusterFactory) -> None:
    cluster = cluster_factory(hosts=1)
    ports = [types_pb2.PortMapping(host_port=8081, container_port=PORT, protocol="tcp")]
    apply(cluster, spec("first", SERVER, ports=ports))
    wait_tasks(cluster, "first", running_with_addresses(1), "first running")
    apply(cluster, spec("second", SERVER, ports=ports))

    def refused(found: list[types_pb2.Task]) -> bool:
        return bool(found) and all(
            t.observed_state in (S.TASK_STATE_PENDING, S.TASK_STATE_REJECTED) and "8081" in t.message for t in found
        )

    (second,) = wait_tasks(cluster, "second", refused, "second refused for its host port")
    assert second.observed_state == S.TASK_STATE_PENDING, f"placed anyway, refused by the host: {second.message}"


def test_addresses_survive_an_agent_restart_and_none_is_given_twice(cluster_factory: ClusterFactory) -> None:
    cluster = cluster_factory(hosts=1, node_ttl=10)  # the agent is back before its node could be marked down
    apply(cluster, spec("a", SERVER, replicas=3))
    before = {t.id: t.address for t in wait_tasks(cluster, "a", running_with_addresses(3), "a running")}
    agent = cluster.agents[0]
    subnet = node_subnets(cluster)["h1"]

    cluster.kill_agent(agent)
    cluster.start_agent(agent)
    cluster.wait_nodes_ready()
    apply(cluster, spec("b", SERVER, replicas=3))
    b = {t.id: t.address for t in wait_tasks(cluster, "b", running_with_addresses(3), "b running")}

    after = {t.id: t.address for t in wait_tasks(cluster, "a", running_with_addresses(3), "a still running")}
    assert after == before
    assert node_subnets(cluster)["h1"] == subnet
    assert len(set(before.values()) | set(b.values())) == 6
    # and the old containers still answer on them, each on its own
    replies = {ask(address, PORT, netns_path=netns_of(agent)).decode().strip() for address in before.values()}
    assert replies == {f"pong from a.{t.slot}.{t.id}" for t in tasks(cluster, "a")}


def attachments(agent: AgentHost) -> list[dict[str, object]]:
    folder = agent.state_dir / "network" / "attachments"
    return [json.loads(p.read_text()) for p in folder.glob("*.json")] if folder.exists() else []


def links_in(agent: AgentHost) -> set[str]:
    with entered(netns_of(agent)), IPRoute() as ipr:
        return {link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}


def published_in(agent: AgentHost) -> dict[tuple[str, int], tuple[str, int]]:
    with entered(netns_of(agent)):
        return nat.published()


def test_removing_every_container_leaves_no_veth_namespace_lease_or_nat_rule(cluster_factory: ClusterFactory) -> None:
    cluster = cluster_factory(hosts=2)
    ports = [types_pb2.PortMapping(host_port=8082, container_port=PORT, protocol="tcp")]
    apply(cluster, spec("web", SERVER, replicas=2, ports=ports), spec("plain", SERVER, replicas=2))
    wait_tasks(cluster, "web", running_with_addresses(2), "web running")
    wait_tasks(cluster, "plain", running_with_addresses(2), "plain running")
    made = {a.name: attachments(a) for a in cluster.agents}
    assert sum(len(v) for v in made.values()) == 4
    assert all(published_in(a) for a in cluster.agents)

    moor(cluster, "delete", "web", "--wait")
    moor(cluster, "delete", "plain", "--wait")
    for agent in cluster.agents:
        veths = {str(r["veth"]) for r in made[agent.name]}

        def released(agent: AgentHost = agent, veths: set[str] = veths) -> bool:
            return not attachments(agent) and not veths & links_in(agent)

        wait_for(released, 20, f"{agent.name} to release its leases and veths")
        assert not any(Path(str(r["netns"])).exists() for r in made[agent.name])
        assert published_in(agent) == {}
        assert BRIDGE in links_in(agent)  # the host's own network stays


def test_agent_cleanup_removes_bridge_routes_and_nat_table(cluster_factory: ClusterFactory) -> None:
    cluster = cluster_factory(hosts=2)
    agent = cluster.agent("h1")
    cluster.stop_agent(agent)
    assert BRIDGE in links_in(agent)  # a plain stop leaves the host network to the next start
    argv = [
        NSENTER, f"--net={netns_of(agent)}", "--", MOOR, "agent", "--cleanup",
        "--controller", cluster.controller_address, "--state-dir", str(agent.state_dir),
        "--node-id", agent.name, "--address", agent.host.address,
    ]  # fmt: skip
    log_path = agent.state_dir.parent / "agent-cleanup.log"
    daemon = Daemon("agent-cleanup", argv, log_path).start()
    try:
        wait_for(lambda: "routes to peers" in log_path.read_text(), 30, "the agent to set up its host network")
        with entered(netns_of(agent)), IPRoute() as ipr:
            assert ipr.get_routes(family=2, proto=RTPROT_MOORAGE)
    finally:
        daemon.stop(signal.SIGTERM)
    assert BRIDGE not in links_in(agent), log_path.read_text()
    with entered(netns_of(agent)), IPRoute() as ipr:
        assert not ipr.get_routes(family=2, proto=RTPROT_MOORAGE)
    nft = subprocess.run([NSENTER, f"--net={netns_of(agent)}", "nft", "list", "tables"], capture_output=True, text=True)
    assert "moorage" not in nft.stdout
