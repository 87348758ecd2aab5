"""Docker's default seccomp profile, made into the OCI ``linux.seccomp`` section of one container (pure).

The profile (seccomp_default.json, Docker's own file: see seccomp_default.json.license) is an
allowlist whose entries may hold only for some architectures, kernels or capabilities:
``includes: {caps: [CAP_SYS_ADMIN]}`` allows mount, unshare, setns, clone with namespace flags
and the like only to a container whose bounding set has CAP_SYS_ADMIN; ``excludes`` drops
the masked ``clone`` rule (no CLONE_NEW* flags) for it instead. The OCI runtime spec has no
such conditions, so — as moby's profiles/seccomp/seccomp_linux.go does — they are decided here,
once, at create, for the container's capabilities and this host's architecture and kernel:
what lands in config.json is the plain list that any OCI runtime (ours, runc, crun) applies.
"""

from __future__ import annotations

import functools
import json
import os
import platform
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROFILE = Path(__file__).with_name("seccomp_default.json")
SECTION_KEYS = ("defaultAction", "defaultErrnoRet", "flags")  # copied as they are
SYSCALL_KEYS = ("names", "action", "errnoRet", "args")  # what an OCI syscall entry holds


@dataclass(frozen=True)
class Host:
    """What a profile's conditions are decided on besides capabilities."""

    arch: str  # Docker's name of the native architecture: "amd64", "arm64", ...
    scmp_arch: str  # the same as a libseccomp/OCI name: "SCMP_ARCH_X86_64", ...
    kernel: tuple[int, int]  # (major, minor) of the running kernel


# platform.machine() -> (Docker's native arch name, OCI arch) as moby's goToNative/nativeToSeccomp map them
_ARCHES = {
    "x86_64": ("amd64", "SCMP_ARCH_X86_64"), "aarch64": ("arm64", "SCMP_ARCH_AARCH64"),
    "i686": ("x86", "SCMP_ARCH_X86"), "i386": ("x86", "SCMP_ARCH_X86"), "armv7l": ("arm", "SCMP_ARCH_ARM"),
    "ppc64le": ("ppc64le", "SCMP_ARCH_PPC64LE"), "s390x": ("s390x", "SCMP_ARCH_S390X"),
    "riscv64": ("riscv64", "SCMP_ARCH_RISCV64"), "loongarch64": ("loong64", "SCMP_ARCH_LOONGARCH64"),
}


def kernel_version(release: str) -> tuple[int, int]:
    """``6.18.44-fc-v1045`` -> (6, 18): minor revisions and suffixes do not count, as in moby."""
    parts = release.split("-", 1)[0].split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        raise ValueError(f"cannot read a kernel version from {release!r}") from None


@functools.cache
def this_host() -> Host:
    machine = platform.machine()
    if machine not in _ARCHES:
        raise ValueError(f"no seccomp architecture is known for {machine!r}")
    arch, scmp = _ARCHES[machine]
    return Host(arch, scmp, kernel_version(os.uname().release))


@functools.cache
def _docker_profile_text() -> str:
    return PROFILE.read_text()


def docker_profile() -> dict[str, Any]:
    """A fresh copy of Docker's default profile (the caller may change it)."""
    return json.loads(_docker_profile_text())


def _holds(condition: Mapping[str, Any], caps: Collection[str], host: Host, all_of: bool) -> bool:
    """Does an ``includes`` (``all_of``: every part must hold) or ``excludes`` (any part) match?"""
    tests = []
    if condition.get("arches"):
        tests.append(host.arch in condition["arches"])
    if condition.get("caps"):
        wanted = [c in caps for c in condition["caps"]]
        tests.append(all(wanted) if all_of else any(wanted))
    if condition.get("minKernel"):
        tests.append(host.kernel >= kernel_version(condition["minKernel"]))
    return all(tests) if all_of else any(tests)


def resolve(profile: Mapping[str, Any], bounding: Collection[str], host: Host | None = None) -> dict[str, Any]:
    """The OCI ``linux.seccomp`` section of ``profile`` for a container with the bounding set
    ``bounding`` (``CAP_*`` names) on ``host`` (this one by default)."""
    host = host or this_host()
    if profile.get("architectures") and profile.get("archMap"):
        raise ValueError("a seccomp profile gives both 'architectures' and 'archMap'")
    section: dict[str, Any] = {k: profile[k] for k in SECTION_KEYS if k in profile}
    arches = list(profile.get("architectures", []))
    for entry in profile.get("archMap", []):
        if entry["architecture"] == host.scmp_arch:
            arches = [entry["architecture"], *(entry.get("subArchitectures") or [])]
    section["architectures"] = arches
    syscalls = []
    for call in profile.get("syscalls", []):
        if "name" in call and "names" in call:
            raise ValueError("a seccomp profile entry gives both 'name' and 'names'")
        if "excludes" in call and _holds(call["excludes"], bounding, host, all_of=False):
            continue
        if "includes" in call and not _holds(call["includes"], bounding, host, all_of=True):
            continue
        entry = {k: call[k] for k in SYSCALL_KEYS if k in call}
        if "name" in call:
            entry["names"] = [call["name"]]
        syscalls.append(entry)
    section["syscalls"] = syscalls
    return section


def default_section(bounding: Collection[str], host: Host | None = None) -> dict[str, Any]:
    """Docker's default profile for a container with the bounding set ``bounding``."""
    return resolve(docker_profile(), bounding, host)
