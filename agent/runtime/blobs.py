"""A content-addressed blob store: ``<root>/sha256/<hex>``, the ``blobs/`` of an OCI image layout."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from agent.runtime.errors import InvalidImage
from agent.runtime.fsutil import atomic_write, canonical_json

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def split_digest(digest: str) -> str:
    """The hex part of ``sha256:<hex>``; InvalidImage for anything else."""
    algorithm, _, hexpart = digest.partition(":")
    if algorithm != "sha256" or len(hexpart) != 64 or not all(c in "0123456789abcdef" for c in hexpart):
        raise InvalidImage(f"not a sha256 digest: {digest!r}")
    return hexpart


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "sha256").mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        return self.root / "sha256" / split_digest(digest)

    def exists(self, digest: str) -> bool:
        return self.path(digest).exists()

    def put_file(self, path: Path, digest: str) -> int:
        """Move the file at ``path`` (whose digest is ``digest``) into the store; return its size."""
        size = path.stat().st_size
        os.replace(path, self.path(digest))
        return size

    def put_json(self, obj: Any) -> tuple[str, int]:
        """Store ``obj`` as canonical JSON; return (digest, size)."""
        data = canonical_json(obj)
        digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
        target = self.path(digest)
        if not target.exists():
            atomic_write(target, data)
        return digest, len(data)

    def read_json(self, digest: str) -> Any:
        try:
            return json.loads(self.path(digest).read_bytes())
        except (OSError, ValueError) as e:
            raise InvalidImage(f"blob {digest} is missing or not JSON: {e}") from e
