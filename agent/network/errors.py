"""Errors of host networking.

    NetworkError
    ├── NotConfigured        no subnet from the controller yet
    ├── AddressesExhausted   every address of the node's subnet is leased
    ├── PortInUse            a published host port is taken on this host
    └── NatFailed            the nft command refused a change
"""

from __future__ import annotations


class NetworkError(Exception):
    """A container's or the host's network could not be set up as asked."""


class NotConfigured(NetworkError):
    def __init__(self) -> None:
        super().__init__("the node's network is not configured yet (no subnet from the controller)")


class AddressesExhausted(NetworkError):
    def __init__(self, subnet: str) -> None:
        super().__init__(f"no free address left in subnet {subnet}")
        self.subnet = subnet


class PortInUse(NetworkError):
    def __init__(self, port: str, holder: str) -> None:
        super().__init__(f"host port {port} is already in use on this host ({holder})")
        self.port = port
        self.holder = holder


class NatFailed(NetworkError):
    pass
