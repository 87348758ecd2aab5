"""Inside the new namespaces, before exec: the container's root file system, hostname and loopback.

Runs in the container's future PID 1 (a forked child of the shim, already PID 1 of its new
PID namespace). The overlay is mounted in the container's own mount namespace, so the host's
mount table never sees it, and it disappears with the last process of the container.
"""

from __future__ import annotations

import fcntl
import os
import socket
import stat
import struct
from pathlib import Path

from agent.runtime import syscalls as sc
from agent.runtime.bundle import Bundle, ContainerDir

# The PID namespace is unshared by the shim (it applies to the shim's next child); these by the child.
NAMESPACES = sc.CLONE_NEWNS | sc.CLONE_NEWUTS | sc.CLONE_NEWIPC | sc.CLONE_NEWNET

DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0))
DEV_LINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
             ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx"))

_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_IFREQ = "16sH22x"


def overlay_options(lower_dirs: tuple[str, ...], upper: Path, work: Path) -> str:
    """Mount data for overlayfs; overlayfs lists lower dirs top first, the bundle lowest first."""
    return f"lowerdir={':'.join(reversed(lower_dirs))},upperdir={upper},workdir={work}"


def enter(bundle: Bundle, cdir: ContainerDir) -> None:
    """Unshare, mount the root and the API file systems, pivot into it, name the host."""
    sc.unshare(NAMESPACES)
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
    sc.mount("overlay", cdir.rootfs, "overlay", 0, overlay_options(bundle.lower_dirs, cdir.upper, cdir.work))
    _pivot_root(cdir.rootfs)
    # From here paths resolve inside the container: an image symlink cannot point a mount at the host.
    _mount_api_filesystems()
    sc.sethostname(bundle.hostname)
    _loopback_up()


def _pivot_root(new_root: Path) -> None:
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


def _mount_api_filesystems() -> None:
    os.umask(0o022)
    os.makedirs("/proc", exist_ok=True)
    sc.mount("proc", "/proc", "proc", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)
    os.makedirs("/dev", exist_ok=True)
    sc.mount("tmpfs", "/dev", "tmpfs", sc.MS_NOSUID, "mode=755,size=65536k")
    for name, major, minor in DEVICES:
        os.mknod(f"/dev/{name}", stat.S_IFCHR | 0o666, os.makedev(major, minor))
        os.chmod(f"/dev/{name}", 0o666)  # mknod's mode is filtered by the umask
    os.mkdir("/dev/pts")
    sc.mount("devpts", "/dev/pts", "devpts", sc.MS_NOSUID | sc.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620")
    os.mkdir("/dev/shm")
    sc.mount("shm", "/dev/shm", "tmpfs", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC, "mode=1777,size=65536k")
    for name, target in DEV_LINKS:
        os.symlink(target, f"/dev/{name}")
    try:
        os.makedirs("/sys", exist_ok=True)
        sc.mount("sysfs", "/sys", "sysfs", sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)
    except OSError:
        pass  # sysfs is a convenience: a container runs without it where the kernel refuses it


def _loopback_up() -> None:
    """The new network namespace starts with ``lo`` down; local services expect 127.0.0.1 to work."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        flags = struct.unpack(_IFREQ, fcntl.ioctl(s, _SIOCGIFFLAGS, struct.pack(_IFREQ, b"lo", 0)))[1]
        fcntl.ioctl(s, _SIOCSIFFLAGS, struct.pack(_IFREQ, b"lo", flags | _IFF_UP))
