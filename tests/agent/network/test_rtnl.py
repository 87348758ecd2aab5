"""The plain rtnetlink requests of every container start: encoding, and the kernel's refusals."""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct

import pytest

from agent.network import rtnl
from tests.agent.network.support import throwaway_host


def test_attributes_are_padded_to_four_bytes() -> None:
    assert rtnl.attr(rtnl.IFLA_IFNAME, b"ab\0") == struct.pack("=HH", 7, rtnl.IFLA_IFNAME) + b"ab\0" + b"\0"
    assert len(rtnl.attr(rtnl.IFLA_MASTER, struct.pack("=I", 5))) == 8


def test_the_acknowledgement_of_the_request_is_found_and_its_error_read() -> None:
    def error(sequence: int, code: int) -> bytes:
        return struct.pack("=IHHII", 36, rtnl.NLMSG_ERROR, 0, sequence, 0) + struct.pack("=i", code) + b"\0" * 16

    assert rtnl.acknowledgement(error(3, 0), 3) == 0
    assert rtnl.acknowledgement(error(2, 0) + error(3, -errno.EEXIST), 3) == errno.EEXIST
    with pytest.raises(OSError, match="no netlink acknowledgement"):
        rtnl.acknowledgement(error(2, 0), 3)


def test_the_kernel_refusals_are_raised_with_their_errno() -> None:
    with throwaway_host(), rtnl.Socket() as sock:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            sock.add_veth("moortr0", "moortr1", home)
            with pytest.raises(OSError) as exists:
                sock.add_veth("moortr0", "moortr2", home)
            assert exists.value.errno == errno.EEXIST
        finally:
            os.close(home)
        index = socket.if_nametoindex("moortr0")
        sock.add_address(index, ipaddress.IPv4Interface("10.244.9.2/24"))
        sock.set_up(index)
        with pytest.raises(OSError) as missing:
            sock.set_up(index + 1000)
        assert missing.value.errno == errno.ENODEV
        with pytest.raises(OSError) as unreachable:  # a gateway on none of the attached subnets
            sock.add_default_route(ipaddress.IPv4Address("10.250.0.1"))
        assert unreachable.value.errno == errno.ENETUNREACH
