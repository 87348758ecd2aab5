"""Field-level differences between a service in the cluster and its manifest. Pure functions."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from moorage.manifest import ServiceManifest

_ABSENT: Any = object()


@dataclass(frozen=True)
class Change:
    """``path`` went from ``old`` to ``new``; either may be absent (added or removed)."""

    path: str
    old: Any = _ABSENT
    new: Any = _ABSENT

    def __str__(self) -> str:
        if self.old is _ABSENT:
            return f"+ {self.path}: {_show(self.new)}"
        if self.new is _ABSENT:
            return f"- {self.path}: {_show(self.old)}"
        return f"~ {self.path}: {_show(self.old)} -> {_show(self.new)}"


def flatten(data: object, prefix: str = "") -> dict[str, Any]:
    """``{"env": {"A": "1"}, "ports": [{...}]}`` → ``{"env.A": "1", "ports[0].published": ...}``."""
    if isinstance(data, Mapping) and data:
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(data, list) and data:
        out = {}
        for index, value in enumerate(data):
            out.update(flatten(value, f"{prefix}[{index}]"))
        return out
    return {prefix: data}


def changes(old: ServiceManifest | None, new: ServiceManifest) -> list[Change]:
    """What applying ``new`` changes; fields left at their defaults are not listed."""
    before = flatten(old.model_dump(mode="json", exclude_defaults=True)) if old is not None else {}
    after = flatten(new.model_dump(mode="json", exclude_defaults=True))
    found: list[Change] = []
    for path in sorted(before.keys() | after.keys(), key=_path_key):
        was, now = before.get(path, _ABSENT), after.get(path, _ABSENT)
        if was != now:
            found.append(Change(path, was, now))
    return found


def _path_key(path: str) -> tuple[object, ...]:
    """Keep ``name`` and ``image`` first, then the fields in order, list items by index."""
    head = path.split(".", 1)[0].split("[", 1)[0]
    order = list(ServiceManifest.model_fields)
    return (order.index(head) if head in order else len(order), path)


def _show(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)
