"""Published ports and outbound masquerade with the kernel's NAT, through nftables.

One table, ``ip moorage``, per host network namespace. Published ports are the
elements of one map, ``protocol . host port → container address . container
port``, which a single DNAT rule per hook consults: publishing or withdrawing a
port is adding or deleting one element, a one-element kernel transaction that
never rewrites a rule and costs the same with 1 or 10,000 mappings. Creating an
element that exists fails in the kernel, so two containers can never hold one
host port, whatever races above.

Why NAT and not a userspace proxy: the kernel forwards packets without copying
them through a process (bench/network.py measures both), the container sees the
client's real address, and no process per port has to survive agent restarts.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
from collections.abc import Iterable

from agent.network.errors import NatFailed, PortInUse
from agent.network.links import BRIDGE
from agent.network.records import PortMapping

TABLE = "moorage"
NFT = shutil.which("nft") or "/usr/sbin/nft"


def ruleset(
    host_address: str, subnet: ipaddress.IPv4Network, cluster_cidr: ipaddress.IPv4Network, masquerade: bool
) -> str:
    """The table's chains for this node (the ports map is declared, never flushed: it holds live mappings)."""
    lookup = "dnat ip to meta l4proto . th dport map @ports"
    masq = (
        f'ip saddr {subnet} ip daddr != {cluster_cidr} oifname != "{BRIDGE}" masquerade' if masquerade else ""
    )
    return f"""
add table ip {TABLE}
add map ip {TABLE} ports {{ type inet_proto . inet_service : ipv4_addr . inet_service; }}
add chain ip {TABLE} prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}
add chain ip {TABLE} output {{ type nat hook output priority -100; policy accept; }}
add chain ip {TABLE} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}
flush chain ip {TABLE} prerouting
flush chain ip {TABLE} output
flush chain ip {TABLE} postrouting
add rule ip {TABLE} prerouting ip daddr {host_address} {lookup}
add rule ip {TABLE} output ip daddr {host_address} {lookup}
{f"add rule ip {TABLE} postrouting {masq}" if masq else ""}
"""


def _nft(script: str) -> str:
    result = subprocess.run([NFT, "-f", "-"], input=script, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise NatFailed(f"nft refused the change: {result.stderr.strip()}")
    return result.stdout


def _element(mapping: PortMapping, address: str = "") -> str:
    key = f"{mapping.protocol} . {mapping.host_port}"
    return f"{key} : {address} . {mapping.container_port}" if address else key


def configure(
    host_address: str, subnet: ipaddress.IPv4Network, cluster_cidr: ipaddress.IPv4Network, masquerade: bool
) -> None:
    """Create or update the table in one transaction; existing port mappings stay."""
    _nft(ruleset(host_address, subnet, cluster_cidr, masquerade))


def published() -> dict[tuple[str, int], tuple[str, int]]:
    """The live mappings: (protocol, host port) → (container address, container port)."""
    result = subprocess.run(
        [NFT, "-j", "list", "map", "ip", TABLE, "ports"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        return {}
    found: dict[tuple[str, int], tuple[str, int]] = {}
    for item in json.loads(result.stdout)["nftables"]:
        for element in item.get("map", {}).get("elem", []):
            key, value = element
            protocol, port = key["concat"]
            address, target_port = value["concat"]
            found[(str(protocol), int(port))] = (str(address), int(target_port))
    return found


def publish(address: str, mappings: Iterable[PortMapping]) -> None:
    """Map each host port to ``address``, all or nothing, in one nft transaction; PortInUse if
    one is held already (the kernel refuses to create an element that exists)."""
    mappings = list(mappings)
    if not mappings:
        return
    try:
        _nft(f"create element ip {TABLE} ports {{ {', '.join(_element(m, address) for m in mappings)} }}\n")
    except NatFailed as err:
        if "File exists" not in str(err):
            raise
        live = published()
        held = [m for m in mappings if (m.protocol, m.host_port) in live]
        holder = live[(held[0].protocol, held[0].host_port)][0] if held else "another container"
        raise PortInUse(", ".join(f"{m.host_port}/{m.protocol}" for m in held), f"published for {holder}") from err


def withdraw(address: str, mappings: Iterable[PortMapping]) -> None:
    """Remove the mappings that still point at ``address`` (never another container's: after a
    crash a record may name a port that another container holds now)."""
    mappings = list(mappings)
    if not mappings:
        return
    live = published()
    mine = [m for m in mappings if live.get((m.protocol, m.host_port), ("", 0))[0] == address]
    if mine:
        _nft(f"delete element ip {TABLE} ports {{ {', '.join(_element(m) for m in mine)} }}\n")


def remove_table() -> None:
    result = subprocess.run([NFT, "delete", "table", "ip", TABLE], capture_output=True, text=True, check=False)
    if result.returncode != 0 and "No such file" not in result.stderr:
        raise NatFailed(f"nft could not delete table {TABLE}: {result.stderr.strip()}")
