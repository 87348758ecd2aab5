"""cgroups v1 and v2: where a container's cgroup lives, the limit files, OOM counting, kill-all.

The controllers the runtime uses are memory, cpu and pids. Each may sit on a v1 hierarchy of
its own (``/sys/fs/cgroup/memory``) or on the unified v2 hierarchy; a hybrid host (this
development machine: v1 controllers, a controller-less v2 mount at /sys/fs/cgroup/unified)
uses v1 for each controller it has there. Device rules (see devices.py) go to the v1 devices
controller where it is mounted, else to the v2 hierarchy as an eBPF program (which needs no
controller: it works on a hybrid's controller-less mount too). A relative cgroup path is taken
below the calling process's own cgroup in each hierarchy, as runc does with a relative
``cgroupsPath``, so an agent running inside a limited cgroup keeps its containers under that
limit.

The file formats are pure functions (``v1_files``, ``v2_files``, ``oom_kills``) tested without
a kernel; ``Cgroup`` does the I/O.
"""

from __future__ import annotations

import errno
import functools
import os
import signal
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.runtime.containers import devices
from agent.runtime.containers import syscalls as sc
from agent.runtime.containers.devices import Allowlist, DeviceRule

CONTROLLERS = ("memory", "cpu", "pids")
DEVICES = "devices"  # the v1 controller; not one of CONTROLLERS (v2 has none: an eBPF program does its work)
V2 = ""  # the key of the unified hierarchy in Hierarchies.mounts
BPF_LICENSE = "Apache-2.0"  # the program calls no helper, so any licence string loads
DEFAULT_PERIOD_US = 100_000


@dataclass(frozen=True)
class Limits:
    memory_bytes: int = 0  # 0 = unlimited
    cpu_shares: int = 0  # relative weight, 1024 = one "normal" share (Docker's --cpu-shares); 0 = default
    cpu_quota_us: int = 0  # CPU time per period; 0 = unlimited
    cpu_period_us: int = DEFAULT_PERIOD_US
    pids: int = 0  # 0 = unlimited

    @classmethod
    def from_millicores(cls, millis: int, **rest: int) -> Limits:
        """``millis`` of CPU (1000 = one core) as a CFS quota over the default period."""
        return cls(cpu_quota_us=millis * DEFAULT_PERIOD_US // 1000 if millis else 0, **rest)


def shares_to_weight(shares: int) -> int:
    """cgroup v1 cpu.shares [2, 262144] -> v2 cpu.weight [1, 10000], runc's linear conversion."""
    return 1 + ((shares - 2) * 9999) // 262142


def v1_files(limits: Limits) -> dict[tuple[str, str], str]:
    """(controller, file) -> content for a v1 cgroup; nothing for unset limits."""
    files: dict[tuple[str, str], str] = {}
    if limits.memory_bytes:
        files["memory", "memory.limit_in_bytes"] = str(limits.memory_bytes)
    if limits.cpu_shares:
        files["cpu", "cpu.shares"] = str(limits.cpu_shares)
    if limits.cpu_quota_us:
        files["cpu", "cpu.cfs_period_us"] = str(limits.cpu_period_us)
        files["cpu", "cpu.cfs_quota_us"] = str(limits.cpu_quota_us)
    if limits.pids:
        files["pids", "pids.max"] = str(limits.pids)
    return files


def v2_files(limits: Limits) -> dict[tuple[str, str], str]:
    """(controller, file) -> content for a v2 cgroup; nothing for unset limits."""
    files: dict[tuple[str, str], str] = {}
    if limits.memory_bytes:
        files["memory", "memory.max"] = str(limits.memory_bytes)
        files["memory", "memory.swap.max"] = "0"  # as with v1 without memsw: the limit is the limit
    if limits.cpu_shares:
        files["cpu", "cpu.weight"] = str(shares_to_weight(limits.cpu_shares))
    if limits.cpu_quota_us:
        files["cpu", "cpu.max"] = f"{limits.cpu_quota_us} {limits.cpu_period_us}"
    if limits.pids:
        files["pids", "pids.max"] = str(limits.pids)
    return files


def oom_kills(text: str) -> int:
    """The ``oom_kill N`` counter of v1 memory.oom_control or v2 memory.events (0 when absent)."""
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill":
            return int(value)
    return 0


def own_cgroups(proc_self_cgroup: str) -> dict[str, str]:
    """Controller (``""`` for v2) -> this process's cgroup path, from /proc/self/cgroup."""
    paths: dict[str, str] = {}
    for line in proc_self_cgroup.splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [V2]:
            paths[controller] = path
    return paths


def hierarchies(mounts: str) -> dict[str, Path]:
    """Controller (``""`` for the unified hierarchy) -> mount point, from /proc/self/mounts."""
    found: dict[str, Path] = {}
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        if fields[2] == "cgroup2":
            found.setdefault(V2, Path(fields[1]))
        elif fields[2] == "cgroup":
            for option in fields[3].split(","):
                if option in (*CONTROLLERS, DEVICES):
                    found.setdefault(option, Path(fields[1]))
    return found


@functools.cache
def layout() -> tuple[dict[str, Path], dict[str, str]]:
    """(hierarchies, own cgroups) of this process, read once: the fork server reads it at start
    and every shim it forks inherits the answer."""
    return hierarchies(Path("/proc/self/mounts").read_text()), own_cgroups(Path("/proc/self/cgroup").read_text())


def warm_migration() -> None:
    """Move the caller into the cgroup it is already in: a no-op that takes the kernel's
    cgroup migration lock for writing.

    The first migration after a quiet spell waits for an RCU grace period (percpu_rwsem ->
    rcu_sync: ~1-10 ms here, more under load); migrations that follow within about one grace
    period do not. The fork server calls this right after forking a shim, so the grace period
    runs while the shim reads its bundle and forks PID 1, instead of after, when the shim
    moves PID 1 into its cgroup (measured in bench/runtime.py).
    """
    mounts, own = layout()
    key = "pids" if "pids" in mounts else V2
    if key in mounts:
        try:
            (mounts[key] / own.get(key, "/").lstrip("/") / "cgroup.procs").write_text("0")
        except OSError:
            pass  # only an optimisation


@dataclass(frozen=True)
class Cgroup:
    """One cgroup, as a directory per v1 controller, or one v2 directory; and where its device
    rules go (``devices``: a v1 devices directory, or with ``devices_v2`` a v2 directory)."""

    dirs: dict[str, Path]  # controller -> directory (all the same directory under v2)
    v2: bool
    devices: Path | None = None
    devices_v2: bool = False

    @classmethod
    def locate(cls, path: str) -> Cgroup:
        return cls.within(path, *layout())

    @classmethod
    def within(cls, path: str, mounts: dict[str, Path], own: dict[str, str]) -> Cgroup:
        """The cgroup at ``path`` given the mounted hierarchies and our own cgroups (see layout)."""
        v1 = all(c in mounts for c in CONTROLLERS)
        if not v1 and V2 not in mounts:
            raise OSError(errno.ENOENT, "no cgroup hierarchy with the memory, cpu and pids controllers is mounted")

        def directory(key: str) -> Path:
            base = path if path.startswith("/") else f"{own.get(key, '/').rstrip('/')}/{path}"
            return mounts[key] / base.lstrip("/")

        dirs = {controller: directory(controller if v1 else V2) for controller in CONTROLLERS}
        device_key = DEVICES if v1 and DEVICES in mounts else V2 if V2 in mounts else None
        return cls(dirs, v2=not v1, devices=directory(device_key) if device_key is not None else None,
                   devices_v2=device_key == V2)

    def _all_dirs(self) -> set[Path]:
        return {*self.dirs.values(), *([self.devices] if self.devices is not None else [])}

    def create(self, limits: Limits, device_rules: Sequence[DeviceRule] | None = None) -> None:
        """Make the cgroup with ``limits``; with ``device_rules``, only the devices they allow can
        be opened or made from inside (an OSError if this host has no way to enforce them)."""
        for directory in set(self.dirs.values()):
            if self.v2:
                _make_delegated(directory)
            else:
                directory.mkdir(parents=True, exist_ok=True)
        for (controller, name), value in (v2_files if self.v2 else v1_files)(limits).items():
            (self.dirs[controller] / name).write_text(value)
        if self.devices is not None:
            self.devices.mkdir(parents=True, exist_ok=True)  # joined even without rules (then it allows all)
        if device_rules is not None:
            self._confine_devices(device_rules)

    def _confine_devices(self, rules: Sequence[DeviceRule]) -> None:
        if self.devices is None:
            raise OSError(errno.ENOENT, "device rules cannot be enforced: neither the v1 devices controller "
                                        "nor a cgroup2 hierarchy is mounted")
        if self.devices_v2:
            program = sc.bpf_load_device_program(devices.bpf_program(Allowlist.of(rules)), BPF_LICENSE)
            try:
                directory = os.open(self.devices, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
                try:
                    sc.bpf_attach_device_program(directory, program)  # the cgroup holds it from now on
                finally:
                    os.close(directory)
            finally:
                os.close(program)
            return
        listing = self.devices / "devices.list"
        expected = Allowlist.of(rules, start=Allowlist.parse(listing.read_text()))
        for name, line in devices.v1_lines(rules):
            (self.devices / name).write_text(line)
        got = Allowlist.parse(listing.read_text())
        if got.listing() != expected.listing():  # as runc checks: the kernel must hold what we meant
            raise OSError(errno.EINVAL, f"the devices cgroup {self.devices} holds {sorted(got.listing())}, "
                                        f"not {sorted(expected.listing())}")

    def join(self, pid: int = 0) -> None:
        """Move ``pid`` (0: the caller) into this cgroup."""
        for directory in self._all_dirs():
            (directory / "cgroup.procs").write_text(str(pid))

    def oom_count(self) -> int:
        """OOM kills in this cgroup so far."""
        name = "memory.events" if self.v2 else "memory.oom_control"
        try:
            return oom_kills((self.dirs["memory"] / name).read_text())
        except FileNotFoundError:
            return 0

    def pids(self) -> set[int]:
        """Every process in the cgroup and below it."""
        found: set[int] = set()
        for directory in self._all_dirs():
            for procs in _walk(directory, "cgroup.procs"):
                found |= {int(p) for p in procs.read_text().split()}
        return found

    def kill_all(self) -> None:
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def remove(self) -> bool:
        """rmdir the cgroup and its children, deepest first; False while some are still busy."""
        done = True
        for directory in self._all_dirs():
            for procs in sorted(_walk(directory, "cgroup.procs"), key=lambda p: -len(p.parts)):
                try:
                    procs.parent.rmdir()
                except FileNotFoundError:
                    pass
                except OSError as e:
                    if e.errno != errno.EBUSY:
                        raise
                    done = False
        return done


def _walk(directory: Path, name: str) -> Iterator[Path]:
    if not directory.is_dir():
        return
    for root, _, files in os.walk(directory):
        if name in files:
            yield Path(root) / name


def _make_delegated(directory: Path) -> None:
    """v2: make ``directory`` and its missing ancestors, each ancestor delegating our controllers
    (a child gets a controller's files only where its parent lists it in cgroup.subtree_control)."""
    for level in [*reversed(directory.parents), directory]:
        if not ((level / "cgroup.controllers").exists() or (level.parent / "cgroup.controllers").exists()):
            continue  # above the mount point
        level.mkdir(exist_ok=True)
        if level != directory:
            control = level / "cgroup.subtree_control"
            missing = set(CONTROLLERS) - set(control.read_text().split())
            if missing:
                control.write_text(" ".join(f"+{c}" for c in sorted(missing)))
