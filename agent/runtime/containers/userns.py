"""User namespaces: map a new user namespace's ids, and make PID 1 inside it.

A PID namespace must be owned by the container's user namespace (else the container's root
could not mount its /proc), so with a user namespace PID 1 is made in two steps, as runc does:
the shim's child unshares the user namespace and waits while the shim (privileged, outside)
writes its uid/gid maps; it then takes root's ids in there, unshares the PID namespace and
forks PID 1, reports PID 1's pid to the shim and exits. The shim is a child subreaper, so
PID 1 becomes its child.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from agent.runtime.containers import syscalls as sc

UNSHARED, MAPPED = b"u", b"m"


def wanted(config: Mapping[str, Any]) -> bool:
    return any(ns["type"] == "user" for ns in config["linux"]["namespaces"])


def map_lines(mappings: list[Mapping[str, int]]) -> str:
    """uid_map/gid_map content: "container-id host-id size" per line."""
    return "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in mappings)


def write_maps(pid: int, config: Mapping[str, Any]) -> None:
    """In the shim: map ``pid``'s new user namespace as the config says."""
    linux = config["linux"]
    with open(f"/proc/{pid}/uid_map", "w") as f:
        f.write(map_lines(linux.get("uidMappings", [])))
    with open(f"/proc/{pid}/gid_map", "w") as f:
        f.write(map_lines(linux.get("gidMappings", [])))


def become_pid1(mapped_r: int, report_w: int) -> None:
    """In the shim's child: unshare the user namespace, wait for its maps, become root in it,
    unshare the PID namespace and fork PID 1. Returns in PID 1; the caller's process exits."""
    sc.unshare(sc.CLONE_NEWUSER)
    os.write(report_w, UNSHARED)
    if os.read(mapped_r, 1) != MAPPED:
        os._exit(1)  # the shim could not map us: it reports why
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)
    sc.unshare(sc.CLONE_NEWPID)
    pid = os.fork()
    if pid:
        os.write(report_w, str(pid).encode())
        os._exit(0)
    os.close(report_w)
    os.close(mapped_r)


def handshake(child: int, config: Mapping[str, Any], report_r: int, mapped_w: int) -> int:
    """In the shim: map ``child``'s user namespace, then return PID 1's pid (``child`` if it failed early)."""
    try:
        if os.read(report_r, 1) != UNSHARED:
            return child
        write_maps(child, config)
        os.write(mapped_w, MAPPED)
        raw = os.read(report_r, 32)
    finally:
        os.close(report_r)
        os.close(mapped_w)
    os.waitpid(child, 0)
    return int(raw) if raw else child
