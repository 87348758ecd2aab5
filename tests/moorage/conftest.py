"""Helpers for the manifest and CLI tests: manifests written to tmp files."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
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


@pytest.fixture(autouse=True, scope="session")
def credentials(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A `moor` config with a CA, a certificate and a key of a cluster of its own, for every CLI test:
    commands then dial TLS as they do for real (no controller of that cluster runs here)."""
    from moorage import pki
    from moorage.cli.config import ENV_CONFIG, write

    ca, ca_key = pki.new_ca("cli-tests")
    key = pki.new_key()
    cert = pki.issue(ca, ca_key, pki.make_csr(key, "tester"), name="tester", role=pki.ADMIN, lifetime=pki.USER_CERT_LIFETIME)
    path = write(tmp_path_factory.mktemp("moorage-cli") / "config.yaml", ["127.0.0.1:7420"], ca, cert, key, name="tester")
    before = os.environ.get(ENV_CONFIG)
    os.environ[ENV_CONFIG] = str(path)
    try:
        yield path
    finally:
        if before is None:
            del os.environ[ENV_CONFIG]
        else:
            os.environ[ENV_CONFIG] = before
