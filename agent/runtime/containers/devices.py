"""Device access rules: the default allowlist, the OCI form, and their two kernel forms; the
device nodes a manifest adds (pure, but for ``DeviceNode.of_host``, which stats the host's node).

A container may read, write and make (mknod) only the devices its rules allow. The rules are
the OCI ``linux.resources.devices`` list, applied in order, later rules winning: the default
(``DEFAULT_RULES``) first denies everything, then allows the nodes every container has —
null, zero, full, random, urandom, tty, ptmx and the pseudo-terminals — as runc does (its
AllowedDevices; a container's /dev/console is a pseudo-terminal there). Not the host's system
console (c 5:1), which Docker's spec adds: a container that made that node could write to the
host's console. Unlike runc, which always adds ``c *:* m`` and ``b *:* m``, mknod of any other
device is refused as well: a node a container made could otherwise be opened by whatever later
mounts its filesystem with looser rules. (runc's c 10:200, /dev/net/tun, kept there for old
users, is not given either: a ``devices:`` entry can.)
A ``devices:`` entry of the manifest adds an allow rule for its own node (with ``m``, so that
the node can be made in the container's /dev).

The kernel takes them in one of two forms:

* cgroup v1: lines written in order to ``devices.deny`` / ``devices.allow`` (``v1_lines``);
* cgroup v2: an eBPF program of type BPF_PROG_TYPE_CGROUP_DEVICE attached to the cgroup
  (``bpf_program``), which answers each access with 1 (allow) or 0 (deny). The rules are first
  reduced to what v1 would hold (``Allowlist``: a default and exceptions, the kernel's own
  semantics), so that both forms decide alike, as runc's devicefilter does with its emulator.
"""

from __future__ import annotations

import os
import stat
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

MAX_RULES = 256
MAX_MAJOR = (1 << 12) - 1  # the kernel's dev_t: 12 bits of major, 20 of minor
MAX_MINOR = (1 << 20) - 1
ACCESS = "rwm"
KINDS = ("a", "c", "b")  # all, char, block


@dataclass(frozen=True)
class DeviceRule:
    allow: bool
    kind: str = "a"
    major: int | None = None  # None: any
    minor: int | None = None
    access: str = ACCESS

    def to_oci(self) -> dict[str, Any]:
        rule: dict[str, Any] = {"allow": self.allow, "type": self.kind, "access": self.access}
        if self.major is not None:
            rule["major"] = self.major
        if self.minor is not None:
            rule["minor"] = self.minor
        return rule

    def line(self) -> str:
        """The cgroup v1 form: ``c 1:3 rwm``, ``a *:* rwm``."""
        major = "*" if self.major is None else self.major
        minor = "*" if self.minor is None else self.minor
        return f"{self.kind} {major}:{minor} {self.access}"

    def same_node(self, other: DeviceRule) -> bool:
        return (self.kind, self.major, self.minor) == (other.kind, other.major, other.minor)


def _char(major: int, minor: int | None) -> DeviceRule:
    return DeviceRule(True, "c", major, minor)


DEFAULT_RULES = (
    DeviceRule(False),
    _char(1, 3), _char(1, 5), _char(1, 7), _char(1, 8), _char(1, 9),  # null zero full random urandom
    _char(5, 0), _char(5, 2),  # tty ptmx
    _char(136, None),  # /dev/pts/*
)


def _sort_access(access: str) -> str:
    return "".join(c for c in ACCESS if c in access)


def parse_access(access: object, where: str) -> str:
    if not isinstance(access, str) or not access or set(access) - set(ACCESS) or len(access) > len(ACCESS):
        raise ValueError(f"{where}: access must be made of r, w and m, not {access!r}")
    return _sort_access(access)


def _number(value: object, limit: int, where: str) -> int | None:
    if value is None or value == -1:  # -1: the "any" of runc's configs
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= limit:
        raise ValueError(f"{where} must be an integer in [0, {limit}], not {value!r}")
    return value


def from_oci(rules: Sequence[Mapping[str, Any]]) -> tuple[DeviceRule, ...]:
    """The OCI ``linux.resources.devices`` list, checked; ValueError names the bad entry."""
    if len(rules) > MAX_RULES:
        raise ValueError(f"linux.resources.devices: at most {MAX_RULES} rules, not {len(rules)}")
    parsed = []
    for i, rule in enumerate(rules):
        where = f"linux.resources.devices[{i}]"
        kind = rule.get("type") or "a"
        if kind not in KINDS:
            raise ValueError(f"{where}.type must be a, c or b, not {kind!r}")
        if not isinstance(rule.get("allow"), bool):
            raise ValueError(f"{where}.allow must be true or false")
        parsed.append(DeviceRule(
            allow=rule["allow"], kind=kind,
            major=_number(rule.get("major"), MAX_MAJOR, f"{where}.major"),
            minor=_number(rule.get("minor"), MAX_MINOR, f"{where}.minor"),
            access=parse_access(rule.get("access") or ACCESS, f"{where}.access"),
        ))
    return tuple(parsed)


@dataclass(frozen=True)
class DeviceNode:
    """A host device made in the container (``docker run --device``): an OCI ``linux.devices``
    entry, and the rule that lets the container use it with ``access`` (and make its node)."""

    path: str  # in the container
    kind: str  # c or b
    major: int
    minor: int
    access: str = ACCESS
    file_mode: int = 0o666
    uid: int = 0
    gid: int = 0

    @classmethod
    def of_host(cls, host_path: str, path: str = "", access: str = ACCESS) -> DeviceNode:
        """The node at ``host_path`` (links followed: /dev/disk/by-id/... names are links) as
        ``path`` in the container, which must be under /dev (the container's own tmpfs: a node
        made elsewhere would land in its image layer or, through a volume, on the host's disk);
        ValueError if it is not a character or block device."""
        where = os.path.normpath(path or host_path)
        if not where.startswith("/dev/"):
            raise ValueError(f"device {host_path}: its path in the container must be under /dev/, not {where!r}")
        try:
            st = os.stat(host_path)
        except OSError as e:
            raise ValueError(f"device {host_path}: {e.strerror}") from None
        if not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
            raise ValueError(f"device {host_path} is not a character or block device")
        return cls(where, "c" if stat.S_ISCHR(st.st_mode) else "b", os.major(st.st_rdev),
                   os.minor(st.st_rdev), parse_access(access, f"device {host_path}"), stat.S_IMODE(st.st_mode),
                   st.st_uid, st.st_gid)

    def to_oci(self) -> dict[str, Any]:
        return {"path": self.path, "type": self.kind, "major": self.major, "minor": self.minor,
                "fileMode": self.file_mode, "uid": self.uid, "gid": self.gid}

    def rule(self) -> DeviceRule:
        return DeviceRule(True, self.kind, self.major, self.minor, _sort_access(self.access + "m"))


def v1_lines(rules: Iterable[DeviceRule]) -> list[tuple[str, str]]:
    """(file, line) to write in order into a v1 devices cgroup."""
    return [("devices.allow" if r.allow else "devices.deny", r.line()) for r in rules]


@dataclass(frozen=True)
class Allowlist:
    """What v1 keeps of a list of rules: a default and the exceptions to it (kernel semantics:
    ``a`` resets both; a rule against the default adds to an exception; one with it takes access
    away from an exception of the very same node)."""

    default_allow: bool
    exceptions: tuple[DeviceRule, ...]

    @classmethod
    def of(cls, rules: Iterable[DeviceRule], start: Allowlist | None = None) -> Allowlist:
        """The state after ``rules``, from ``start`` (allow all by default; a new v1 cgroup
        starts with its parent's list)."""
        default_allow = True if start is None else start.default_allow
        exceptions = [] if start is None else list(start.exceptions)
        for rule in rules:
            if rule.kind == "a":
                default_allow, exceptions = rule.allow, []
            elif rule.allow == default_allow:
                kept = []
                for ex in exceptions:
                    if ex.same_node(rule):
                        ex = replace(ex, access=_sort_access(set(ex.access) - set(rule.access)))
                    if ex.access:
                        kept.append(ex)
                exceptions = kept
            else:
                for n, ex in enumerate(exceptions):
                    if ex.same_node(rule):
                        exceptions[n] = replace(ex, access=_sort_access(ex.access + rule.access))
                        break
                else:
                    exceptions.append(replace(rule, allow=not default_allow))
        return cls(default_allow, tuple(exceptions))

    def allows(self, kind: str, major: int, minor: int, access: str) -> bool:
        """The kernel's answer for one access (``kind`` c or b; ``access`` one or more of rwm)."""
        for ex in self.exceptions:
            if ex.kind != kind or ex.major not in (None, major) or ex.minor not in (None, minor):
                continue
            if self.default_allow and set(access) & set(ex.access):
                return False  # a deny exception touching any of the asked access
            if not self.default_allow and set(access) <= set(ex.access):
                return True
        return self.default_allow

    def listing(self) -> set[str]:
        """The lines of devices.list for this state: the kernel shows the exceptions of an
        allowlist, and only ``a *:* rwm`` for a denylist (its exceptions stay unseen)."""
        if self.default_allow:
            return {"a *:* rwm"}
        return {ex.line() for ex in self.exceptions}

    @classmethod
    def parse(cls, listing: str) -> Allowlist:
        """A v1 cgroup's state from its devices.list (a denylist's exceptions are not in it)."""
        lines = listing.split()
        if lines[:3] == ["a", "*:*", "rwm"]:
            return cls(True, ())
        exceptions = []
        for kind, node, access in zip(lines[::3], lines[1::3], lines[2::3], strict=True):
            major, _, minor = node.partition(":")
            exceptions.append(DeviceRule(True, kind, None if major == "*" else int(major),
                                         None if minor == "*" else int(minor), access))
        return cls(False, tuple(exceptions))


# --- the cgroup v2 program ------------------------------------------------------------------
# struct bpf_cgroup_dev_ctx { u32 access_type; /* (ACC << 16) | DEV */ u32 major; u32 minor; }

_BPF_ACC = {"m": 1, "r": 2, "w": 4}  # BPF_DEVCG_ACC_*
_BPF_DEV = {"b": 1, "c": 2}  # BPF_DEVCG_DEV_*
_R0, _R1, _R2, _R3, _R4, _R5 = range(6)
_LDX_W = 0x61  # BPF_LDX | BPF_MEM | BPF_W
_AND32_K, _RSH32_K, _MOV32_K, _MOV32_X = 0x54, 0x74, 0xB4, 0xBC  # BPF_ALU ...
_JNE_K, _JEQ_K, _JNE_X, _EXIT = 0x55, 0x15, 0x5D, 0x95  # BPF_JMP ...


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, dst | src << 4, off, imm)


def _access_bits(access: str) -> int:
    return sum(_BPF_ACC[c] for c in access)


def bpf_program(allowlist: Allowlist) -> bytes:
    """The eBPF instructions that decide as ``allowlist`` does; one block per exception:

        r2 = type, r3 = access, r4 = major, r5 = minor
        block: if r2 != kind goto next; [access test]; [if r4 != major goto next];
               [if r5 != minor goto next]; r0 = verdict; exit
        end:   r0 = default; exit
    """
    code = [
        _insn(_LDX_W, _R2, _R1, 0), _insn(_AND32_K, _R2, imm=0xFFFF),
        _insn(_LDX_W, _R3, _R1, 0), _insn(_RSH32_K, _R3, imm=16),
        _insn(_LDX_W, _R4, _R1, 4),
        _insn(_LDX_W, _R5, _R1, 8),
    ]
    verdict = 0 if allowlist.default_allow else 1
    for ex in allowlist.exceptions:
        bits = _access_bits(ex.access)
        tests: list[tuple[int, int, int, int]] = [(_JNE_K, _R2, 0, _BPF_DEV[ex.kind])]  # (code, dst, src, imm)
        access: list[tuple[int, int, int, int]] = []
        if allowlist.default_allow:  # deny if any asked access is in the exception's
            access = [(_MOV32_X, _R1, _R3, 0), (_AND32_K, _R1, 0, bits), (_JEQ_K, _R1, 0, 0)]
        elif bits != _access_bits(ACCESS):  # allow only if every asked access is in it
            access = [(_MOV32_X, _R1, _R3, 0), (_AND32_K, _R1, 0, bits), (_JNE_X, _R1, _R3, 0)]
        tests += access
        if ex.major is not None:
            tests.append((_JNE_K, _R4, 0, ex.major))
        if ex.minor is not None:
            tests.append((_JNE_K, _R5, 0, ex.minor))
        block_len = len(tests) + 2  # + r0 = verdict, exit
        for n, (op, dst, src, imm) in enumerate(tests):
            jump = op in (_JNE_K, _JEQ_K, _JNE_X)
            code.append(_insn(op, dst, src, off=block_len - n - 1 if jump else 0, imm=imm))
        code += [_insn(_MOV32_K, _R0, imm=verdict), _insn(_EXIT)]
    code += [_insn(_MOV32_K, _R0, imm=1 if allowlist.default_allow else 0), _insn(_EXIT)]
    return b"".join(code)
