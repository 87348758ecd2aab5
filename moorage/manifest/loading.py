"""Service manifests: YAML documents → validated ``ServiceManifest`` → ``ServiceSpec``.

A manifest file holds one or more YAML documents, one service each::

    name: hello
    image: busybox
    command: ["sh", "-c", "echo hi; sleep 1000"]
    env: {GREETING: hello}
    replicas: 2
    stop_grace_period: 2s

``load_paths`` reads every file (and every ``*.yaml``/``*.yml`` of a directory),
checks every document and raises one ``ManifestError`` that lists *all* problems,
each naming the file, the document number (1-based), the field path and the reason.
Nothing is half-loaded: either every service is valid or the caller gets the list.

``ServiceDocument`` is what a user writes (it may name ``env_file``);
``ServiceManifest`` is the resolved service, which maps one-to-one onto the API's
``ServiceSpec`` (``to_spec``/``from_spec`` round-trip losslessly).
"""

from __future__ import annotations

import difflib
import math
import re
import shlex
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
)
from pydantic_core import ErrorDetails

from moorage.v1 import types_pb2

__all__ = [
    "DEFAULT_STOP_GRACE_PERIOD",
    "NOT_SUPPORTED_YET",
    "ManifestError",
    "Problem",
    "ServiceDocument",
    "ServiceManifest",
    "load_paths",
    "parse_duration",
    "read_env_file",
]

DEFAULT_STOP_GRACE_PERIOD = 10.0
UINT32_MAX = 2**32 - 1

# Fields a later version will honour. Refusing them beats silently running a
# service without the ports, volumes or health checks its author relies on.
NOT_SUPPORTED_YET = frozenset(
    {
        "ports",
        "volumes",
        "volumes_from",
        "links",
        "resources",
        "restart",
        "healthcheck",
        "stop_signal",
        "placement",
        "update",
        "network",
    }
)

# Names people bring from docker-compose or from the API that difflib cannot guess.
_KNOWN_ALIASES = {
    "environment": "env",
    "args": "command",
    "cmd": "command",
    "scale": "replicas",
}

_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DURATION_RE = re.compile(r"(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ms|s|m|h))+")
_DURATION_PART_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the manifests; ``str()`` is one line for the user."""

    file: str
    reason: str
    document: int | None = None
    path: str = ""
    line: int | None = None

    def __str__(self) -> str:
        parts = [self.file]
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.document is not None:
            parts.append(f"document {self.document}")
        if self.path:
            parts.append(self.path)
        parts.append(self.reason)
        return ": ".join(parts)


class ManifestError(Exception):
    """The manifests are invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


# --- field types --------------------------------------------------------------


def _as_text(value: object) -> object:
    """Let YAML numbers stand for text (``PORT: 8080``); refuse YAML booleans.

    YAML 1.1 reads ``yes``/``no``/``on``/``off`` as booleans, which would silently
    turn into "True"; the user has to quote them.
    """
    if isinstance(value, bool):
        raise ValueError("must be a string; quote true/false/yes/no/on/off to use them as text")
    if isinstance(value, int | float):
        return str(value)
    return value


def _no_nul(value: str) -> str:
    if "\0" in value:
        raise ValueError("must not contain NUL characters")
    return value


Text = Annotated[str, BeforeValidator(_as_text), Strict(), AfterValidator(_no_nul)]


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


Argv = Annotated[list[Text], BeforeValidator(_split_if_string)]


def _check_env_key(key: str) -> str:
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
    return _no_nul(key)


EnvMap = Annotated[
    dict[Annotated[str, Strict(), AfterValidator(_check_env_key)], Text],
    BeforeValidator(_env_pairs),
]
LabelMap = dict[Annotated[str, Strict(), AfterValidator(_check_label_key)], Text]


def _check_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise ValueError(
            f"{name!r} is not a DNS label: use 1-63 lower-case letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return name


def _check_image(image: str) -> str:
    if not image:
        raise ValueError("must not be empty")
    if any(c.isspace() for c in image) or "\0" in image:
        raise ValueError(f"{image!r} must not contain whitespace")
    return image


def parse_duration(value: object) -> float:
    """Seconds from ``"500ms"``, ``"10s"``, ``"1m30s"``, ``"2h"`` or a number of seconds.

    The result is finite and greater than 0: ``ServiceSpec`` uses 0 to mean "the
    default", so a manifest cannot ask for it explicitly.
    """
    if isinstance(value, bool):
        raise ValueError("must be a duration like 500ms, 10s or 1m30s, or a number of seconds")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and _DURATION_RE.fullmatch(value.strip()):
        seconds = sum(
            float(number) * _DURATION_UNITS[unit]
            for number, unit in _DURATION_PART_RE.findall(value.strip())
        )
    else:
        raise ValueError(
            f"{value!r} is not a duration like 500ms, 10s or 1m30s, or a number of seconds"
        )
    if not math.isfinite(seconds):
        raise ValueError("must be finite")
    if seconds <= 0:
        raise ValueError("must be greater than 0")
    return seconds


# --- models ------------------------------------------------------------------


class ServiceManifest(BaseModel):
    """One service, resolved and valid; maps one-to-one onto ``ServiceSpec``.

    ``entrypoint`` and ``command`` have Docker/compose meaning: they replace the
    image's Entrypoint and Cmd when non-empty. ``command`` travels as
    ``ServiceSpec.args``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Strict(), AfterValidator(_check_name)]
    image: Annotated[str, Strict(), AfterValidator(_check_image)]
    entrypoint: Argv = Field(default_factory=list)
    command: Argv = Field(default_factory=list)
    env: EnvMap = Field(default_factory=dict)
    replicas: Annotated[int, Strict(), Field(ge=0, le=UINT32_MAX)] = 1
    stop_grace_period: Annotated[float, BeforeValidator(parse_duration)] = DEFAULT_STOP_GRACE_PERIOD
    labels: LabelMap = Field(default_factory=dict)

    def to_spec(self) -> types_pb2.ServiceSpec:
        return types_pb2.ServiceSpec(
            name=self.name,
            image=self.image,
            entrypoint=self.entrypoint,
            args=self.command,
            env=self.env,
            replicas=self.replicas,
            stop_grace_period=self.stop_grace_period,
            labels=self.labels,
        )

    @classmethod
    def from_spec(cls, spec: types_pb2.ServiceSpec) -> ServiceManifest:
        return cls.model_validate(
            {
                "name": spec.name,
                "image": spec.image,
                "entrypoint": list(spec.entrypoint),
                "command": list(spec.args),
                "env": dict(spec.env),
                "replicas": spec.replicas,
                "stop_grace_period": spec.stop_grace_period or DEFAULT_STOP_GRACE_PERIOD,
                "labels": dict(spec.labels),
            }
        )


class ServiceDocument(ServiceManifest):
    """A service as written in a file: it may also name ``env_file``s to read."""

    env_file: Annotated[list[Text], BeforeValidator(_as_list)] = Field(default_factory=list)

    def resolve(self, base_dir: Path) -> tuple[ServiceManifest | None, list[tuple[str, str]]]:
        """Read the env files (relative to ``base_dir``) into ``env``.

        Later files override earlier ones and ``env`` overrides them all. Returns the
        service, or None with ``(field path, reason)`` pairs for what went wrong.
        """
        merged: dict[str, str] = {}
        errors: list[tuple[str, str]] = []
        for index, name in enumerate(self.env_file):
            try:
                merged.update(read_env_file(base_dir / name))
            except (OSError, ValueError) as exc:  # ValueError covers UnicodeDecodeError
                errors.append((f"env_file[{index}]", str(exc)))
        if errors:
            return None, errors
        fields = self.model_dump(exclude={"env_file"})
        fields["env"] = {**merged, **self.env}
        return ServiceManifest.model_validate(fields), []


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines; blank lines and ``#`` comments are skipped.

    Spaces around the key and the value are dropped, and a value wrapped in
    matching single or double quotes loses the quotes (as in docker-compose);
    nothing else is interpreted.
    """
    env: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise OSError(f"cannot read {path}: {exc.strerror or exc}") from None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"{path} line {number}: expected KEY=VALUE, got {line!r}")
        try:
            key = _check_env_key(key.strip())
            value = _no_nul(value.strip())
        except ValueError as exc:
            raise ValueError(f"{path} line {number}: {exc}") from None
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key] = value
    return env


# --- loading -----------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys instead of keeping the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Hashable] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, Hashable):
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"found duplicate key {key!r}",
                        key_node.start_mark,
                    )
                seen.add(key)
        return super().construct_mapping(node, deep)


@dataclass(frozen=True)
class _Origin:
    file: str
    document: int

    def __str__(self) -> str:
        return f"{self.file} document {self.document}"


def load_paths(paths: Sequence[Path]) -> list[ServiceManifest]:
    """Load and validate every service in ``paths`` (files or directories).

    Raises ``ManifestError`` listing every problem in every file.
    """
    problems: list[Problem] = []
    loaded: list[tuple[ServiceManifest, _Origin]] = []
    for file in _manifest_files(paths, problems):
        for number, document in _read_documents(file, problems):
            origin = _Origin(str(file), number)
            service = _load_document(document, file.parent, origin, problems)
            if service is not None:
                loaded.append((service, origin))
    first_seen: dict[str, _Origin] = {}
    for service, origin in loaded:
        if service.name in first_seen:
            problems.append(
                Problem(
                    origin.file,
                    f"service {service.name!r} is also defined in {first_seen[service.name]}",
                    document=origin.document,
                    path="name",
                )
            )
        else:
            first_seen[service.name] = origin
    if not problems and not loaded:
        problems.append(Problem(", ".join(str(p) for p in paths) or "-", "no services found"))
    if problems:
        raise ManifestError(problems)
    return [service for service, _ in loaded]


def _manifest_files(paths: Sequence[Path], problems: list[Problem]) -> Iterator[Path]:
    """Files named directly, then each directory's ``*.yaml``/``*.yml`` in name order."""
    seen: set[Path] = set()
    for path in paths:
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
            if not files:
                problems.append(Problem(str(path), "directory has no *.yaml or *.yml files"))
        elif path.exists():
            files = [path]
        else:
            problems.append(Problem(str(path), "no such file or directory"))
            continue
        for file in files:
            if file.resolve() not in seen:
                seen.add(file.resolve())
                yield file


def _read_documents(file: Path, problems: list[Problem]) -> Iterator[tuple[int, object]]:
    """Non-empty documents with their 1-based position; a syntax error ends the file."""
    try:
        text = file.read_text(encoding="utf-8")
        documents = list(yaml.load_all(text, Loader=_Loader))  # noqa: S506 - _Loader is a SafeLoader
    except OSError as exc:
        problems.append(Problem(str(file), f"cannot read: {exc.strerror or exc}"))
        return
    except UnicodeDecodeError as exc:
        problems.append(Problem(str(file), f"not UTF-8 text: {exc.reason} at byte {exc.start}"))
        return
    except yaml.YAMLError as exc:
        problems.append(_yaml_problem(file, exc))
        return
    for number, document in enumerate(documents, start=1):
        if document is not None:
            yield number, document


def _yaml_problem(file: Path, exc: yaml.YAMLError) -> Problem:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        reason = " ".join(part for part in (exc.problem, exc.context) if part) or "invalid YAML"
        return Problem(str(file), f"invalid YAML: {reason}", line=exc.problem_mark.line + 1)
    return Problem(str(file), f"invalid YAML: {exc}")


def _load_document(
    document: object, base_dir: Path, origin: _Origin, problems: list[Problem]
) -> ServiceManifest | None:
    def problem(path: str, reason: str) -> None:
        problems.append(Problem(origin.file, reason, document=origin.document, path=path))

    if not isinstance(document, Mapping):
        problem("", f"expected a mapping of service fields, got {_kind(document)}")
        return None
    before = len(problems)
    fields: dict[str, object] = {}
    for key, value in document.items():
        if not isinstance(key, str):
            problem(str(key), "field names must be strings")
        elif key in NOT_SUPPORTED_YET:
            problem(key, "not supported yet")
        else:
            fields[key] = value
    try:
        parsed = ServiceDocument.model_validate(fields)
    except ValidationError as exc:
        for error in exc.errors():
            problem(_format_loc(error["loc"]), _reason(error))
    if len(problems) > before:
        return None
    service, errors = parsed.resolve(base_dir)
    for path, reason in errors:
        problem(path, reason)
    return service


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return f"a {type(value).__name__}"


def _format_loc(loc: tuple[int | str, ...]) -> str:
    """``("env", "A")`` → ``env.A``; ``("command", 0)`` → ``command[0]``.

    A dict key's own error (``(..., "A", "[key]")``) names the dict: the reason
    already quotes the key.
    """
    parts: list[str] = []
    for item in loc:
        if item == "[key]":
            parts.pop()
        elif isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(f".{item}" if parts else item)
    return "".join(parts)


_TYPE_REASONS = {
    "missing": "required",
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "float_type": "must be a number",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
}


def _reason(error: ErrorDetails) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return _unknown_field(str(error["loc"][-1]))
    if kind == "value_error":
        return str(error.get("ctx", {}).get("error", error["msg"]))
    if kind in _TYPE_REASONS:
        return _TYPE_REASONS[kind]
    message = error["msg"]
    return "must be" + message.removeprefix("Input should be") if message.startswith("Input should be") else message


def _unknown_field(key: str) -> str:
    known = list(ServiceDocument.model_fields)
    suggestion = _KNOWN_ALIASES.get(key.lower()) or next(
        iter(difflib.get_close_matches(key, known, n=1, cutoff=0.6)), None
    )
    return f"unknown field; did you mean {suggestion!r}?" if suggestion else "unknown field"
