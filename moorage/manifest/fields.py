"""Scalar field types of a manifest: text, argv, env, names, durations, sizes, signals.

Each type parses what people write (``"1m30s"``, ``"512Mi"``, ``"TERM"``) into one
canonical value, so a service read back from the API compares equal to the one
that was written. Values that the API uses to mean "unset" (0, "") are refused
where a user could write them explicitly, with a hint to leave the field out.
"""

from __future__ import annotations

import math
import re
import shlex
import signal
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field, Strict, WithJsonSchema

UINT32_MAX = 2**32 - 1
INT64_MAX = 2**63 - 1

_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DURATION_RE = re.compile(r"(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ms|s|m|h))+")
_DURATION_PART_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_MEMORY_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?)(b?)$", re.IGNORECASE)
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


def as_text(value: object) -> object:
    """Let YAML numbers stand for text (``PORT: 8080``); refuse YAML booleans.

    YAML 1.1 reads ``yes``/``no``/``on``/``off`` as booleans, which would silently
    turn into "True"; the user has to quote them.
    """
    if isinstance(value, bool):
        raise ValueError("must be a string; quote true/false/yes/no/on/off to use them as text")
    if isinstance(value, int | float):
        return str(value)
    return value


def no_nul(value: str) -> str:
    if "\0" in value:
        raise ValueError("must not contain NUL characters")
    return value


Text = Annotated[
    str, BeforeValidator(as_text, json_schema_input_type=str | int | float), Strict(), AfterValidator(no_nul)
]


def _split_if_string(value: object) -> object:
    """A string argv is split the way a POSIX shell would split it."""
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:
            raise ValueError(f"cannot split {value!r}: {exc}") from None
    return value


def _as_list(value: object) -> object:
    return [value] if isinstance(value, str) else value


# A list that may be written as its only item: `env_file: app.env`.
OneOrMany = BeforeValidator(_as_list, json_schema_input_type=str | list[str])


Argv = Annotated[list[Text], BeforeValidator(_split_if_string, json_schema_input_type=str | list[str])]


def check_env_key(key: str) -> str:
    """An environment variable name as execve can carry it."""
    if not key:
        raise ValueError("variable name must not be empty")
    if "=" in key or "\0" in key:
        raise ValueError(f"variable name {key!r} must not contain '=' or NUL")
    return key


def _env_pairs(value: object) -> object:
    """Accept ``["K=V", ...]`` as well as a mapping."""
    if not isinstance(value, list):
        return value
    env: dict[str, object] = {}
    for item in value:
        if not isinstance(item, str) or "=" not in item:
            raise ValueError(f"entry {item!r} is not a KEY=VALUE string")
        key, _, val = item.partition("=")
        if key in env:
            raise ValueError(f"{key!r} is set twice")
        env[key] = val
    return env


def _check_label_key(key: str) -> str:
    if not key:
        raise ValueError("label key must not be empty")
    return no_nul(key)


EnvMap = Annotated[
    dict[Annotated[str, Strict(), AfterValidator(check_env_key)], Text],
    BeforeValidator(_env_pairs, json_schema_input_type=dict[str, str | int | float] | list[str]),
]
LabelMap = dict[Annotated[str, Strict(), AfterValidator(_check_label_key)], Text]


def _check_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise ValueError(
            f"{name!r} is not a DNS label: use 1-63 lower-case letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return name


Name = Annotated[str, Strict(), AfterValidator(_check_name)]


def _check_image(image: str) -> str:
    if not image:
        raise ValueError("must not be empty")
    if any(c.isspace() for c in image) or "\0" in image:
        raise ValueError(f"{image!r} must not contain whitespace")
    return image


Image = Annotated[str, Strict(), AfterValidator(_check_image)]


def _check_absolute(path: str) -> str:
    if not path.startswith("/"):
        raise ValueError(f"{path!r} must be an absolute path")
    return no_nul(path)


AbsolutePath = Annotated[str, Strict(), AfterValidator(_check_absolute)]


def _check_word(value: str) -> str:
    if not value or any(c.isspace() for c in value) or "\0" in value:
        raise ValueError(f"{value!r} must be a non-empty string without whitespace")
    return value


Word = Annotated[str, BeforeValidator(as_text, json_schema_input_type=str | int), Strict(), AfterValidator(_check_word)]


def parse_duration(value: object) -> float:
    """Seconds from ``"500ms"``, ``"10s"``, ``"1m30s"``, ``"2h"`` or a number of seconds.

    The result is finite and greater than 0: the API uses 0 to mean "the
    default", so a manifest cannot ask for it explicitly.
    """
    if isinstance(value, bool):
        raise ValueError("must be a duration like 500ms, 10s or 1m30s, or a number of seconds")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and _DURATION_RE.fullmatch(value.strip()):
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


_DURATION_SCHEMA = WithJsonSchema(
    {"anyOf": [{"type": "string", "pattern": _DURATION_RE.pattern}, {"type": "number", "exclusiveMinimum": 0}]}
)
Duration = Annotated[float, BeforeValidator(parse_duration), _DURATION_SCHEMA]


def parse_memory(value: object) -> int:
    """Bytes from an integer or ``"512m"``, ``"512Mi"``, ``"1.5GiB"`` (k/m/g/t/p are powers of 1024, as in docker)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("must be a size like 512Mi, 1G or a number of bytes")
    if isinstance(value, str):
        match = _MEMORY_RE.match(value.strip())
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


Memory = Annotated[
    int,
    BeforeValidator(parse_memory),
    WithJsonSchema({"anyOf": [{"type": "string", "pattern": _MEMORY_RE.pattern}, {"type": "integer", "minimum": 1}]}),
]


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


Cpus = Annotated[
    float,
    BeforeValidator(parse_cpus),
    WithJsonSchema({"anyOf": [{"type": "string", "pattern": r"^\d+m$"}, {"type": "number", "exclusiveMinimum": 0}]}),
]


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


Signal = Annotated[str, BeforeValidator(parse_signal, json_schema_input_type=str | int)]


def parse_capability(value: object) -> str:
    """``"net_admin"``, ``"CAP_NET_ADMIN"`` → ``"NET_ADMIN"``."""
    if not isinstance(value, str):
        raise ValueError("must be a capability name like NET_ADMIN")
    name = value.strip().upper().removeprefix("CAP_")
    if name not in CAPABILITIES:
        raise ValueError(f"{value!r} is not a Linux capability like NET_ADMIN or SYS_PTRACE")
    return name


Capability = Annotated[str, BeforeValidator(parse_capability, json_schema_input_type=str)]
PortNumber = Annotated[int, Strict(), Field(ge=1, le=65535)]
