"""Reading manifest files: YAML documents → validated services, or every problem at once.

A manifest file holds one or more YAML documents, one service each::

    name: hello
    image: busybox
    command: ["sh", "-c", "echo hi; sleep 1000"]
    replicas: 2

``load`` reads every file (and every ``*.yaml``/``*.yml`` of a directory), checks
every document and raises one ``ManifestError`` that lists *all* problems, each
naming the file, the document number (1-based), the field path and the reason.
Nothing is half-loaded: either every service is valid or the caller gets the list.
``check_references`` then checks links and ``volumes_from`` against the services
being applied and those the cluster already has.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Collection, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from moorage.manifest.errors import ManifestError, Problem
from moorage.manifest.model import ServiceDocument, ServiceManifest

# Fields the API carries but nothing in the cluster honours yet, as dotted paths
# into a document. Refusing them beats silently running a service without the
# ports, volumes or health checks its author relies on. Keep this list truthful:
# remove a path in the change that makes the agent or controller honour it.
# (`links` are honoured as issue 4 asks for now: /etc/hosts names one of the
# linked service's task addresses when the container starts; following moves
# is the ambassadors' job.)
NOT_SUPPORTED_YET: frozenset[str] = frozenset(
    {
        "healthcheck",  # no probes run yet
        "update",  # changed services replace their tasks without a rolling-update policy yet
    }
)

# Names people bring from docker-compose, swarm or kubectl that difflib cannot guess.
_KNOWN_ALIASES = {
    "environment": "env",
    "args": "command",
    "cmd": "command",
    "scale": "replicas",
    "restart_policy": "restart",
    "network_mode": "network",
    "read_only_rootfs": "read_only",
    "workdir": "working_dir",
    "cpu": "cpus",
    "mem": "memory",
    "mem_limit": "resources",
    "cpu_limit": "resources",
    "max_replicas_per_node": "max_per_node",
    "test": "exec",
    "update_config": "update",
    "stop_timeout": "stop_grace_period",
}


# How deep mappings and lists may nest in a manifest: a real service is under 10 levels;
# PyYAML composes (and constructs) nodes recursively, so 5,000 levels ended in RecursionError.
MAX_NESTING = 64


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys instead of keeping the last one, and nesting
    deeper than MAX_NESTING (a clear YAML error with its line, not a RecursionError)."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        if self._depth >= MAX_NESTING:
            raise yaml.composer.ComposerError(
                None, None, f"nested deeper than {MAX_NESTING} levels", self.peek_event().start_mark
            )
        self._depth += 1
        try:
            return super().compose_node(parent, index)  # type: ignore[no-any-return]
        finally:
            self._depth -= 1

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
class Origin:
    """Where a service was written: a file and the 1-based document in it."""

    file: str
    document: int

    def __str__(self) -> str:
        return f"{self.file} document {self.document}"

    def problem(self, path: str, reason: str) -> Problem:
        return Problem(self.file, reason, document=self.document, path=path)


@dataclass(frozen=True)
class Loaded:
    service: ServiceManifest
    origin: Origin


def load_paths(paths: Sequence[Path]) -> list[ServiceManifest]:
    """Load and validate every service in ``paths``; raise ``ManifestError`` listing every problem."""
    return [item.service for item in load(paths)]


def load(paths: Sequence[Path]) -> list[Loaded]:
    """Like ``load_paths``, keeping where each service was written (for later checks)."""
    problems: list[Problem] = []
    loaded: list[Loaded] = []
    for file in _manifest_files(paths, problems):
        for number, document in _read_documents(file, problems):
            origin = Origin(str(file), number)
            service = _load_document(document, file.parent, origin, problems)
            if service is not None:
                loaded.append(Loaded(service, origin))
    first_seen: dict[str, Origin] = {}
    for item in loaded:
        name = item.service.name
        if name in first_seen:
            problems.append(item.origin.problem("name", f"service {name!r} is also defined in {first_seen[name]}"))
        else:
            first_seen[name] = item.origin
    if not problems and not loaded:
        problems.append(Problem(", ".join(str(p) for p in paths) or "-", "no services found"))
    if problems:
        raise ManifestError(problems)
    return loaded


def check_references(loaded: Sequence[Loaded], existing: Collection[str]) -> None:
    """Every ``links`` and ``volumes_from`` target is applied alongside or already in the cluster.

    Raises ``ManifestError`` naming each dangling reference.
    """
    known = {item.service.name for item in loaded} | set(existing)
    problems: list[Problem] = []
    for item in loaded:
        for index, link in enumerate(item.service.links):
            if link.service not in known:
                problems.append(item.origin.problem(f"links[{index}]", _missing(link.service)))
        for index, name in enumerate(item.service.volumes_from):
            if name not in known:
                problems.append(item.origin.problem(f"volumes_from[{index}]", _missing(name)))
    if problems:
        raise ManifestError(problems)


def _missing(name: str) -> str:
    return f"service {name!r} is neither in these manifests nor in the cluster"


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
    document: object, base_dir: Path, origin: Origin, problems: list[Problem]
) -> ServiceManifest | None:
    if not isinstance(document, Mapping):
        problems.append(origin.problem("", f"expected a mapping of service fields, got {_kind(document)}"))
        return None
    before = len(problems)
    for key in document:
        if not isinstance(key, str):
            problems.append(origin.problem(str(key), "field names must be strings"))
    fields = {key: value for key, value in document.items() if isinstance(key, str)}
    try:
        parsed = ServiceDocument.model_validate(fields, context={"base_dir": base_dir})
    except ValidationError as exc:
        problems.extend(origin.problem(_format_loc(e["loc"]), _reason(e)) for e in exc.errors())
    for path in sorted(NOT_SUPPORTED_YET):
        if _has_path(fields, path):
            problems.append(origin.problem(path, "not supported yet: nothing in this version honours it; remove it"))
    if len(problems) > before:
        return None
    service, errors = parsed.resolve(base_dir)
    problems.extend(origin.problem(path, reason) for path, reason in errors)
    return service


def _has_path(document: Mapping[str, Any], dotted: str) -> bool:
    value: Any = document
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return False
        value = value[part]
    return True


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
    "bool_type": "must be true or false",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "too_short": "must not be empty",
}

# Whole sections of other tools' files, and where their content goes here.
_SECTION_HINTS = {
    "deploy": "unknown field; compose's deploy section maps to the top-level replicas, resources, "
    "placement, update and restart",
    "networks": "unknown field; services reach each other through links; network is bridge, host or none",
}


def _reason(error: ErrorDetails) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return _unknown_field(error["loc"])
    if kind == "value_error":
        return str(error.get("ctx", {}).get("error", error["msg"]))
    if kind in _TYPE_REASONS:
        return _TYPE_REASONS[kind]
    message = error["msg"]
    return "must be" + message.removeprefix("Input should be") if message.startswith("Input should be") else message


def _unknown_field(loc: tuple[int | str, ...]) -> str:
    """"unknown field", with the closest field of the same section when there is one."""
    key = str(loc[-1])
    if len(loc) == 1 and key in _SECTION_HINTS:
        return _SECTION_HINTS[key]
    model = _model_at(loc[:-1])
    known = list(model.model_fields) if model is not None else []
    alias = _KNOWN_ALIASES.get(key.lower())
    suggestion = alias if alias in known else next(iter(difflib.get_close_matches(key, known, n=1, cutoff=0.6)), None)
    return f"unknown field; did you mean {suggestion!r}?" if suggestion else "unknown field"


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model that validates the mapping at ``loc`` of a document (list indexes skipped)."""
    model: type[BaseModel] | None = ServiceDocument
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if model is not None else None
        if field is None:
            return None
        model = _inner_model(field.annotation)
    return model


def _inner_model(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None
