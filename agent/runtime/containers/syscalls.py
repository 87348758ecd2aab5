"""Thin ctypes wrappers over the libc calls the runtime needs.

Only what Python's ``os`` module lacks (in 3.11): unshare, setns, mount, umount2,
pivot_root, sethostname, prctl, capset, seccomp and the two bpf commands of a cgroup device
program. Each raises ``OSError`` with the errno and
the call's arguments.
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24

MNT_DETACH = 2

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_SET_NAME = 15
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2

_LINUX_CAPABILITY_VERSION_3 = 0x20080522

# glibc has no pivot_root() wrapper; the syscall number depends on the architecture.
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}
_SYS_CAPSET = {"x86_64": 126, "aarch64": 91, "riscv64": 91, "ppc64le": 184, "s390x": 185}
_SYS_SECCOMP = {"x86_64": 317, "aarch64": 277, "riscv64": 277, "ppc64le": 358, "s390x": 348}
_SECCOMP_SET_MODE_FILTER = 1
_SYS_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361, "s390x": 351}
_BPF_PROG_LOAD = 5
_BPF_PROG_ATTACH = 8
_BPF_PROG_TYPE_CGROUP_DEVICE = 15
_BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2
_BPF_INSN_SIZE = 8
_BPF_LOG_SIZE = 4096
_SOCK_FILTER_SIZE = 8  # struct sock_filter: u16 code, u8 jt, u8 jf, u32 k

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p)
_libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)
_libc.unshare.argtypes = (ctypes.c_int,)
_libc.setns.argtypes = (ctypes.c_int, ctypes.c_int)
_libc.sethostname.argtypes = (ctypes.c_char_p, ctypes.c_size_t)
_libc.prctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong)
_libc.syscall.restype = ctypes.c_long


class _CapHeader(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_char_p))


class _CapData(ctypes.Structure):
    _fields_ = (("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32))


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _b(value: str | os.PathLike[str] | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), f"unshare({flags:#x})")


def setns(fd: int, nstype: int = 0) -> None:
    _check(_libc.setns(fd, nstype), f"setns({nstype:#x})")


def mount(
    source: str | None,
    target: str | os.PathLike[str],
    fstype: str | None,
    flags: int = 0,
    data: str | None = None,
) -> None:
    _check(
        _libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)),
        f"mount {source or ''} on {os.fspath(target)} (type {fstype}, flags {flags:#x})",
    )


def umount2(target: str | os.PathLike[str], flags: int = 0) -> None:
    _check(_libc.umount2(_b(target), flags), f"umount2({os.fspath(target)})")


def pivot_root(new_root: str | os.PathLike[str], put_old: str | os.PathLike[str]) -> None:
    number = _SYS_PIVOT_ROOT[platform.machine()]
    _check(_libc.syscall(ctypes.c_long(number), _b(new_root), _b(put_old)), f"pivot_root({os.fspath(new_root)})")


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, len(raw)), f"sethostname({name})")


def prctl(option: int, arg2: int = 0, arg3: int = 0) -> None:
    _check(_libc.prctl(option, arg2, arg3, 0, 0), f"prctl({option}, {arg2})")


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """Set this thread's capability sets (64-bit masks)."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)(
        _CapData(effective & 0xFFFFFFFF, permitted & 0xFFFFFFFF, inheritable & 0xFFFFFFFF),
        _CapData(effective >> 32, permitted >> 32, inheritable >> 32),
    )
    number = _SYS_CAPSET[platform.machine()]
    _check(_libc.syscall(ctypes.c_long(number), ctypes.byref(header), data), "capset")


def seccomp_set_filter(program: bytes, flags: int = 0) -> None:
    """seccomp(SECCOMP_SET_MODE_FILTER): install the BPF ``program`` on the calling thread."""
    prog = _SockFprog(len(program) // _SOCK_FILTER_SIZE, program)
    number = _SYS_SECCOMP[platform.machine()]
    _check(_libc.syscall(ctypes.c_long(number), ctypes.c_long(_SECCOMP_SET_MODE_FILTER), ctypes.c_long(flags),
                         ctypes.byref(prog)), "seccomp(SECCOMP_SET_MODE_FILTER)")


def _bpf(command: int, attr: ctypes.Array[ctypes.c_char], what: str) -> int:
    number = _SYS_BPF[platform.machine()]
    result = _libc.syscall(ctypes.c_long(number), ctypes.c_long(command), attr, ctypes.c_long(len(attr)))
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return int(result)


def bpf_load_device_program(program: bytes, license: str) -> int:
    """BPF_PROG_LOAD of a BPF_PROG_TYPE_CGROUP_DEVICE program; returns its fd (close-on-exec).
    A refused program is loaded once more with the verifier's log on, for the error message."""
    insns = ctypes.create_string_buffer(program, len(program))
    lic = ctypes.create_string_buffer(license.encode())
    log = ctypes.create_string_buffer(_BPF_LOG_SIZE)

    def attempt(log_level: int) -> int:
        attr = ctypes.create_string_buffer(struct.pack(
            "<IIQQIIQII16sII", _BPF_PROG_TYPE_CGROUP_DEVICE, len(program) // _BPF_INSN_SIZE, ctypes.addressof(insns),
            ctypes.addressof(lic), log_level, _BPF_LOG_SIZE if log_level else 0, ctypes.addressof(log) if log_level else 0,
            0, 0, b"moorage_devices", 0, 0), 80)
        return _bpf(_BPF_PROG_LOAD, attr, "bpf(BPF_PROG_LOAD, cgroup device program)")

    try:
        return attempt(0)
    except OSError as first:
        try:
            return attempt(1)
        except OSError:
            verifier = log.value.decode(errors="replace").strip()
            raise OSError(first.errno, f"{first.strerror}{': ' + verifier if verifier else ''}") from None


def bpf_attach_device_program(cgroup_fd: int, program_fd: int, flags: int = BPF_F_ALLOW_MULTI) -> None:
    """BPF_PROG_ATTACH of a device program to the cgroup v2 directory open as ``cgroup_fd``."""
    attr = ctypes.create_string_buffer(struct.pack("<IIIII", cgroup_fd, program_fd, _BPF_CGROUP_DEVICE, flags, 0), 20)
    _bpf(_BPF_PROG_ATTACH, attr, "bpf(BPF_PROG_ATTACH, BPF_CGROUP_DEVICE)")
