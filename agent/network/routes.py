"""Host-gateway routes: every other node's subnet via that node's address.

The routes this agent installs carry their own routing protocol number, so
the agent recognises them after a restart and never touches anyone else's.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Mapping

import structlog
from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

RTPROT_MOORAGE = 77  # unassigned in /etc/iproute2/rt_protos; `ip route show proto 77` lists ours

Routes = Mapping[ipaddress.IPv4Network, ipaddress.IPv4Address]
Changes = tuple[dict[ipaddress.IPv4Network, ipaddress.IPv4Address], set[ipaddress.IPv4Network]]

log = structlog.get_logger("moorage.agent.network")


def changes(current: Routes, desired: Routes) -> Changes:
    """(routes to add or re-point, destinations to drop) to turn ``current`` into ``desired``."""
    to_set = {dst: via for dst, via in desired.items() if current.get(dst) != via}
    return to_set, set(current) - set(desired)


def installed(ipr: IPRoute) -> dict[ipaddress.IPv4Network, ipaddress.IPv4Address]:
    found = {}
    for msg in ipr.get_routes(family=socket.AF_INET, proto=RTPROT_MOORAGE):
        dst, via = msg.get_attr("RTA_DST"), msg.get_attr("RTA_GATEWAY")
        if dst and via:
            found[ipaddress.IPv4Network(f"{dst}/{msg['dst_len']}")] = ipaddress.IPv4Address(via)
    return found


def sync(desired: Routes) -> None:
    """Make our routes exactly ``desired``; a peer this host cannot reach directly is logged and skipped."""
    with IPRoute() as ipr:
        to_set, to_drop = changes(installed(ipr), desired)
        for dst in to_drop:
            ipr.route("del", dst=str(dst), proto=RTPROT_MOORAGE)
        for dst, via in to_set.items():
            try:
                ipr.route("replace", dst=str(dst), gateway=str(via), proto=RTPROT_MOORAGE)
            except NetlinkError as err:
                if err.code != errno.ENETUNREACH:
                    raise
                log.warning("peer not on a directly reachable network: no route", subnet=str(dst), via=str(via))


def remove_all() -> None:
    sync({})
