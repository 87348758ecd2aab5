"""Parsing the units people write: durations, sizes, CPUs, signals, capabilities.

Pure functions without pydantic, so the CLI can parse ``--timeout 90s`` without
loading the manifest model. Each raises ``ValueError`` with a reason for a user.
"""

from __future__ import annotations

import math
import re
import signal

INT64_MAX = 2**63 - 1

DURATION_RE = re.compile(r"(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ms|s|m|h))+")
_DURATION_PART_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
MEMORY_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?)(b?)$", re.IGNORECASE)
_MEMORY_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40, "p": 2**50}
_CPU_MILLIS_RE = re.compile(r"^(\d+)m$")

# Linux capabilities (capability.h, up to CAP_CHECKPOINT_RESTORE), without "CAP_".
CAPABILITIES = frozenset(
    """CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP
    LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER
    SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE
    SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP
    MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF
    CHECKPOINT_RESTORE ALL""".split()
)


def parse_duration(value: object) -> float:
    """Seconds from ``"500ms"``, ``"10s"``, ``"1m30s"``, ``"2h"`` or a number of seconds.

    The result is finite and greater than 0: the API uses 0 to mean "the
    default", so a manifest cannot ask for it explicitly.
    """
    if isinstance(value, bool):
        raise ValueError("must be a duration like 500ms, 10s or 1m30s, or a number of seconds")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and DURATION_RE.fullmatch(value.strip()):
        seconds = sum(
            float(number) * _DURATION_UNITS[unit] for number, unit in _DURATION_PART_RE.findall(value.strip())
        )
    else:
        raise ValueError(f"{value!r} is not a duration like 500ms, 10s or 1m30s, or a number of seconds")
    if not math.isfinite(seconds):
        raise ValueError("must be finite")
    if seconds <= 0:
        raise ValueError("must be greater than 0")
    return seconds


def parse_memory(value: object) -> int:
    """Bytes from an integer or ``"512m"``, ``"512Mi"``, ``"1.5GiB"`` (k/m/g/t/p are powers of 1024, as in docker)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("must be a size like 512Mi, 1G or a number of bytes")
    if isinstance(value, str):
        match = MEMORY_RE.match(value.strip())
        if match is None:
            raise ValueError(
                f"{value!r} must not be negative" if value.strip().startswith("-")
                else f"{value!r} is not a size like 512Mi, 1G or a number of bytes"
            )
        number, unit = float(match[1]), match[2].lower()
        size = number * _MEMORY_UNITS[unit]
    else:
        size = float(value)
    if not math.isfinite(size):
        raise ValueError("must be finite")
    if size < 0:
        raise ValueError("must not be negative")
    if size < 1 or size != int(size):
        raise ValueError("must be a whole number of bytes greater than 0 (leave the field out for none)")
    if size > INT64_MAX:
        raise ValueError("is too large")
    return int(size)


def parse_cpus(value: object) -> float:
    """CPUs as a number (``0.5``) or Kubernetes millicores (``"500m"``), rounded to a millicore."""
    if isinstance(value, str):
        match = _CPU_MILLIS_RE.match(value.strip())
        if match:
            value = int(match[1]) / 1000
        else:
            try:
                value = float(value)
            except ValueError:
                raise ValueError(f"{value!r} is not a number of CPUs like 0.5 or 500m") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a number of CPUs like 0.5 or 500m")
    if not math.isfinite(value):
        raise ValueError("must be finite")
    if value < 0:
        raise ValueError("must not be negative")
    millis = round(value * 1000)
    if millis < 1:
        raise ValueError("must be at least 0.001 (1m); leave the field out for none")
    if millis > INT64_MAX:
        raise ValueError("is too large")
    return millis / 1000


def parse_signal(value: object) -> str:
    """``"TERM"``, ``"SIGTERM"``, ``"sigterm"`` or ``15`` → ``"SIGTERM"``."""
    if isinstance(value, bool):
        raise ValueError("must be a signal name like SIGTERM or a number")
    try:
        if isinstance(value, int):
            return signal.Signals(value).name
        if isinstance(value, str):
            name = value.strip().upper()
            return signal.Signals[name if name.startswith("SIG") else f"SIG{name}"].name
    except (KeyError, ValueError):
        pass
    raise ValueError(f"{value!r} is not a signal name like SIGTERM, SIGINT or SIGQUIT")


def parse_capability(value: object) -> str:
    """``"net_admin"``, ``"CAP_NET_ADMIN"`` → ``"NET_ADMIN"``."""
    if not isinstance(value, str):
        raise ValueError("must be a capability name like NET_ADMIN")
    name = value.strip().upper().removeprefix("CAP_")
    if name not in CAPABILITIES:
        raise ValueError(f"{value!r} is not a Linux capability like NET_ADMIN or SYS_PTRACE")
    return name
