"""API messages as JSON or YAML (`-o json|yaml`): the messages' own field names, for scripts."""

from __future__ import annotations

import json
from typing import Any

import yaml
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from moorage.cli.common import Output


class _Dumper(yaml.SafeDumper):
    """Block style, and multi-line strings (shell scripts in commands) as literal blocks."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _text)


def to_yaml(data: object, sort_keys: bool = True) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=sort_keys, default_flow_style=False, allow_unicode=True)


def as_data(message: Message) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True)


def dump(data: object, output: Output) -> str:
    """``data`` as indented JSON or block-style YAML (keys sorted in both)."""
    if output is Output.yaml:
        return to_yaml(data).rstrip("\n")
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False)
