"""Placement expressions, parsed once: constraints and spread attributes.

Grammar (whitespace around tokens is free)::

    attribute  := "node.id" | "node.hostname" | "node.labels." KEY
    constraint := attribute ("==" | "!=") VALUE
                | attribute "in" "(" VALUE ("," VALUE)* ")"

A node without the label never equals a value, so ``node.labels.zone != a``
holds on a node that has no ``zone`` label (as in Docker Swarm).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from scheduler.model import NodeInfo

__all__ = ["Attribute", "Constraint", "ConstraintError", "parse_attribute", "parse_constraint"]

EXAMPLE = "e.g. 'node.labels.zone == a', 'node.hostname != h2' or 'node.labels.disk in (ssd, nvme)'"

_ATTRIBUTE = re.compile(r"node\.(?:(?P<field>id|hostname)|labels\.(?P<label>[A-Za-z0-9_][A-Za-z0-9_.\-/]*))")
_CONSTRAINT = re.compile(r"\s*(?P<attribute>\S+?)\s*(?:(?P<op>==|!=)|\s(?P<in>in)\s)\s*(?P<value>.*?)\s*")
_VALUE = re.compile(r"[^\s,()=!]+")

Operator = Literal["==", "!=", "in"]


class ConstraintError(ValueError):
    """A placement expression that does not parse; the message names what is wrong."""


@dataclass(frozen=True, slots=True)
class Attribute:
    """``node.id``, ``node.hostname`` or ``node.labels.<key>``."""

    field: Literal["id", "hostname", "labels"]
    key: str = ""

    def of(self, node: NodeInfo) -> str | None:
        """The node's value of this attribute (``None``: the node has no such label)."""
        if self.field == "id":
            return node.id
        if self.field == "hostname":
            return node.hostname
        return node.labels.get(self.key)

    def __str__(self) -> str:
        return f"node.labels.{self.key}" if self.field == "labels" else f"node.{self.field}"


@dataclass(frozen=True, slots=True)
class Constraint:
    attribute: Attribute
    operator: Operator
    values: tuple[str, ...]

    def matches(self, node: NodeInfo) -> bool:
        found = self.attribute.of(node) in self.values
        return not found if self.operator == "!=" else found

    def __str__(self) -> str:
        if self.operator == "in":
            return f"{self.attribute} in ({', '.join(self.values)})"
        return f"{self.attribute} {self.operator} {self.values[0]}"


def parse_attribute(text: str) -> Attribute:
    """``"node.labels.zone"`` → ``Attribute("labels", "zone")``."""
    match = _ATTRIBUTE.fullmatch(text.strip())
    if match is None:
        raise ConstraintError(f"{text!r} is not a node attribute (node.id, node.hostname or node.labels.KEY)")
    if match["label"] is not None:
        return Attribute("labels", match["label"])
    return Attribute("id" if match["field"] == "id" else "hostname")


def parse_constraint(text: str) -> Constraint:
    """Parse one constraint; ``ConstraintError`` says what is wrong with it."""
    match = _CONSTRAINT.fullmatch(text)
    if match is None:
        raise ConstraintError(f"constraint {text!r}: expected ATTRIBUTE ==|!=|in VALUE ({EXAMPLE})")
    try:
        attribute = parse_attribute(match["attribute"])
    except ConstraintError as e:
        raise ConstraintError(f"constraint {text!r}: {e}") from None
    value = match["value"]
    if match["in"]:
        if not (value.startswith("(") and value.endswith(")")):
            raise ConstraintError(f"constraint {text!r}: 'in' needs a parenthesised list, e.g. (ssd, nvme)")
        values = tuple(v.strip() for v in value[1:-1].split(","))
        operator: Operator = "in"
    else:
        values = (value,)
        operator = "==" if match["op"] == "==" else "!="
    for v in values:
        if not _VALUE.fullmatch(v):
            raise ConstraintError(f"constraint {text!r}: {v!r} is not a value (no spaces, commas, parentheses, = or !)")
    return Constraint(attribute, operator, values)
