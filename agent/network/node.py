"""This host's side of the cluster network: one object the agent drives.

- ``configure``: the bridge (gateway = .1 of the node's subnet) and the NAT table,
  from what the controller sent at registration; safe to repeat.
- ``set_peers``: routes to every other node's subnet via its address.
- ``attach`` before a container starts: an address leased from the subnet
  (recorded on disk first), a pinned namespace plugged into the bridge (the
  runtime joins it at every start of the container), the published ports;
  ``detach`` after the container is removed.
- ``collect``: detach what belongs to containers that no longer exist.
- ``cleanup`` (``moor agent --cleanup``): the bridge, routes and NAT table go.

Methods block (netlink, nft, files); the agent calls them from its thread pool.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import threading
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import structlog
from pyroute2.netlink.exceptions import NetlinkError

from agent.network import etcfiles, ipam, links, nat, routes
from agent.network.errors import NetworkError, NotConfigured, PortInUse
from agent.network.records import BRIDGE_MODE, HOST_MODE, Attachment, PortMapping, Records

HOST_RESOLV = Path("/etc/resolv.conf")

log = structlog.get_logger("moorage.agent.network")


@dataclass(frozen=True)
class NodeConfig:
    subnet: ipaddress.IPv4Network
    cluster_cidr: ipaddress.IPv4Network
    masquerade: bool


def netns_path(attachment: Attachment) -> str | None:
    """The namespace the runtime joins: the pin (bridge mode); None for host (none made) or none (a new, empty one)."""
    return attachment.netns or None


def _check_host_port(address: str, mapping: PortMapping) -> None:
    """PortInUse if a process of this host listens on the port: NAT would hide it silently."""
    kind = socket.SOCK_DGRAM if mapping.protocol == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as probe:
        try:
            probe.bind((address, mapping.host_port))
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                port = f"{mapping.host_port}/{mapping.protocol}"
                raise PortInUse(port, "a process of the host listens on it") from None
            raise


class NodeNetwork:
    def __init__(self, state_dir: Path, host_address: str) -> None:
        self._records = Records(state_dir / "network")
        # Before the fork server copies its first standby's mount namespace (see share_pin_dir).
        links.share_pin_dir()
        self.host_address = host_address
        self.config: NodeConfig | None = None
        self._lock = threading.Lock()  # address leases and port publication
        # Every attachment in memory too, for the event loop: container -> address ("" without one).
        self._addresses = {a.container_id: a.address for a in self._records.all()}

    # -- the host --------------------------------------------------------------------

    def configure(self, subnet: str, cluster_cidr: str, masquerade: bool) -> None:
        config = NodeConfig(ipaddress.IPv4Network(subnet), ipaddress.IPv4Network(cluster_cidr), masquerade)
        try:
            links.sweep_orphans()
            links.ensure_bridge(config.subnet)
        except NetlinkError as err:
            raise NetworkError(f"could not set up bridge {links.BRIDGE} for {subnet}: {err}") from err
        nat.configure(self.host_address, config.subnet, config.cluster_cidr, config.masquerade)
        self.config = config
        log.info("node network configured", subnet=subnet, cluster_cidr=cluster_cidr, masquerade=masquerade)

    def set_peers(self, peers: Mapping[str, str]) -> None:
        """``{subnet: node address}`` of the other nodes."""
        own = self.config.subnet if self.config else None
        desired = {
            ipaddress.IPv4Network(subnet): ipaddress.IPv4Address(address)
            for subnet, address in peers.items()
            if subnet and address and ipaddress.IPv4Network(subnet) != own
        }
        try:
            routes.sync(desired)
        except NetlinkError as err:
            raise NetworkError(f"could not install the routes to the other nodes: {err}") from err
        log.info("routes to peers", peers=len(desired))

    def cleanup(self) -> None:
        links.sweep_orphans()
        routes.remove_all()
        nat.remove_table()
        links.remove_link(links.BRIDGE)
        log.info("node network removed", bridge=links.BRIDGE)

    # -- containers ------------------------------------------------------------------

    def attach(self, container_id: str, mode: str, ports: Iterable[PortMapping] = ()) -> Attachment:
        """Everything the container's network needs before it starts; all or nothing."""
        self.detach(container_id)  # what an earlier, failed attempt left
        if mode != BRIDGE_MODE:  # published ports need an address of their own: ignored here, as Docker does
            attachment = Attachment(container_id, mode)
            self._records.put(attachment)
            self._addresses[container_id] = ""
            return attachment
        try:
            attachment = self._lease(container_id, tuple(ports))
        except (OSError, NetlinkError) as err:
            raise NetworkError(f"could not lease an address: {err}") from err
        try:
            address = ipaddress.IPv4Interface(f"{attachment.address}/{self._subnet().prefixlen}")
            links.create_netns(Path(attachment.netns), attachment.veth, address)
        except BaseException as err:
            self.detach(container_id)
            if isinstance(err, (OSError, NetlinkError)):
                raise NetworkError(f"could not plug the container into {links.BRIDGE}: {err}") from err
            raise
        return attachment

    def _subnet(self) -> ipaddress.IPv4Network:
        if self.config is None:
            raise NotConfigured()
        return self.config.subnet

    def _lease(self, container_id: str, ports: tuple[PortMapping, ...]) -> Attachment:
        """Record the address, ports, veth and pin first: whatever a crash leaves, the record names it."""
        with self._lock:
            subnet = self._subnet()
            taken = {ipaddress.IPv4Address(a.address) for a in self._records.all() if a.address}
            address = ipam.allocate(subnet, taken, self._records.last_address())
            for mapping in ports:
                _check_host_port(self.host_address, mapping)
            veth, pin = links.host_veth(container_id), links.new_pin()
            attachment = Attachment(container_id, BRIDGE_MODE, str(address), veth, str(pin), ports)
            self._records.put(attachment)
            self._records.set_last_address(address)
            self._addresses[container_id] = attachment.address
            try:
                nat.publish(attachment.address, ports)
            except BaseException:
                self._records.delete(container_id)
                self._addresses.pop(container_id, None)
                raise
        return attachment

    def detach(self, container_id: str) -> None:
        """Withdraw the ports, remove the veth and the pin, release the address; missing parts are fine."""
        attachment = self._records.get(container_id)
        if attachment is None:
            return
        with self._lock:
            nat.withdraw(attachment.address, attachment.ports)
        if attachment.veth:
            links.remove_link(attachment.veth)
        if attachment.netns:
            links.remove_netns(Path(attachment.netns))
        self._records.delete(container_id)
        self._addresses.pop(container_id, None)
        log.info("container network removed", container=container_id, address=attachment.address)

    def address(self, container_id: str) -> str:
        """The container's leased address ("" without one); no I/O."""
        return self._addresses.get(container_id, "")

    def collect(self, live: Collection[str]) -> list[str]:
        """Detach every container not in ``live``; return their ids."""
        gone = [container_id for container_id in list(self._addresses) if container_id not in live]
        for container_id in gone:
            self.detach(container_id)
        return gone

    # -- /etc files ------------------------------------------------------------------

    def etc_files(
        self, attachment: Attachment, hostname: str, linked: Iterable[etcfiles.LinkEntry]
    ) -> dict[str, str]:
        try:
            host_resolv = HOST_RESOLV.read_text()
        except FileNotFoundError:
            host_resolv = ""
        return {
            "/etc/hosts": etcfiles.hosts(hostname, attachment.address, linked),
            "/etc/hostname": f"{hostname}\n",
            "/etc/resolv.conf": host_resolv if attachment.mode == HOST_MODE else etcfiles.resolv_conf(host_resolv),
        }
