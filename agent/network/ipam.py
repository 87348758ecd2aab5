"""Choosing container addresses from the node's subnet (pure; the records live in state.py).

The gateway takes the subnet's first host address (.1 of a /24); containers get
the rest. Allocation goes round-robin from the last address handed out, as
Docker's does, so an address just released is not reused at once: a peer that
still holds a connection to it reaches nothing instead of a stranger.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection

from agent.network.errors import AddressesExhausted


def gateway(subnet: ipaddress.IPv4Network) -> ipaddress.IPv4Address:
    return subnet.network_address + 1


def allocate(
    subnet: ipaddress.IPv4Network,
    taken: Collection[ipaddress.IPv4Address],
    after: ipaddress.IPv4Address | None = None,
) -> ipaddress.IPv4Address:
    """The first free container address of ``subnet`` after ``after`` (wrapping around)."""
    first = int(subnet.network_address) + 2
    last = int(subnet.broadcast_address) - 1
    if last < first:
        raise AddressesExhausted(str(subnet))
    size = last - first + 1
    start = int(after) + 1 - first if after is not None and first <= int(after) <= last else 0
    for offset in range(size):
        candidate = ipaddress.IPv4Address(first + (start + offset) % size)
        if candidate not in taken:
            return candidate
    raise AddressesExhausted(str(subnet))
