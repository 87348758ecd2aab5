"""Helpers for the manifest and CLI tests: manifests written to tmp files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from textwrap import dedent

import pytest

WriteManifest = Callable[[str, str], Path]


@pytest.fixture
def write(tmp_path: Path) -> WriteManifest:
    """``write("a.yaml", text)`` writes dedented ``text`` under tmp_path and returns the path."""

    def write_file(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write_file
