"""Fixtures shared by every test folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from moorage.localcluster.etcd import Etcd


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[Etcd]:
    """A fresh, real etcd server on loopback, stopped after the test."""
    server = Etcd(tmp_path / "etcd").start()
    try:
        yield server
    finally:
        server.stop()
