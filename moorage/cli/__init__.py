"""The `moor` command line (Typer + Rich). ``main`` is the console-script entry point."""

from moorage.cli.app import app, main

__all__ = ["app", "main"]
