"""Host networking (DESIGN.md §4): a bridge per host, a namespace and veth pair per container,
routes to the other hosts' subnets, published ports through kernel NAT, /etc files per container."""

from agent.network.errors import NetworkError, PortInUse
from agent.network.node import NodeNetwork, netns_path
from agent.network.records import BRIDGE_MODE, HOST_MODE, NONE_MODE, Attachment, PortMapping

__all__ = [
    "BRIDGE_MODE",
    "HOST_MODE",
    "NONE_MODE",
    "Attachment",
    "NetworkError",
    "NodeNetwork",
    "PortInUse",
    "PortMapping",
    "netns_path",
]
