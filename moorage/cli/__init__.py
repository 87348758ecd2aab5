"""The `moor` command line (Typer + Rich). ``moorage.cli.app:main`` is the console-script entry point.

Every command module is imported to build the command tree (for any command, its
help and shell completion), so those modules import only Typer, the standard library
and light parts of moorage at their top. grpc, the generated API, Rich, PyYAML and
the pydantic manifest model are imported inside the commands that use them, or by
the helper modules those commands import (client, lookup, listing, render, waiting,
output, ...): `moor version --client` or `moor --help` then start in a fraction of
the time. tests/moorage/test_cli_imports.py holds the line.

The modules that define commands do not use ``from __future__ import annotations``:
Typer reads every command's signature at start-up, and compiling string annotations
cost it ~25 ms. There, names imported only for type checking are quoted.
"""
