"""/etc/hosts, /etc/hostname and /etc/resolv.conf for a container: made for it, not copied from the host.

The renderers are pure; ``write`` puts the files into the container's
read/write layer before it starts, so they are ordinary files of its root
(the user command may edit them, and they go with the container).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.runtime.rootpath import Root, split

LOCALHOST = """127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
fe00::0\tip6-localnet
ff00::0\tip6-mcastprefix
ff02::1\tip6-allnodes
ff02::2\tip6-allrouters
"""


@dataclass(frozen=True)
class LinkEntry:
    """A linked service as the container names it: ``names`` resolve to ``address``."""

    address: str
    names: tuple[str, ...]


def hosts(hostname: str, address: str, links: Iterable[LinkEntry]) -> str:
    """Localhost, the container's own name at its address (127.0.1.1 without one), then its links."""
    lines = [LOCALHOST, f"{address or '127.0.1.1'}\t{hostname}\n"]
    lines += [f"{entry.address}\t{' '.join(entry.names)}\n" for entry in links]
    return "".join(lines)


def resolv_conf(host_resolv: str) -> str:
    """The host's resolvers without loopback ones (unreachable from a container's own namespace)."""
    kept = []
    for line in host_resolv.splitlines():
        words = line.split()
        if words[:1] == ["nameserver"] and len(words) > 1:
            try:
                if ipaddress.ip_address(words[1].split("%")[0]).is_loopback:
                    continue
            except ValueError:
                continue
        if words[:1] in (["nameserver"], ["search"], ["domain"], ["options"]):
            kept.append(line.strip())
    return "".join(f"{line}\n" for line in kept)


def link_entries(
    links: Sequence[tuple[str, str]], endpoints: Mapping[str, Sequence[str]]
) -> list[LinkEntry]:
    """One entry per linked service that has an address: ``links`` are (service, alias) pairs,
    ``endpoints`` each service's task addresses (the first is used, as for now a link names
    one task; the ambassador will stand in for all of them)."""
    entries = []
    for service, alias in links:
        addresses = endpoints.get(service, ())
        if addresses:
            names = (service,) if not alias or alias == service else (service, alias)
            entries.append(LinkEntry(addresses[0], names))
    return entries


def write(upper: Path, files: Mapping[str, str]) -> None:
    """Write ``{"/etc/hosts": text, ...}`` into the read/write layer ``upper``, through
    agent.runtime.rootpath: no symlink in the layer is followed."""
    with Root(upper) as root:
        for target, text in files.items():
            parent, name = split(target)
            fd = root.make_dirs(parent)
            try:
                tmp = f".{name}.moorage"
                with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                                       0o644, dir_fd=fd), "w") as f:
                    f.write(text)
                    os.fchmod(f.fileno(), 0o644)
                os.replace(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
            finally:
                os.close(fd)
