"""Netlink work through pyroute2: the node's bridge and each container's namespace and veth pair.

A container's network namespace is made and configured by the calling thread:
it unshares a new one (only that thread moves), pins it with a bind mount on
``/run/netns/moorc-<time>-<random>``, brings up lo, eth0 and the default route from
inside, and returns to the agent's namespace. No process is forked, and these requests
of every start go through agent.network.rtnl rather than pyroute2 (see there). The
runtime joins the pinned namespace at every start of the container; the agent
drops the pin when the container is removed.

A pin can outlive its agent's records (the state directory wiped while
containers ran). Its veth pair dies with the host's namespace, so a pin that
holds nothing but ``lo`` and is older than a setup takes is an orphan, and any
agent may remove it (``sweep_orphans``).
"""

from __future__ import annotations

import errno
import hashlib
import ipaddress
import os
import secrets
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from agent.network import rtnl
from agent.network.ipam import gateway
from agent.runtime.containers import syscalls as sc

BRIDGE = "moorbr0"
CONTAINER_IFNAME = "eth0"
NETNS_DIR = Path("/run/netns")
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
PIN_PREFIX = "moorc-"
ORPHAN_AGE = 10.0  # seconds; a setup takes milliseconds
_THREAD_NETNS = "/proc/thread-self/ns/net"
_shared: set[tuple[int, Path]] = set()  # (mount namespace, directory) made shared by share_pin_dir


def host_veth(container_id: str) -> str:
    """``moorv`` + 10 hex digits of the container id: unique per host, within IFNAMSIZ (15)."""
    return "moorv" + hashlib.sha256(container_id.encode()).hexdigest()[:10]


def _index(ipr: IPRoute, name: str) -> int | None:
    """The interface's index by one RTM_GETLINK for that name (link_lookup dumps every link)."""
    try:
        return int(ipr.link("get", ifname=name)[0]["index"])
    except NetlinkError as err:
        if err.code == errno.ENODEV:
            return None
        raise


def _name_index(name: str) -> int | None:
    """The interface's index in the calling thread's namespace (an ioctl, no netlink), None if none."""
    try:
        return socket.if_nametoindex(name)
    except OSError:
        return None


def ensure_bridge(subnet: ipaddress.IPv4Network) -> None:
    """The bridge exists, is up and carries exactly the subnet's gateway address; forwarding is on."""
    want = (str(gateway(subnet)), subnet.prefixlen)
    with IPRoute() as ipr:
        index = _index(ipr, BRIDGE)
        if index is None:
            ipr.link("add", ifname=BRIDGE, kind="bridge")
            index = _index(ipr, BRIDGE)
            assert index is not None
        have = {(m.get_attr("IFA_ADDRESS"), m["prefixlen"]) for m in ipr.get_addr(index=index, family=2)}
        for address, prefixlen in have - {want}:
            ipr.addr("del", index=index, address=address, prefixlen=prefixlen)
        if want not in have:
            ipr.addr("add", index=index, address=want[0], prefixlen=want[1])
        ipr.link("set", index=index, state="up")
    IP_FORWARD.write_text("1\n")


def remove_link(name: str) -> None:
    """Delete the interface if it exists."""
    with IPRoute() as ipr:
        index = _index(ipr, name)
        if index is None:
            return
        try:
            ipr.link("del", index=index)
        except NetlinkError as err:
            if err.code != errno.ENODEV:
                raise


def link_exists(name: str) -> bool:
    with IPRoute() as ipr:
        return _index(ipr, name) is not None


@contextmanager
def inside(pin: str | Path, *, create: bool = False) -> Iterator[int]:
    """Run the body (this thread only) in the namespace at ``pin`` (a new one, pinned there, if
    ``create``); always come back.

    Yields an fd of the namespace the thread came from (to place interfaces there).
    """
    home = os.open(_THREAD_NETNS, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if create:
            share_pin_dir(Path(pin).parent)
            Path(pin).touch(mode=0o444, exist_ok=False)
            sc.unshare(sc.CLONE_NEWNET)
        else:
            target = os.open(pin, os.O_RDONLY | os.O_CLOEXEC)
            try:
                sc.setns(target, sc.CLONE_NEWNET)
            finally:
                os.close(target)
        try:
            if create:
                sc.mount(_THREAD_NETNS, str(pin), None, sc.MS_BIND)
            yield home
        finally:
            sc.setns(home, sc.CLONE_NEWNET)
    finally:
        os.close(home)


def share_pin_dir(directory: Path = NETNS_DIR) -> None:
    """Make ``directory`` a shared mount (a bind mount of itself first if it is none), as iproute2 does.

    A pin mounted there must reach the mount namespaces copied before it was made: the
    fork server's standby PID 1 makes its own in advance, then joins the container's pin
    by path, and on a private /run/netns it would find the empty file under the pin
    (setns: EINVAL). Hosts where iproute2 or systemd made the directory shared need nothing.
    """
    key = (os.stat("/proc/self/ns/mnt").st_ino, directory)
    if key in _shared:
        return
    directory.mkdir(parents=True, exist_ok=True)
    fields = _mountinfo_fields(directory)
    if fields is None:
        sc.mount(str(directory), directory, None, sc.MS_BIND)
    if fields is None or not any(f.startswith("shared:") for f in fields):
        sc.mount(None, directory, None, sc.MS_SHARED)
    _shared.add(key)


def _mountinfo_fields(directory: Path) -> list[str] | None:
    """The optional fields (propagation) of the topmost mount at ``directory``, None if it is no mount point.

    (``Path.is_mount`` cannot tell: a bind mount of a directory onto itself keeps its device.)
    """
    found = None
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        parts = line.split()
        if parts[4] == str(directory):
            found = parts[6 : parts.index("-")]
    return found


def new_pin() -> Path:
    """A fresh pin path: ``moorc-<creation time, hex seconds>-<random>`` (the time lets a sweep judge its age)."""
    return NETNS_DIR / f"{PIN_PREFIX}{int(time.time()):x}-{secrets.token_hex(4)}"


def create_netns(pin: Path, veth: str, address: ipaddress.IPv4Interface | None) -> None:
    """A new namespace pinned at ``pin``, lo up; with ``address``, also plugged into the bridge.

    Plugged means: a veth pair whose inside end is eth0 with ``address`` and a default
    route via the subnet's gateway, and whose outside end ``veth`` is a port of the bridge.
    """
    try:
        bridge = _name_index(BRIDGE) if address is not None else None
        if address is not None and bridge is None:
            raise RuntimeError(f"bridge {BRIDGE} is missing")
        with inside(pin, create=True) as home, rtnl.Socket() as ns:
            ns.set_up(socket.if_nametoindex("lo"))
            if address is not None:
                ns.add_veth(CONTAINER_IFNAME, veth, home)
                eth0 = socket.if_nametoindex(CONTAINER_IFNAME)
                ns.add_address(eth0, address)
                ns.set_up(eth0)
                ns.add_default_route(gateway(address.network))
        if address is not None:
            with rtnl.Socket() as host:
                host.set_up(socket.if_nametoindex(veth), master=bridge)
    except BaseException:
        remove_netns(pin)
        remove_link(veth)
        raise


def _made_at(pin: Path) -> float:
    """The creation time written into a pin's name (a mounted pin's own times are the namespace's)."""
    try:
        return float(int(pin.name.removeprefix(PIN_PREFIX).split("-")[0], 16))
    except ValueError:
        return float("inf")


def sweep_orphans(min_age: float = ORPHAN_AGE) -> list[Path]:
    """Remove pins whose namespace has only ``lo`` left and that are older than ``min_age`` seconds."""
    now = time.time()
    removed = []
    for pin in NETNS_DIR.glob(f"{PIN_PREFIX}*"):
        if now - _made_at(pin) < min_age:
            continue
        try:
            with inside(pin), IPRoute() as ns:
                names = {link.get_attr("IFLA_IFNAME") for link in ns.get_links()}
        except (OSError, NetlinkError):
            continue  # removed meanwhile, or not a namespace pin
        if names <= {"lo"}:
            remove_netns(pin)
            removed.append(pin)
    return removed


def remove_netns(pin: Path) -> None:
    """Drop the pin; the namespace itself goes when nothing else holds it."""
    try:
        sc.umount2(str(pin), sc.MNT_DETACH)
    except OSError as err:
        if err.errno not in (errno.EINVAL, errno.ENOENT):
            raise
    pin.unlink(missing_ok=True)
