"""The few rtnetlink requests on the path of every container start, on a plain netlink socket.

Plugging a container in (links.create_netns) takes six requests. Through pyroute2 each
cost ~3 ms of Python (an asyncio loop turn, message classes, a decode of the answer) for
~1 ms in the kernel, so ~30 ms of CPU per container: when ten containers of a service
start on a loaded host, that CPU is what they queue for. Here a request is one
``struct.pack`` and one ``send``, and the answer is the kernel's acknowledgement alone.
pyroute2 keeps everything else (the bridge, routes, lookups, sweeps): none of it is per start.

The socket acts in the network namespace of the thread that opened it.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
from types import TracebackType

NETLINK_ROUTE = 0
RTM_NEWLINK, RTM_NEWADDR, RTM_NEWROUTE = 16, 20, 24
NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
IFLA_IFNAME, IFLA_MASTER, IFLA_LINKINFO, IFLA_NET_NS_FD = 3, 10, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_GATEWAY = 5
IFF_UP = 0x1
RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 3, 0, 1

_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port
_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBi")  # ifaddrmsg: family, prefix length, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")  # rtmsg: family, dst/src length, tos, table, protocol, scope, type, flags
_ATTR = struct.Struct("=HH")  # rtattr: length, type


def attr(kind: int, payload: bytes) -> bytes:
    """One netlink attribute, padded to 4 bytes."""
    length = _ATTR.size + len(payload)
    return _ATTR.pack(length, kind) + payload + b"\0" * (-length % 4)


def ifinfo(index: int = 0, *, up: bool = False) -> bytes:
    return _IFINFO.pack(socket.AF_UNSPEC, 0, index, IFF_UP if up else 0, IFF_UP if up else 0)


def name(value: str) -> bytes:
    return value.encode() + b"\0"


def veth_request(ifname: str, peer: str, peer_netns_fd: int) -> bytes:
    """RTM_NEWLINK body: a veth pair ``ifname`` here, ``peer`` in the namespace of ``peer_netns_fd``."""
    peer_info = ifinfo() + attr(IFLA_IFNAME, name(peer)) + attr(IFLA_NET_NS_FD, struct.pack("=I", peer_netns_fd))
    info = attr(IFLA_INFO_KIND, name("veth")) + attr(IFLA_INFO_DATA, attr(VETH_INFO_PEER, peer_info))
    return ifinfo() + attr(IFLA_IFNAME, name(ifname)) + attr(IFLA_LINKINFO, info)


def address_request(index: int, address: ipaddress.IPv4Interface) -> bytes:
    packed = address.ip.packed
    header = _IFADDR.pack(socket.AF_INET, address.network.prefixlen, 0, 0, index)
    return header + attr(IFA_LOCAL, packed) + attr(IFA_ADDRESS, packed)


def default_route_request(gateway: ipaddress.IPv4Address) -> bytes:
    header = _RTMSG.pack(socket.AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST, 0)
    return header + attr(RTA_GATEWAY, gateway.packed)


def acknowledgement(reply: bytes, sequence: int) -> int:
    """The error code (0: done) of the kernel's answer to request ``sequence``."""
    offset = 0
    while offset + _HEADER.size <= len(reply):
        length, kind, _, seq, _ = _HEADER.unpack_from(reply, offset)
        if kind == NLMSG_ERROR and seq == sequence:
            (code,) = struct.unpack_from("=i", reply, offset + _HEADER.size)
            return -code
        offset += max(length + (-length % 4), _HEADER.size)
    raise OSError(f"no netlink acknowledgement for request {sequence}")


class Socket:
    """An rtnetlink socket of the calling thread's network namespace; each request waits for its ack."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        self._sock.bind((0, 0))
        self._sequence = 0

    def __enter__(self) -> Socket:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._sock.close()

    def request(self, kind: int, body: bytes, *, create: bool = False) -> None:
        """Send one request; raise OSError with the kernel's errno if it refused it."""
        self._sequence += 1
        flags = NLM_F_REQUEST | NLM_F_ACK | (NLM_F_CREATE | NLM_F_EXCL if create else 0)
        self._sock.send(_HEADER.pack(_HEADER.size + len(body), kind, flags, self._sequence, 0) + body)
        # Only our own requests travel on this socket, one at a time: its answer comes next.
        code = acknowledgement(self._sock.recv(65536), self._sequence)
        if code:
            raise OSError(code, f"{os.strerror(code)} (rtnetlink message {kind})")

    def set_up(self, index: int, *, master: int | None = None) -> None:
        """Bring the link up (and make it a port of the bridge ``master``)."""
        extra = attr(IFLA_MASTER, struct.pack("=I", master)) if master is not None else b""
        self.request(RTM_NEWLINK, ifinfo(index, up=True) + extra)

    def add_veth(self, ifname: str, peer: str, peer_netns_fd: int) -> None:
        self.request(RTM_NEWLINK, veth_request(ifname, peer, peer_netns_fd), create=True)

    def add_address(self, index: int, address: ipaddress.IPv4Interface) -> None:
        self.request(RTM_NEWADDR, address_request(index, address), create=True)

    def add_default_route(self, gateway: ipaddress.IPv4Address) -> None:
        self.request(RTM_NEWROUTE, default_route_request(gateway), create=True)
