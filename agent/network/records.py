"""What the agent set up for each container, on disk, so a restarted agent knows it.

    <state>/network/attachments/<container id>.json   one Attachment per container
    <state>/network/ipam.json                         the last address handed out

Every file is replaced atomically (temp + rename), and not fsync'd: a lease is
written under the lock every attach takes, where two fsyncs made the containers
of a burst wait in line for the disk (~35 ms each under load). What a record
describes (a veth, a pinned namespace, nft elements, a container's address)
does not survive a crash of the machine either, and a record torn by one reads
as none. The attachment files are the address leases: an address is taken
exactly while a file names it.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path

from agent.runtime.fsutil import atomic_write_json

BRIDGE_MODE = "bridge"
HOST_MODE = "host"
NONE_MODE = "none"
_TORN = (ValueError, KeyError, TypeError)  # what reading a torn record raises


@dataclass(frozen=True)
class PortMapping:
    """``8080:80/tcp``: host port 8080 on the node's address reaches the container's port 80."""

    host_port: int
    container_port: int
    protocol: str = "tcp"

    def __str__(self) -> str:
        return f"{self.host_port}:{self.container_port}/{self.protocol}"


@dataclass(frozen=True)
class Attachment:
    container_id: str
    mode: str
    address: str = ""  # bridge mode only
    veth: str = ""  # the host end of the container's veth pair
    netns: str = ""  # the pinned namespace, until the container holds it
    ports: tuple[PortMapping, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "container_id": self.container_id,
            "mode": self.mode,
            "address": self.address,
            "veth": self.veth,
            "netns": self.netns,
            "ports": [[p.host_port, p.container_port, p.protocol] for p in self.ports],
        }

    @classmethod
    def from_json(cls, raw: dict[str, object]) -> Attachment:
        ports = raw.get("ports", [])
        assert isinstance(ports, list)
        return cls(
            container_id=str(raw["container_id"]),
            mode=str(raw["mode"]),
            address=str(raw.get("address", "")),
            veth=str(raw.get("veth", "")),
            netns=str(raw.get("netns", "")),
            ports=tuple(PortMapping(int(h), int(c), str(p)) for h, c, p in ports),
        )


class Records:
    def __init__(self, root: Path) -> None:
        self._attachments = root / "attachments"
        self._attachments.mkdir(parents=True, exist_ok=True)
        self._cursor = root / "ipam.json"

    def _path(self, container_id: str) -> Path:
        return self._attachments / f"{container_id}.json"

    def get(self, container_id: str) -> Attachment | None:
        try:
            return Attachment.from_json(json.loads(self._path(container_id).read_bytes()))
        except (FileNotFoundError, *_TORN):
            return None

    def all(self) -> list[Attachment]:
        found = []
        for path in sorted(self._attachments.glob("*.json")):
            try:
                found.append(Attachment.from_json(json.loads(path.read_bytes())))
            except FileNotFoundError:
                continue  # deleted while we listed
            except _TORN:
                continue  # torn by a crash of the machine: what it named is gone too
        return found

    def put(self, attachment: Attachment) -> None:
        atomic_write_json(self._path(attachment.container_id), attachment.to_json(), durable=False)

    def delete(self, container_id: str) -> None:
        self._path(container_id).unlink(missing_ok=True)

    def last_address(self) -> ipaddress.IPv4Address | None:
        try:
            return ipaddress.IPv4Address(json.loads(self._cursor.read_bytes())["last"])
        except (FileNotFoundError, KeyError, ValueError):
            return None

    def set_last_address(self, address: ipaddress.IPv4Address) -> None:
        atomic_write_json(self._cursor, {"last": str(address)}, durable=False)
