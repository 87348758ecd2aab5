"""The OCI runtime-spec ``config.json`` of a container bundle (pure).

Every container directory is an OCI bundle: ``config.json`` + ``rootfs/``. The built-in
executor (see executor.py) runs it; ``runc run`` runs the same bundle once the rootfs is
mounted. What the spec cannot say lives in annotations the other executors ignore:

    org.moorage.rootfs.lower   overlay lower dirs, top first, ``:``-separated
    org.moorage.rootfs.upper   overlay upper dir          (mounted on root.path by our executor;
    org.moorage.rootfs.work    overlay work dir            another executor needs it mounted first)
    org.moorage.init           "true": a minimal init is PID 1 and the command its child

Defaults follow runc's ``runc spec`` and Docker's (moby/oci/defaults.go): the mounts, masked
and read-only paths, capabilities and no_new_privs below; Docker's seccomp profile resolved for
the container's capabilities (seccomp_profile.py) and the device allowlist (devices.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.runtime.containers import devices
from agent.runtime.containers import seccomp_profile
from agent.runtime.containers import syscalls as sc
from agent.runtime.containers.cgroups import Limits
from agent.runtime.containers.devices import DeviceNode, DeviceRule
from agent.runtime.containers.users import User

VERSION = "1.0.2"
LOWER, UPPER, WORK, INIT = (f"org.moorage.{k}" for k in ("rootfs.lower", "rootfs.upper", "rootfs.work", "init"))

DEFAULT_MOUNTS: tuple[dict[str, Any], ...] = (
    {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
     "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
     "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
     "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
)
MASKED_PATHS = (
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
    "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
NAMESPACES = ("pid", "network", "ipc", "uts", "mount")
DEFAULT_RLIMITS = {"RLIMIT_NOFILE": 1048576}  # Docker's containerd default; clamped to the host's hard limit
SECCOMP_PROFILES = ("default", "unconfined")  # Docker's default profile, or no filter at all

_FLAGS = {
    "ro": (sc.MS_RDONLY, True), "rw": (sc.MS_RDONLY, False), "nosuid": (sc.MS_NOSUID, True),
    "suid": (sc.MS_NOSUID, False), "nodev": (sc.MS_NODEV, True), "dev": (sc.MS_NODEV, False),
    "noexec": (sc.MS_NOEXEC, True), "exec": (sc.MS_NOEXEC, False), "sync": (sc.MS_SYNCHRONOUS, True),
    "async": (sc.MS_SYNCHRONOUS, False), "noatime": (sc.MS_NOATIME, True), "atime": (sc.MS_NOATIME, False),
    "nodiratime": (sc.MS_NODIRATIME, True), "diratime": (sc.MS_NODIRATIME, False),
    "relatime": (sc.MS_RELATIME, True), "norelatime": (sc.MS_RELATIME, False),
    "strictatime": (sc.MS_STRICTATIME, True), "bind": (sc.MS_BIND, True), "rbind": (sc.MS_BIND | sc.MS_REC, True),
}
_PROPAGATION = {
    "private": sc.MS_PRIVATE, "rprivate": sc.MS_PRIVATE | sc.MS_REC, "slave": sc.MS_SLAVE,
    "rslave": sc.MS_SLAVE | sc.MS_REC, "shared": sc.MS_SHARED, "rshared": sc.MS_SHARED | sc.MS_REC,
    "unbindable": sc.MS_UNBINDABLE, "runbindable": sc.MS_UNBINDABLE | sc.MS_REC,
}


@dataclass(frozen=True)
class MountOptions:
    flags: int
    propagation: int
    data: str


def parse_options(options: Sequence[str]) -> MountOptions:
    """OCI mount options -> mount(2) flags, a propagation change, and the fs-specific data string."""
    flags = propagation = 0
    data = []
    for option in options:
        if option in _FLAGS:
            bit, on = _FLAGS[option]
            flags = flags | bit if on else flags & ~bit
        elif option in _PROPAGATION:
            propagation |= _PROPAGATION[option]
        else:
            data.append(option)
    return MountOptions(flags, propagation, ",".join(data))


@dataclass(frozen=True)
class Mount:
    """A mount the container asks for beyond the defaults: a volume, a bind or a tmpfs."""

    destination: str
    source: str  # host path (bind, volume) or "tmpfs"
    type: str = "bind"  # "bind" | "tmpfs"
    read_only: bool = False

    def to_oci(self) -> dict[str, Any]:
        if self.type == "tmpfs":
            return {"destination": self.destination, "type": "tmpfs", "source": "tmpfs",
                    "options": ["nosuid", "nodev", "mode=1777", *(["ro"] if self.read_only else [])]}
        return {"destination": self.destination, "type": "bind", "source": self.source,
                "options": ["rbind", "ro" if self.read_only else "rw"]}


@dataclass(frozen=True)
class Overlay:
    lower: tuple[str, ...]  # lowest first, as the image lists its layers
    upper: str
    work: str


@dataclass(frozen=True)
class ConfigInput:
    args: tuple[str, ...]
    env: tuple[str, ...]
    cwd: str
    hostname: str
    user: User = User(0, 0)
    capabilities: tuple[str, ...] = ()
    no_new_privileges: bool = True
    rlimits: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_RLIMITS))
    host_hard_limits: Mapping[str, int] = field(default_factory=dict)
    read_only: bool = False
    mounts: tuple[Mount, ...] = ()
    limits: Limits = Limits()
    cgroups_path: str = ""
    overlay: Overlay | None = None
    init: bool = False
    terminal: bool = False
    uid_map: tuple[tuple[int, int, int], ...] = ()  # (container id, host id, count); non-empty = user namespace
    gid_map: tuple[tuple[int, int, int], ...] = ()
    network_path: str = ""  # join this network namespace instead of making a new one
    host_network: bool = False
    seccomp: str = "default"  # one of SECCOMP_PROFILES
    devices: tuple[DeviceNode, ...] = ()  # host devices made in the container, beyond the standard ones


def resources(limits: Limits, nodes: tuple[DeviceNode, ...] = ()) -> dict[str, Any]:
    res: dict[str, Any] = {"devices": [r.to_oci() for r in (*devices.DEFAULT_RULES, *(n.rule() for n in nodes))]}
    if limits.memory_bytes:
        res["memory"] = {"limit": limits.memory_bytes}
    cpu: dict[str, int] = {}
    if limits.cpu_shares:
        cpu["shares"] = limits.cpu_shares
    if limits.cpu_quota_us:
        cpu |= {"quota": limits.cpu_quota_us, "period": limits.cpu_period_us}
    if cpu:
        res["cpu"] = cpu
    if limits.pids:
        res["pids"] = {"limit": limits.pids}
    return res


def limits_of(config: Mapping[str, Any]) -> Limits:
    """The inverse of ``resources``: what the executor applies."""
    res = config.get("linux", {}).get("resources", {})
    cpu = res.get("cpu", {})
    return Limits(
        memory_bytes=res.get("memory", {}).get("limit", 0),
        cpu_shares=cpu.get("shares", 0),
        cpu_quota_us=cpu.get("quota", 0),
        cpu_period_us=cpu.get("period", 100_000),
        pids=res.get("pids", {}).get("limit", 0),
    )


def device_rules_of(config: Mapping[str, Any]) -> tuple[DeviceRule, ...] | None:
    """The config's device rules (ValueError names a bad one); None when it gives none."""
    rules = config.get("linux", {}).get("resources", {}).get("devices")
    return None if rules is None else devices.from_oci(rules)


def build(c: ConfigInput) -> dict[str, Any]:
    """The bundle's config.json as a dict."""
    rlimits = [
        {"type": name, "hard": min(value, c.host_hard_limits.get(name, value)),
         "soft": min(value, c.host_hard_limits.get(name, value))}
        for name, value in sorted(c.rlimits.items())
    ]
    namespaces: list[dict[str, str]] = []
    for kind in NAMESPACES:
        if kind == "network" and c.host_network:
            continue
        namespaces.append({"type": kind, "path": c.network_path} if kind == "network" and c.network_path else {"type": kind})
    caps = list(c.capabilities)
    linux: dict[str, Any] = {
        "namespaces": namespaces,
        "maskedPaths": list(MASKED_PATHS),
        "readonlyPaths": list(READONLY_PATHS),
        "resources": resources(c.limits, c.devices),
    }
    if c.devices:
        linux["devices"] = [n.to_oci() for n in c.devices]
    if c.seccomp not in SECCOMP_PROFILES:
        raise ValueError(f"seccomp profile {c.seccomp!r}: want one of {', '.join(SECCOMP_PROFILES)}")
    if c.seccomp == "default":
        linux["seccomp"] = seccomp_profile.default_section(caps)
    if c.cgroups_path:
        linux["cgroupsPath"] = c.cgroups_path
    if c.uid_map or c.gid_map:
        linux["namespaces"].append({"type": "user"})
        linux["uidMappings"] = [{"containerID": a, "hostID": b, "size": n} for a, b, n in c.uid_map]
        linux["gidMappings"] = [{"containerID": a, "hostID": b, "size": n} for a, b, n in c.gid_map]
    annotations: dict[str, str] = {}
    if c.overlay is not None:
        annotations |= {LOWER: ":".join(reversed(c.overlay.lower)), UPPER: c.overlay.upper, WORK: c.overlay.work}
    if c.init:
        annotations[INIT] = "true"
    return {
        "ociVersion": VERSION,
        "process": {
            "terminal": c.terminal,
            "user": {"uid": c.user.uid, "gid": c.user.gid, "additionalGids": list(c.user.additional_gids)},
            "args": list(c.args),
            "env": list(c.env),
            "cwd": c.cwd,
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps, "inheritable": [], "ambient": []},
            "rlimits": rlimits,
            "noNewPrivileges": c.no_new_privileges,
        },
        "root": {"path": "rootfs", "readonly": c.read_only},
        "hostname": c.hostname,
        "mounts": [*DEFAULT_MOUNTS, *(m.to_oci() for m in c.mounts)],
        "linux": linux,
        "annotations": annotations,
    }
