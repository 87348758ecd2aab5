from __future__ import annotations

import pytest

from scheduler import Attribute, Constraint, ConstraintError, NodeInfo, parse_attribute, parse_constraint

NODE = NodeInfo(id="n1", hostname="h1", labels={"zone": "a", "disk": "ssd", "topology.rack": "r7"})
BARE = NodeInfo(id="n2", hostname="h2")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("node.labels.zone == a", Constraint(Attribute("labels", "zone"), "==", ("a",))),
        ("node.labels.zone==a", Constraint(Attribute("labels", "zone"), "==", ("a",))),
        ("  node.hostname != h2 ", Constraint(Attribute("hostname"), "!=", ("h2",))),
        ("node.id == n1", Constraint(Attribute("id"), "==", ("n1",))),
        ("node.labels.disk in (ssd, nvme)", Constraint(Attribute("labels", "disk"), "in", ("ssd", "nvme"))),
        ("node.labels.disk in (ssd)", Constraint(Attribute("labels", "disk"), "in", ("ssd",))),
        ("node.labels.topology.rack == r7", Constraint(Attribute("labels", "topology.rack"), "==", ("r7",))),
    ],
)
def test_parse(text: str, expected: Constraint) -> None:
    assert parse_constraint(text) == expected
    assert parse_constraint(str(expected)) == expected  # str() is parseable


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("zone == a", "'zone' is not a node attribute"),
        ("node.labels. == a", "is not a node attribute"),
        ("node.cpu == 4", "'node.cpu' is not a node attribute"),
        ("node.labels.zone = a", "expected ATTRIBUTE ==|!=|in VALUE"),
        ("node.labels.zone", "expected ATTRIBUTE ==|!=|in VALUE"),
        ("node.labels.zone ==", "'' is not a value"),
        ("node.labels.zone == a b", "'a b' is not a value"),
        ("node.labels.disk in ssd, nvme", "'in' needs a parenthesised list"),
        ("node.labels.disk in (ssd,)", "'' is not a value"),
        ("", "expected ATTRIBUTE ==|!=|in VALUE"),
    ],
)
def test_parse_errors_name_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ConstraintError, match="constraint") as raised:
        parse_constraint(text)
    assert message in str(raised.value)
    assert repr(text) in str(raised.value)


@pytest.mark.parametrize(
    ("text", "node", "matches"),
    [
        ("node.labels.zone == a", NODE, True),
        ("node.labels.zone == b", NODE, False),
        ("node.labels.zone == a", BARE, False),
        ("node.labels.zone != a", NODE, False),
        ("node.labels.zone != b", NODE, True),
        ("node.labels.zone != a", BARE, True),  # no label: never equal
        ("node.labels.disk in (ssd, nvme)", NODE, True),
        ("node.labels.disk in (hdd, nvme)", NODE, False),
        ("node.labels.disk in (ssd, nvme)", BARE, False),
        ("node.hostname == h1", NODE, True),
        ("node.hostname != h1", NODE, False),
        ("node.id == n2", BARE, True),
        ("node.labels.topology.rack == r7", NODE, True),
    ],
)
def test_matches(text: str, node: NodeInfo, matches: bool) -> None:
    assert parse_constraint(text).matches(node) is matches


@pytest.mark.parametrize(
    ("text", "attribute"),
    [("node.labels.zone", Attribute("labels", "zone")), ("node.hostname", Attribute("hostname"))],
)
def test_parse_attribute(text: str, attribute: Attribute) -> None:
    assert parse_attribute(text) == attribute
    assert str(attribute) == text


def test_parse_attribute_error() -> None:
    with pytest.raises(ConstraintError, match="'labels.zone' is not a node attribute"):
        parse_attribute("labels.zone")
