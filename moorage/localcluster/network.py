"""Test hosts as network namespaces joined to one bridge, made with pyroute2.

Each host gets a namespace ``/run/netns/<name>``, a veth pair whose outer end
joins the cluster bridge, an address on the bridge's /24, loopback up, and a
default route via the bridge address (which is the root namespace's foot on
the test network: the controller listens there).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from pyroute2 import IPRoute, NetNS, netns
from pyroute2.netlink.exceptions import NetlinkError

ERR_NOT_FOUND = 19  # ENODEV


@dataclass(frozen=True)
class Host:
    name: str  # network namespace name
    veth: str  # outer end, on the bridge
    address: str


@dataclass
class TestNetwork:
    """A bridge with a /24 and the hosts attached to it."""

    bridge: str
    subnet: ipaddress.IPv4Network
    hosts: list[Host] = field(default_factory=list)

    @property
    def gateway(self) -> str:
        return str(self.subnet.network_address + 1)

    def create(self) -> TestNetwork:
        with IPRoute() as ipr:
            ipr.link("add", ifname=self.bridge, kind="bridge")
            index = ipr.link_lookup(ifname=self.bridge)[0]
            ipr.addr("add", index=index, address=self.gateway, prefixlen=self.subnet.prefixlen)
            ipr.link("set", index=index, state="up")
        return self

    def add_host(self, ns_name: str, veth: str) -> Host:
        address = str(self.subnet.network_address + 10 + len(self.hosts))
        inner = veth + "i"
        netns.create(ns_name)
        with IPRoute() as ipr:
            ipr.link("add", ifname=veth, kind="veth", peer=inner)
            outer_index = ipr.link_lookup(ifname=veth)[0]
            ipr.link("set", index=outer_index, master=ipr.link_lookup(ifname=self.bridge)[0], state="up")
            ipr.link("set", index=ipr.link_lookup(ifname=inner)[0], net_ns_fd=ns_name)
        with NetNS(ns_name) as ns:
            index = ns.link_lookup(ifname=inner)[0]
            ns.link("set", index=index, ifname="eth0")
            ns.addr("add", index=index, address=address, prefixlen=self.subnet.prefixlen)
            ns.link("set", index=index, state="up")
            ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")
            ns.route("add", dst="default", gateway=self.gateway)
        host = Host(ns_name, veth, address)
        self.hosts.append(host)
        return host

    def destroy(self) -> None:
        """Remove every host and the bridge; missing pieces are not an error."""
        for host in self.hosts:
            remove_netns(host.name)
            remove_link(host.veth)
        remove_link(self.bridge)
        self.hosts.clear()


def remove_link(name: str) -> None:
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=name)
        if found:
            try:
                ipr.link("del", index=found[0])
            except NetlinkError as err:
                if err.code != ERR_NOT_FOUND:
                    raise


def remove_netns(name: str) -> None:
    if name in netns.listnetns():
        netns.remove(name)


def used_subnets() -> set[ipaddress.IPv4Network]:
    with IPRoute() as ipr:
        return {
            ipaddress.ip_interface(f"{m.get_attr('IFA_ADDRESS')}/{m['prefixlen']}").network
            for m in ipr.get_addr(family=2)
        }


def free_subnet(base: str = "10.231.0.0/16") -> ipaddress.IPv4Network:
    """The first /24 of ``base`` that no interface of this namespace overlaps."""
    used = used_subnets()
    for candidate in ipaddress.ip_network(base).subnets(new_prefix=24):
        if not any(candidate.overlaps(net) for net in used):
            return candidate
    raise RuntimeError(f"no free /24 left in {base}")


def set_link_up(name: str, up: bool) -> None:
    """Bring a link of this namespace up or down (a cable plugged or cut)."""
    with IPRoute() as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname=name)[0], state="up" if up else "down")
