"""Command groups whose commands load on first use (Click's lazy-group pattern, on Typer's bundled Click).

`moor image` and `moor container` live with the agent (agent/cli.py): they drive a host's
image store directly. The `moor` app names them here with their help only, so that
`moor --help`, `moor version` and every client command never import the agent package;
the group's commands are read from the real Typer app when the group itself is used.
"""

import importlib
from functools import cache
from typing import Any

import typer
from typer.core import TyperGroup


@cache
def _load(target: str) -> TyperGroup:
    module, attr = target.split(":")
    group = typer.main.get_group(getattr(importlib.import_module(module), attr))
    assert isinstance(group, TyperGroup)
    return group


def lazy_group(target: str) -> type[TyperGroup]:
    """A TyperGroup class whose commands are those of the Typer app at ``target`` ("module:attribute")."""

    class LazyGroup(TyperGroup):
        def list_commands(self, ctx: Any) -> list[str]:
            return _load(target).list_commands(ctx)

        def get_command(self, ctx: Any, cmd_name: str) -> Any:
            return _load(target).get_command(ctx, cmd_name)

    return LazyGroup
