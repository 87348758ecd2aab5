"""NodeNetwork on the real kernel, inside a throwaway host namespace: bridge, leases, veths,
routes, NAT and real TCP connections between container namespaces."""

from __future__ import annotations

import ipaddress
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyroute2 import IPRoute

from agent.network import BRIDGE_MODE, HOST_MODE, NONE_MODE, NodeNetwork, PortInUse, PortMapping, netns_path
from agent.network import links, nat
from agent.network.errors import NotConfigured
from agent.network.routes import RTPROT_MOORAGE
from moorage.localcluster.procs import wait_for
from tests.agent.network.support import HOST_ADDRESS, Responder, ask, throwaway_host

SUBNET = "10.244.5.0/24"
CLUSTER = "10.244.0.0/16"


@pytest.fixture
def host() -> Iterator[Path]:
    with throwaway_host() as path:
        yield path


@pytest.fixture
def network(host: Path, tmp_path: Path) -> Iterator[NodeNetwork]:
    node = NodeNetwork(tmp_path / "moorage-state", HOST_ADDRESS)
    node.configure(SUBNET, CLUSTER, masquerade=True)
    try:
        yield node
    finally:
        node.collect(())  # every pin goes; the rest goes with the host namespace


def link_names() -> set[str]:
    with IPRoute() as ipr:
        return {link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}


def bridge_addresses() -> set[str]:
    with IPRoute() as ipr:
        index = ipr.link_lookup(ifname=links.BRIDGE)[0]
        return {f"{m.get_attr('IFA_ADDRESS')}/{m['prefixlen']}" for m in ipr.get_addr(index=index, family=2)}


def test_configure_makes_the_bridge_with_the_gateway_and_follows_a_new_subnet(network: NodeNetwork) -> None:
    assert bridge_addresses() == {"10.244.5.1/24"}
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == "1"
    network.configure("10.244.6.0/24", CLUSTER, masquerade=False)
    assert bridge_addresses() == {"10.244.6.1/24"}
    table = subprocess.run(["nft", "list", "table", "ip", "moorage"], capture_output=True, text=True, check=True)
    assert "masquerade" not in table.stdout


def test_attach_before_configure_is_refused(host: Path, tmp_path: Path) -> None:
    with pytest.raises(NotConfigured):
        NodeNetwork(tmp_path / "moorage-state", HOST_ADDRESS).attach("c1", BRIDGE_MODE)


def test_containers_get_distinct_addresses_and_talk_over_the_bridge(network: NodeNetwork) -> None:
    a = network.attach("a", BRIDGE_MODE)
    b = network.attach("b", BRIDGE_MODE)
    assert {a.address, b.address} == {"10.244.5.2", "10.244.5.3"}
    assert {a.veth, b.veth} <= link_names()
    with Responder(a.netns, a.address, 8080, b"from a") as responder:
        assert ask(a.address, 8080, netns_path=b.netns) == b"from a"
    assert responder.peers == [b.address]


def test_container_namespace_has_lo_eth0_and_a_default_route_via_the_gateway(network: NodeNetwork) -> None:
    a = network.attach("a", BRIDGE_MODE)
    out = subprocess.run(["nsenter", f"--net={a.netns}", "ip", "-o", "route"], capture_output=True, text=True).stdout
    assert "default via 10.244.5.1 dev eth0" in out
    with Responder(a.netns, "127.0.0.1", 7000, b"lo works"):
        assert ask("127.0.0.1", 7000, netns_path=a.netns) == b"lo works"


def test_host_and_none_modes_make_no_interfaces(network: NodeNetwork) -> None:
    before = link_names()
    host = network.attach("h", HOST_MODE, [PortMapping(80, 80)])
    none = network.attach("n", NONE_MODE)
    assert netns_path(host) is None and netns_path(none) is None
    assert host.address == none.address == "" and link_names() == before
    assert nat.published() == {}
    assert network.collect(()) == ["h", "n"]  # their records go with them too


def test_leases_survive_a_restart_and_no_address_is_handed_out_twice(network: NodeNetwork, tmp_path: Path) -> None:
    first = [network.attach(f"c{i}", BRIDGE_MODE).address for i in range(3)]
    network.detach("c1")
    restarted = NodeNetwork(tmp_path / "moorage-state", HOST_ADDRESS)  # what the restarted agent makes
    try:
        restarted.configure(SUBNET, CLUSTER, masquerade=True)
        assert restarted.address("c0") == first[0] and restarted.address("c2") == first[2]
        fresh = [restarted.attach(f"d{i}", BRIDGE_MODE).address for i in range(3)]
        assert not set(fresh) & {first[0], first[2]} and len(set(fresh)) == 3
        assert first[1] not in fresh  # a released address is not reused at once
    finally:
        restarted.collect(())  # the fixture's object never saw d0..d2: their pins go here


def test_published_port_reaches_the_container_and_goes_with_it(network: NodeNetwork) -> None:
    a = network.attach("a", BRIDGE_MODE, [PortMapping(9090, 8080)])
    assert nat.published() == {("tcp", 9090): (a.address, 8080)}
    with Responder(a.netns, "0.0.0.0", 8080, b"published"):
        assert ask(HOST_ADDRESS, 9090) == b"published"
    network.detach("a")
    assert nat.published() == {}


def test_a_host_port_is_published_once(network: NodeNetwork) -> None:
    network.attach("a", BRIDGE_MODE, [PortMapping(9090, 80)])
    with pytest.raises(PortInUse, match="9090"):
        network.attach("b", BRIDGE_MODE, [PortMapping(9091, 80), PortMapping(9090, 81)])
    assert network.address("b") == ""  # refused entirely: no lease, no mapping
    assert set(nat.published()) == {("tcp", 9090)}
    network.attach("c", BRIDGE_MODE, [PortMapping(9090, 80, "udp")])  # another protocol is another port


def test_a_port_a_host_process_listens_on_is_refused(network: NodeNetwork) -> None:
    with socket.create_server((HOST_ADDRESS, 0)) as listener:
        port = listener.getsockname()[1]
        with pytest.raises(PortInUse, match="a process of the host listens"):
            network.attach("a", BRIDGE_MODE, [PortMapping(port, 80)])


def test_detach_removes_veth_pin_lease_and_mapping(network: NodeNetwork, tmp_path: Path) -> None:
    a = network.attach("a", BRIDGE_MODE, [PortMapping(9090, 80)])
    network.detach("a")
    assert a.veth not in link_names()
    assert not Path(a.netns).exists()
    assert network.address("a") == "" and nat.published() == {}
    assert list((tmp_path / "moorage-state" / "network" / "attachments").iterdir()) == []
    network.detach("a")  # twice is fine


def test_collect_detaches_containers_that_are_gone(network: NodeNetwork) -> None:
    network.attach("keep", BRIDGE_MODE)
    gone = network.attach("gone", BRIDGE_MODE)
    assert network.collect({"keep"}) == ["gone"]
    assert network.address("keep") and not Path(gone.netns).exists()


def test_routes_follow_the_peers_and_leave_other_routes_alone(network: NodeNetwork) -> None:
    with IPRoute() as ipr:
        ipr.route("add", dst="10.99.0.0/24", gateway="192.0.2.99")

    def ours() -> dict[str, str]:
        with IPRoute() as ipr:
            return {
                f"{r.get_attr('RTA_DST')}/{r['dst_len']}": r.get_attr("RTA_GATEWAY")
                for r in ipr.get_routes(family=2, proto=RTPROT_MOORAGE)
            }

    network.set_peers({"10.244.1.0/24": "192.0.2.11", "10.244.2.0/24": "192.0.2.12", SUBNET: HOST_ADDRESS})
    assert ours() == {"10.244.1.0/24": "192.0.2.11", "10.244.2.0/24": "192.0.2.12"}
    network.set_peers({"10.244.2.0/24": "192.0.2.22", "10.244.9.0/24": "203.0.113.1"})  # the last is off-link
    assert ours() == {"10.244.2.0/24": "192.0.2.22"}
    network.cleanup()
    assert ours() == {}
    with IPRoute() as ipr:
        assert ipr.get_routes(family=2, dst="10.99.0.0/24")


def test_cleanup_removes_bridge_routes_and_table(network: NodeNetwork) -> None:
    network.set_peers({"10.244.1.0/24": "192.0.2.11"})
    network.cleanup()
    assert links.BRIDGE not in link_names()
    assert subprocess.run(["nft", "list", "table", "ip", "moorage"], capture_output=True).returncode != 0
    with IPRoute() as ipr:
        assert not ipr.get_routes(family=2, proto=RTPROT_MOORAGE)


def test_old_pins_with_nothing_but_lo_are_swept(network: NodeNetwork, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as patched:
        patched.setattr(links.time, "time", lambda: 1_000_000.0)  # named as made long ago
        orphan, plugged = links.new_pin(), links.new_pin()
    young = links.new_pin()
    links.create_netns(orphan, "moorvorphan0", None)
    links.create_netns(plugged, "moorvplug0", ipaddress.IPv4Interface("10.244.5.201/24"))
    links.create_netns(young, "moorvyoung0", None)
    try:
        swept = links.sweep_orphans()
        assert orphan in swept and not orphan.exists()
        assert plugged.exists() and young.exists()  # still plugged into a live host / just made
    finally:
        for pin in (orphan, plugged, young):
            links.remove_netns(pin)


def test_veths_are_gone_shortly_after_their_namespace(network: NodeNetwork) -> None:
    pin = links.new_pin()
    links.create_netns(pin, "moorvshort0", ipaddress.IPv4Interface("10.244.5.200/24"))
    assert "moorvshort0" in link_names()
    links.remove_netns(pin)  # as when the pin of a container is dropped while the agent is away
    wait_for(lambda: "moorvshort0" not in link_names(), 10, "the veth to go with its namespace")
