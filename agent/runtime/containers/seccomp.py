"""The OCI ``linux.seccomp`` section compiled to a BPF program with libseccomp, and loaded.

libseccomp (Debian's libseccomp2, through ctypes: the venv sees no system site packages, so
no Python binding) builds the filter as runc's libcontainer/seccomp does: the default
action, the extra architectures (the 32-bit x86 ABI beside x86_64: ``int 0x80`` is filtered
too), one rule per syscall name with its argument conditions, rules the default action
already covers skipped, names this libseccomp does not know ignored, the binary-tree
optimisation for long lists. As runc's patchbpf does, a few instructions in front answer
ENOSYS, not the default EPERM, for syscall numbers above every one the section names (per
architecture): newer than the profile, so that a libc falls back to an older call instead of
failing. It is exported as raw BPF (``seccomp_export_bpf``) rather than loaded by libseccomp,
so that

* compiling (a few ms for Docker's profile) happens once per distinct section: the fork
  server compiles Docker's default for the default capabilities at its start (``remember``),
  and every container forked from it finds it ready;
* loading is one ``seccomp(2)`` call, made by the executor as late as it can be: after
  no_new_privs and the capabilities, right before exec (before dropping the capabilities when
  no_new_privs is off, since loading a filter then needs CAP_SYS_ADMIN) — runc's order.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent.runtime.containers import syscalls as sc

LIBRARY = "libseccomp.so.2"  # its soname since libseccomp 2.0 (ctypes.util.find_library would run ldconfig)
MAX_RULES = 4096  # syscall entries in a section
MAX_NAMES = 4096  # names in all of them (Docker's profile has about 400)
MAX_NAME = 64
MAX_ARGS = 6  # a syscall has at most six arguments
MAX_INSNS = 4096  # BPF_MAXINSNS: the kernel loads no longer program

_ACT_ALLOW = 0x7FFF0000
_ACTIONS = {
    "SCMP_ACT_KILL": 0x00000000, "SCMP_ACT_KILL_THREAD": 0x00000000, "SCMP_ACT_KILL_PROCESS": 0x80000000,
    "SCMP_ACT_TRAP": 0x00030000, "SCMP_ACT_ERRNO": 0x00050000, "SCMP_ACT_TRACE": 0x7FF00000,
    "SCMP_ACT_LOG": 0x7FFC0000, "SCMP_ACT_ALLOW": _ACT_ALLOW,
}
_WITH_ERRNO = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")  # the low 16 bits carry errnoRet (EPERM by default)
_OPS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4, "SCMP_CMP_GE": 5,
        "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
# seccomp(2) flags; TSYNC means nothing to a single-threaded process about to exec
_FLAGS = {"SECCOMP_FILTER_FLAG_TSYNC": 0, "SECCOMP_FILTER_FLAG_LOG": 2, "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4}
_ATTR_OPTIMIZE = 8
_OPTIMIZE_ABOVE = 32  # rules; as runc (libseccomp <= 2.5.4 misbehaves with a tree of no rules)
_NR_ERROR = -1  # __NR_SCMP_ERROR: a name this libseccomp does not know
_ALLOWING = ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE")  # defaults that need no ENOSYS answer
# libseccomp's architecture tokens are the kernel's AUDIT_ARCH_* values, but for x32, which the
# kernel reports as x86_64 with this bit set in the syscall number
_X32_TOKEN, _X86_64_TOKEN, _X32_BIT = 0x4000003E, 0xC000003E, 0x40000000
# classic BPF (struct sock_filter) and struct seccomp_data
_LD_ABS_W, _JEQ_K, _JGT_K, _JGE_K, _RET_K = 0x20, 0x15, 0x25, 0x35, 0x06
_NR, _ARCH = 0, 4


class SeccompError(ValueError):
    """A seccomp section that cannot be compiled; the message names the field."""


@dataclass(frozen=True)
class Filter:
    """A compiled filter: the BPF program (``struct sock_filter`` array) and seccomp(2) flags."""

    program: bytes
    flags: int = 0

    def load(self) -> None:
        """Install the filter on the calling thread (needs no_new_privs or CAP_SYS_ADMIN)."""
        sc.seccomp_set_filter(self.program, self.flags)


class _ArgCmp(ctypes.Structure):
    _fields_ = (("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64))


_lib: ctypes.CDLL | None = None


def library() -> ctypes.CDLL:
    """libseccomp, opened once (the fork server opens it at start, so that a container's PID 1,
    already inside its own root, never has to find it)."""
    global _lib
    if _lib is None:
        try:
            lib = ctypes.CDLL(LIBRARY, use_errno=True)
        except OSError as e:
            raise OSError(errno.ENOENT, f"libseccomp is not installed (apt package libseccomp2; make deps): {e}") from e
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_init.argtypes = (ctypes.c_uint32,)
        lib.seccomp_release.argtypes = (ctypes.c_void_p,)
        lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
        lib.seccomp_arch_resolve_name.argtypes = (ctypes.c_char_p,)
        lib.seccomp_arch_add.argtypes = (ctypes.c_void_p, ctypes.c_uint32)
        lib.seccomp_attr_set.argtypes = (ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32)
        lib.seccomp_syscall_resolve_name.argtypes = (ctypes.c_char_p,)
        lib.seccomp_rule_add_array.argtypes = (ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                               ctypes.POINTER(_ArgCmp))
        lib.seccomp_export_bpf.argtypes = (ctypes.c_void_p, ctypes.c_int)
        lib.seccomp_arch_native.restype = ctypes.c_uint32
        lib.seccomp_syscall_resolve_name_arch.argtypes = (ctypes.c_uint32, ctypes.c_char_p)
        _lib = lib
    return _lib


def _action(name: Any, errno_ret: Any, where: str) -> int:
    if name == "SCMP_ACT_NOTIFY":
        raise SeccompError(f"{where}: SCMP_ACT_NOTIFY needs a seccomp agent, which this runtime does not have")
    if name not in _ACTIONS:
        raise SeccompError(f"{where}: unknown action {name!r}")
    if name not in _WITH_ERRNO:
        return _ACTIONS[name]
    value = errno.EPERM if errno_ret is None else errno_ret
    if not isinstance(value, int) or not 0 <= value <= 0xFFFF:
        raise SeccompError(f"{where}: errnoRet must be an integer in [0, 65535], not {value!r}")
    return _ACTIONS[name] | value


def _conditions(args: Sequence[Mapping[str, Any]], where: str) -> list[list[_ArgCmp]]:
    """The argument conditions of one entry as the condition lists to add a rule for: one list
    (all must hold), or — when two conditions test the same argument, which libseccomp cannot
    put in one rule — one rule per condition (runc's rule: either matching allows)."""
    if len(args) > MAX_ARGS:
        raise SeccompError(f"{where}: at most {MAX_ARGS} argument conditions, not {len(args)}")
    made = []
    for i, arg in enumerate(args):
        index, op = arg.get("index"), arg.get("op")
        if not isinstance(index, int) or not 0 <= index < MAX_ARGS:
            raise SeccompError(f"{where}.args[{i}].index must be 0..{MAX_ARGS - 1}, not {index!r}")
        if op not in _OPS:
            raise SeccompError(f"{where}.args[{i}].op: unknown operator {op!r}")
        values = [arg.get("value", 0), arg.get("valueTwo", 0)]
        if not all(isinstance(v, int) and 0 <= v < 1 << 64 for v in values):
            raise SeccompError(f"{where}.args[{i}]: value and valueTwo must be integers in [0, 2^64)")
        made.append(_ArgCmp(index, _OPS[op], *values))
    if len({c.arg for c in made}) < len(made):
        return [[c] for c in made]
    return [made]


def compile_filter(section: Mapping[str, Any]) -> Filter:
    """Compile an OCI ``linux.seccomp`` section; SeccompError names what is wrong with it."""
    lib = library()
    default = _action(section.get("defaultAction"), section.get("defaultErrnoRet"), "linux.seccomp.defaultAction")
    flags = 0
    for flag in section.get("flags") or []:
        if flag not in _FLAGS:
            raise SeccompError(f"linux.seccomp.flags: unsupported flag {flag!r}")
        flags |= _FLAGS[flag]
    syscalls = section.get("syscalls") or []
    if not isinstance(syscalls, list) or len(syscalls) > MAX_RULES:
        raise SeccompError(f"linux.seccomp.syscalls must be a list of at most {MAX_RULES} entries")
    names_in_all = sum(len(c.get("names") or []) if isinstance(c, dict) else 0 for c in syscalls)
    if names_in_all > MAX_NAMES:
        raise SeccompError(f"linux.seccomp.syscalls: at most {MAX_NAMES} names in all, not {names_in_all}")
    ctx = lib.seccomp_init(default)
    if not ctx:
        raise SeccompError("linux.seccomp: libseccomp refused the default action")
    try:
        tokens = [lib.seccomp_arch_native()]
        for arch in section.get("architectures") or []:
            token = lib.seccomp_arch_resolve_name(str(arch).removeprefix("SCMP_ARCH_").lower().encode())
            if token == 0:
                raise SeccompError(f"linux.seccomp.architectures: unknown architecture {arch!r}")
            tokens.append(token)
            rc = lib.seccomp_arch_add(ctx, token)
            if rc not in (0, -errno.EEXIST):  # the native one is there already
                raise SeccompError(f"linux.seccomp.architectures: cannot add {arch!r}: {os.strerror(-rc)}")
        if len(syscalls) > _OPTIMIZE_ABOVE:
            lib.seccomp_attr_set(ctx, _ATTR_OPTIMIZE, 2)  # a binary tree; older libseccomp lacks it: no matter
        for n, call in enumerate(syscalls):
            _add_rules(lib, ctx, call, default, f"linux.seccomp.syscalls[{n}]")
        program = _export(lib, ctx)
    finally:
        lib.seccomp_release(ctx)
    if section.get("defaultAction") not in _ALLOWING:
        names = {n for call in syscalls for n in call.get("names") or []}
        program = enosys_stub({t: _largest(lib, t, names) for t in dict.fromkeys(tokens)}) + program
    if len(program) // 8 > MAX_INSNS:
        raise SeccompError(f"linux.seccomp: the filter has {len(program) // 8} instructions; the kernel loads "
                           f"at most {MAX_INSNS}")
    return Filter(program, flags)


def _largest(lib: ctypes.CDLL, token: int, names: set[str]) -> int:
    """The largest syscall number of ``names`` on the architecture ``token`` (0: none known)."""
    return max((lib.seccomp_syscall_resolve_name_arch(token, n.encode()) for n in names), default=0)


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def enosys_stub(largest: Mapping[int, int]) -> bytes:
    """The instructions to put in front of a filter so that a syscall numbered above the
    largest one of its architecture (token -> number) gets ENOSYS; any other falls through:

        per architecture:  ld arch; jeq TOKEN else next; ld nr; [x86_64: jge X32_BIT -> the
                           x32 test, or the filter without x32]; jgt LARGEST -> enosys else filter
        enosys:            ret ERRNO(ENOSYS)
        filter:            (libseccomp's program)
    """
    x32 = largest.get(_X32_TOKEN, 0)
    blocks: list[list[tuple[int, int, str, str]]] = []  # (code, k, jump if true, jump if false)
    for token, top in largest.items():
        if token == _X32_TOKEN or top <= 0:
            continue  # x32 is tested within the x86_64 block
        block = [(_LD_ABS_W, _ARCH, "", ""), (_JEQ_K, token, "", "next"), (_LD_ABS_W, _NR, "", "")]
        if token == _X86_64_TOKEN and x32 > 0:
            block += [(_JGE_K, _X32_BIT, "x32", ""), (_JGT_K, top, "enosys", "filter"), (_JGT_K, x32, "enosys", "filter")]
        elif token == _X86_64_TOKEN:  # an x32 call without x32 in the filter: libseccomp's (bad arch) answer
            block += [(_JGE_K, _X32_BIT, "filter", ""), (_JGT_K, top, "enosys", "filter")]
        else:
            block.append((_JGT_K, top, "enosys", "filter"))
        blocks.append(block)
    flat = [insn for block in blocks for insn in block]
    enosys = len(flat)
    code = []
    at = 0
    for block in blocks:
        following = at + len(block)  # the next block, or past the enosys return to the filter
        targets = {"next": following if following < enosys else enosys + 1, "enosys": enosys, "filter": enosys + 1,
                   "x32": following - 1}
        for n, (op, k, if_true, if_false) in enumerate(block):
            here = at + n
            jt = targets[if_true] - here - 1 if if_true else 0
            jf = targets[if_false] - here - 1 if if_false else 0
            code.append(_insn(op, k, jt, jf))
        at += len(block)
    if not code:
        return b""
    return b"".join(code) + _insn(_RET_K, _ACTIONS["SCMP_ACT_ERRNO"] | errno.ENOSYS)


def _add_rules(lib: ctypes.CDLL, ctx: int, call: Mapping[str, Any], default: int, where: str) -> None:
    if not isinstance(call, dict):
        raise SeccompError(f"{where} must be an object")
    action = _action(call.get("action"), call.get("errnoRet"), f"{where}.action")
    names = call.get("names") or []
    if not isinstance(names, list):
        raise SeccompError(f"{where}.names must be a list of syscall names")
    if action == default:
        return  # nothing to add: libseccomp would refuse it
    condition_lists = _conditions(call.get("args") or [], where)
    for name in names:
        if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME:
            raise SeccompError(f"{where}.names: {name!r} is not a syscall name")
        number = lib.seccomp_syscall_resolve_name(name.encode())
        if number == _NR_ERROR:
            continue  # newer than this libseccomp: the default action answers it, as under runc
        for conditions in condition_lists:
            array = (_ArgCmp * len(conditions))(*conditions)
            rc = lib.seccomp_rule_add_array(ctx, action, number, len(conditions), array)
            if rc != 0:
                raise SeccompError(f"{where}: libseccomp refused the rule for {name}: {os.strerror(-rc)}")


def _export(lib: ctypes.CDLL, ctx: int) -> bytes:
    fd = os.memfd_create("moorage-seccomp", os.MFD_CLOEXEC)
    try:
        rc = lib.seccomp_export_bpf(ctx, fd)
        if rc != 0:
            raise SeccompError(f"linux.seccomp: libseccomp could not generate the filter: {os.strerror(-rc)}")
        size = os.lseek(fd, 0, os.SEEK_CUR)
        return os.pread(fd, size, 0)
    finally:
        os.close(fd)


_compiled: list[tuple[Mapping[str, Any], Filter]] = []
_KEEP = 8


def filter_for(section: Mapping[str, Any]) -> Filter:
    """The compiled filter of ``section``: a remembered one if the section is the same, else compiled."""
    for known, compiled in _compiled:
        if known == section:
            return compiled
    return remember(section)


def remember(section: Mapping[str, Any]) -> Filter:
    """Compile ``section`` and keep it for ``filter_for`` in this process and the ones it forks."""
    compiled = compile_filter(section)
    _compiled.insert(0, (section, compiled))
    del _compiled[_KEEP:]
    return compiled
