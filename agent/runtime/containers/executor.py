"""Inside the container's future PID 1, before exec: apply the bundle's config.json.

Runs in a forked child of the shim that is already PID 1 of its new PID namespace. In order,
as runc does: join the cgroup; unshare the other namespaces; mount the root (the overlay of
the annotations, or a bind of root.path onto itself) and every mount of the config beneath
it; make /dev's nodes; pivot_root; mask and write-protect kernel paths; make the root
read-only if asked; set the hostname and bring up loopback. ``drop_privileges`` then sets
rlimits, user, capabilities, no_new_privs and the seccomp filter right before exec (also used
by exec).

The overlay is mounted in the container's own mount namespace, so the host's mount table
never sees it, and it disappears with the last process of the container.
"""

from __future__ import annotations

import fcntl
import os
import resource
import socket
import stat
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agent.runtime.containers import caps
from agent.runtime.containers import oci
from agent.runtime.containers import seccomp
from agent.runtime.containers import syscalls as sc
from agent.runtime.rootpath import Root, split

NAMESPACE_FLAGS = {"mount": sc.CLONE_NEWNS, "uts": sc.CLONE_NEWUTS, "ipc": sc.CLONE_NEWIPC,
                   "network": sc.CLONE_NEWNET, "pid": sc.CLONE_NEWPID, "user": sc.CLONE_NEWUSER,
                   "cgroup": sc.CLONE_NEWCGROUP}
DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0))
DEV_LINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
             ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx"))

_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_IFREQ = "16sH22x"
_LOCKED = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC  # statvfs f_flag shares these bits with mount(2)...
_ST_RELATIME = 4096  # ...but not this one


def namespace_flags(config: Mapping[str, Any], skip: frozenset[str] = frozenset({"pid", "user"})) -> int:
    flags = 0
    for ns in config["linux"]["namespaces"]:
        if ns["type"] not in skip and not ns.get("path"):
            flags |= NAMESPACE_FLAGS[ns["type"]]
    return flags


def enter(config: Mapping[str, Any], bundle: Path, unshared: Mapping[int, int] | None = None) -> None:
    """Unshare, build the root with its mounts, pivot into it, name the host.

    ``unshared``: namespaces made in advance (see shim.prepare), flag -> an fd of the host's
    namespace of that kind, to go back to where the config does not want a new one.
    """
    for flag, host_fd in (unshared or {}).items():
        if not namespace_flags(config) & flag:
            sc.setns(host_fd, flag)
    for ns in config["linux"]["namespaces"]:
        if ns.get("path"):
            fd = os.open(ns["path"], os.O_RDONLY | os.O_CLOEXEC)
            try:
                sc.setns(fd, NAMESPACE_FLAGS[ns["type"]])
            finally:
                os.close(fd)
    flags = namespace_flags(config)
    sc.unshare(flags & ~sum(unshared or {}))
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
    rootfs = str(bundle / config["root"]["path"])
    notes = config.get("annotations", {})
    if oci.LOWER in notes:
        data = f"lowerdir={notes[oci.LOWER]},upperdir={notes[oci.UPPER]},workdir={notes[oci.WORK]}"
        sc.mount("overlay", rootfs, "overlay", 0, data)
    else:
        sc.mount(rootfs, rootfs, None, sc.MS_BIND | sc.MS_REC)
    os.umask(0o022)
    bind = "user" in {ns["type"] for ns in config["linux"]["namespaces"]}
    nodes = config["linux"].get("devices", [])
    with Root(rootfs, follow=True) as root:
        for m in config.get("mounts", []):
            _mount(root, m)
        if os.path.ismount(os.path.join(rootfs, "dev")):
            _make_devices(os.path.join(rootfs, "dev"), bind, skip={n.get("path") for n in nodes})
        for node in nodes:
            _make_node(root, node, bind)
    _pivot_root(rootfs)
    # From here paths resolve inside the container.
    linux = config["linux"]
    for path in linux.get("readonlyPaths", []):  # runc's order: read-only first, then masked
        _read_only(path)
    for path in linux.get("maskedPaths", []):
        _mask(path)
    if config["root"].get("readonly"):
        sc.mount(None, "/", None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | _flags_of("/"))
    if flags & sc.CLONE_NEWUTS and config.get("hostname"):
        sc.sethostname(config["hostname"])
    if flags & sc.CLONE_NEWNET:
        _loopback_up()


def drop_privileges(process: Mapping[str, Any], syscall_filter: seccomp.Filter | None = None) -> None:
    """rlimits, working dir, user and groups, capabilities, no_new_privs, the seccomp filter: the
    last steps before exec.

    The filter goes on last, so that none of these calls need be in it — unless no_new_privs is
    off: then loading it needs CAP_SYS_ADMIN, so it goes on before the capabilities are dropped
    (runc's order in both cases).
    """
    nnp = bool(process.get("noNewPrivileges"))
    for limit in process.get("rlimits", []):
        resource.setrlimit(getattr(resource, limit["type"]), (limit["soft"], limit["hard"]))
    cwd = process.get("cwd") or "/"
    os.makedirs(cwd, exist_ok=True)
    os.chdir(cwd)
    if syscall_filter is not None and not nnp:
        syscall_filter.load()
    user = process.get("user", {})
    wanted = process.get("capabilities", {})
    bounding = caps.mask(wanted.get("bounding", []))
    for number in range(len(caps.NAMES)):
        if not bounding & (1 << number):
            try:
                sc.prctl(sc.PR_CAPBSET_DROP, number)
            except OSError:
                pass  # a capability this kernel does not know
    sc.prctl(sc.PR_SET_KEEPCAPS, 1)
    os.setgroups(user.get("additionalGids", []))
    os.setgid(user.get("gid", 0))
    os.setuid(user.get("uid", 0))
    sc.capset(caps.mask(wanted.get("effective", [])), caps.mask(wanted.get("permitted", [])),
              caps.mask(wanted.get("inheritable", [])))
    for name in wanted.get("ambient", []):
        sc.prctl(sc.PR_CAP_AMBIENT, sc.PR_CAP_AMBIENT_RAISE, caps.NUMBER[name.removeprefix("CAP_")])
    if nnp:
        sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
        if syscall_filter is not None:
            syscall_filter.load()


def syscall_filter(config: Mapping[str, Any]) -> seccomp.Filter | None:
    """The compiled filter of the config's ``linux.seccomp`` (None: unconfined). Compile it before
    entering the container: the compiler's library is outside the container's root."""
    section = config.get("linux", {}).get("seccomp")
    return seccomp.filter_for(section) if section else None


def _flags_of(path: str) -> int:
    """The flags a bind remount of ``path`` must keep (in a user namespace they are locked)."""
    flags = os.statvfs(path).f_flag
    atime = sc.MS_RELATIME if flags & _ST_RELATIME else 0
    return (flags & (_LOCKED | sc.MS_NOATIME | sc.MS_NODIRATIME)) | atime


def _mount(root: Root, m: Mapping[str, Any]) -> None:
    """Mount ``m`` on its destination resolved in the rootfs (symlinks followed inside it, the
    mount point made there if missing), through an fd of the mount point: a symlink a running
    container swaps into a shared volume meanwhile cannot move the mount, or a file it makes,
    onto the host (as runc does since CVE-2021-30465)."""
    options = oci.parse_options(m.get("options", []))
    kind = m.get("type") or ""
    bind = kind == "bind" or bool(options.flags & sc.MS_BIND)
    destination = m["destination"]
    fd = root.make_dirs(destination) if not bind or os.path.isdir(m["source"]) else root.make_file(destination)
    try:
        if bind:
            sc.mount(m["source"], _fd_path(fd), None, sc.MS_BIND | (options.flags & sc.MS_REC))
        else:
            sc.mount(m.get("source"), _fd_path(fd), kind, options.flags, options.data or None)
    finally:
        os.close(fd)
    rest = options.flags & ~(sc.MS_BIND | sc.MS_REC) if bind else 0
    if not rest and not options.propagation:
        return
    fd = root.open(destination, os.O_PATH)  # the walk now ends in the mount just made
    try:
        if rest:
            sc.mount(None, _fd_path(fd), None, sc.MS_BIND | sc.MS_REMOUNT | rest | _flags_of(_fd_path(fd)))
        if options.propagation:
            sc.mount(None, _fd_path(fd), None, options.propagation)
    finally:
        os.close(fd)


def _fd_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def _make_devices(dev: str, bind: bool, skip: set[str]) -> None:
    """The standard nodes (but those of ``skip``, which the config's own devices replace): made, or
    (in a user namespace, where mknod is not allowed) bound from the host's."""
    for name, major, minor in DEVICES:
        if f"/dev/{name}" in skip:
            continue
        path = f"{dev}/{name}"
        if bind:
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o666))
            sc.mount(f"/dev/{name}", path, None, sc.MS_BIND)
            continue
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(major, minor))
        os.chmod(path, 0o666)  # mknod's mode is filtered by the umask
    for name, target in DEV_LINKS:
        os.symlink(target, f"{dev}/{name}")
    if os.path.exists("/proc/kcore"):  # as runc: only where the kernel has one
        os.symlink("/proc/kcore", f"{dev}/core")


def _make_node(root: Root, node: Mapping[str, Any], bind: bool) -> None:
    """One ``linux.devices`` entry; in a user namespace bound from the host's node of the same path, as runc does.
    (Moorage's own configs put them under /dev; a config.json of another origin may put them anywhere:
    the path is resolved in the rootfs, its parent made there, and the node made in that parent's fd.)"""
    kinds = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK}
    if node.get("type") not in kinds:
        raise OSError(f"device {node['path']}: type must be c or b, not {node.get('type')!r}")
    parent_path, name = split(node["path"])
    parent = root.make_dirs(parent_path)
    try:
        try:
            os.lstat(name, dir_fd=parent)
        except FileNotFoundError:
            pass
        else:
            raise OSError(f"device {node['path']}: something is at that path in the container already")
        mode = node.get("fileMode", 0o666) & 0o7777
        if bind:
            os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600, dir_fd=parent))
            target = root.open(node["path"], os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                sc.mount(node["path"], _fd_path(target), None, sc.MS_BIND)
            finally:
                os.close(target)
            return
        os.mknod(name, kinds[node["type"]] | mode, os.makedev(node["major"], node["minor"]), dir_fd=parent)
        made = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        try:  # on the node itself (Linux has no lchmod): its mode was filtered by the umask
            os.chmod(_fd_path(made), mode)
            os.chown(_fd_path(made), node.get("uid", 0), node.get("gid", 0))
        finally:
            os.close(made)
    finally:
        os.close(parent)


def _pivot_root(new_root: str) -> None:
    """pivot_root(".", ".") then detach the old root stacked on top: no put_old directory needed."""
    old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY)
    try:
        os.chdir(new_root)
        sc.pivot_root(".", ".")
        os.fchdir(old_root)
        sc.umount2(".", sc.MNT_DETACH)
    finally:
        os.close(old_root)
    os.chdir("/")


def _mask(path: str) -> None:
    """runc's maskPath: /dev/null over a file, an empty read-only tmpfs over a directory."""
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            sc.mount("tmpfs", path, "tmpfs", sc.MS_RDONLY)
        else:
            sc.mount("/dev/null", path, None, sc.MS_BIND)
    except FileNotFoundError:
        pass


def _read_only(path: str) -> None:
    try:
        sc.mount(path, path, None, sc.MS_BIND | sc.MS_REC)
    except FileNotFoundError:
        return
    sc.mount(None, path, None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | sc.MS_REC | _flags_of(path))


def _loopback_up() -> None:
    """The new network namespace starts with ``lo`` down; local services expect 127.0.0.1 to work."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        flags = struct.unpack(_IFREQ, fcntl.ioctl(s, _SIOCGIFFLAGS, struct.pack(_IFREQ, b"lo", 0)))[1]
        fcntl.ioctl(s, _SIOCSIFFLAGS, struct.pack(_IFREQ, b"lo", flags | _IFF_UP))
