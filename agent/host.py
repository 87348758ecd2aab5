"""Facts about the host an agent runs on: resources and address."""

from __future__ import annotations

import ipaddress
import os
import socket

from pyroute2 import IPRoute

from moorage.v1 import types_pb2


def resources() -> types_pb2.Resources:
    """CPU (in millicores) and memory of this host, as the scheduler sees them."""
    memory = 0
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) * 1024
                break
    return types_pb2.Resources(cpu_millis=(os.cpu_count() or 1) * 1000, memory_bytes=memory)


def default_address() -> str:
    """The first global IPv4 address of this host's network namespace."""
    with IPRoute() as ipr:
        for msg in ipr.get_addr(family=socket.AF_INET):
            address = msg.get_attr("IFA_ADDRESS")
            if address and not ipaddress.ip_address(address).is_loopback:
                return str(address)
    return "127.0.0.1"
