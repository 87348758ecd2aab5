"""Linux capabilities by name, Docker's default set, and cap_add/cap_drop resolution (pure)."""

from __future__ import annotations

from collections.abc import Iterable

NAMES = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
    "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
    "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
    "CHECKPOINT_RESTORE",
)  # index = capability number
NUMBER = {name: i for i, name in enumerate(NAMES)}

# moby/oci/caps/defaults.go
DOCKER_DEFAULT = (
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID", "SETFCAP", "SETPCAP",
    "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
)


def normalise(name: str) -> str:
    """``net_admin``, ``CAP_NET_ADMIN`` -> ``CAP_NET_ADMIN``; ValueError for an unknown name."""
    bare = name.strip().upper().removeprefix("CAP_")
    if bare != "ALL" and bare not in NUMBER:
        raise ValueError(f"unknown capability {name!r}")
    return f"CAP_{bare}"


def resolve(cap_add: Iterable[str] = (), cap_drop: Iterable[str] = ()) -> tuple[str, ...]:
    """Docker's rule: start from the default set, drop, then add; ``ALL`` stands for every capability.

    Returned as ``CAP_*`` names in capability-number order (the OCI config's form).
    """
    added = {normalise(c) for c in cap_add}
    dropped = {normalise(c) for c in cap_drop}
    every = {f"CAP_{n}" for n in NAMES}
    caps = set() if "CAP_ALL" in dropped else {f"CAP_{n}" for n in DOCKER_DEFAULT} - dropped
    caps |= every if "CAP_ALL" in added else added
    return tuple(sorted(caps, key=lambda c: NUMBER[c.removeprefix("CAP_")]))


def mask(names: Iterable[str]) -> int:
    """The kernel's bit mask for ``CAP_*`` names."""
    bits = 0
    for name in names:
        bits |= 1 << NUMBER[name.removeprefix("CAP_")]
    return bits
