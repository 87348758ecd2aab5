"""Checks on service specs before anything is written."""

from __future__ import annotations

import re
from collections.abc import Sequence

from controller.errors import InvalidSpecError
from moorage.v1 import types_pb2

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def validate_spec(spec: types_pb2.ServiceSpec) -> None:
    name = spec.name
    if not DNS_LABEL.match(name):
        raise InvalidSpecError(name, "name", "must be a DNS label (lowercase letters, digits and '-', at most 63)")
    if not spec.image.strip():
        raise InvalidSpecError(name, "image", "must not be empty")
    if spec.stop_grace_period < 0:
        raise InvalidSpecError(name, "stop_grace_period", "must not be negative")
    if any(not key for key in spec.env):
        raise InvalidSpecError(name, "env", "variable names must not be empty")


def validate_specs(specs: Sequence[types_pb2.ServiceSpec]) -> None:
    """Raise ``InvalidSpecError`` for the first bad spec or repeated name."""
    seen: set[str] = set()
    for spec in specs:
        validate_spec(spec)
        if spec.name in seen:
            raise InvalidSpecError(spec.name, "name", "appears more than once in the request")
        seen.add(spec.name)
