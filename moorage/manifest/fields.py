"""Scalar field types of a manifest: text, argv, env, names, durations, sizes, signals.

Each type parses what people write (``"1m30s"``, ``"512Mi"``, ``"TERM"``) into one
canonical value, so a service read back from the API compares equal to the one
that was written. Values that the API uses to mean "unset" (0, "") are refused
where a user could write them explicitly, with a hint to leave the field out.
"""

from __future__ import annotations

import re
import shlex
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field, Strict, WithJsonSchema

from moorage.manifest.units import (
    DURATION_RE,
    MEMORY_RE,
    parse_capability,
    parse_cpus,
    parse_duration,
    parse_memory,
    parse_signal,
)

UINT32_MAX = 2**32 - 1

_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
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


_DURATION_SCHEMA = WithJsonSchema(
    {"anyOf": [{"type": "string", "pattern": DURATION_RE.pattern}, {"type": "number", "exclusiveMinimum": 0}]}
)
Duration = Annotated[float, BeforeValidator(parse_duration), _DURATION_SCHEMA]


Memory = Annotated[
    int,
    BeforeValidator(parse_memory),
    WithJsonSchema({"anyOf": [{"type": "string", "pattern": MEMORY_RE.pattern}, {"type": "integer", "minimum": 1}]}),
]


Cpus = Annotated[
    float,
    BeforeValidator(parse_cpus),
    WithJsonSchema({"anyOf": [{"type": "string", "pattern": r"^\d+m$"}, {"type": "number", "exclusiveMinimum": 0}]}),
]


Signal = Annotated[str, BeforeValidator(parse_signal, json_schema_input_type=str | int)]


Capability = Annotated[str, BeforeValidator(parse_capability, json_schema_input_type=str)]
PortNumber = Annotated[int, Strict(), Field(ge=1, le=65535)]
