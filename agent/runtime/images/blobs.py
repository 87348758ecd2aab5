"""A content-addressed blob store: ``<root>/sha256/<hex>``, the ``blobs/`` of an OCI image layout.

Every blob that enters from outside goes through ``ingest``: it is streamed to a temp file
while hashed and counted, refused past its size bound or on a digest mismatch, and only a
verified file is renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

from agent.runtime.errors import InvalidImage
from agent.runtime.fsutil import canonical_json
from moorage.fsutil import atomic_write

_CHUNK = 1 << 20


def chunks(f: IO[bytes]) -> Iterable[bytes]:
    while chunk := f.read(_CHUNK):
        yield chunk


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in chunks(f):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def sha256_bytes(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def split_digest(digest: str) -> str:
    """The hex part of ``sha256:<hex>``; InvalidImage for anything else."""
    algorithm, _, hexpart = digest.partition(":")
    if algorithm != "sha256" or len(hexpart) != 64 or not all(c in "0123456789abcdef" for c in hexpart):
        raise InvalidImage(f"not a sha256 digest: {digest!r}")
    return hexpart


def write_verified(
    data: Iterable[bytes],
    out: IO[bytes],
    expected: str | None,
    bound: int,
    what: str,
    progress: Callable[[int], None] | None = None,
) -> tuple[str, int]:
    """Copy ``data`` to ``out`` while hashing; InvalidImage past ``bound`` bytes or if the digest is not ``expected``."""
    if expected is not None:
        split_digest(expected)
    hasher = hashlib.sha256()
    size = 0
    for chunk in data:
        size += len(chunk)
        if size > bound:
            raise InvalidImage(f"{what} is larger than the bound of {bound} bytes")
        hasher.update(chunk)
        out.write(chunk)
        if progress is not None:
            progress(len(chunk))
    digest = f"sha256:{hasher.hexdigest()}"
    if expected is not None and digest != expected:
        raise InvalidImage(f"{what}: content has digest {digest}, expected {expected}")
    return digest, size


class BlobStore:
    def __init__(self, root: Path, tmp: Path) -> None:
        self.root = root
        self._tmp = tmp
        (root / "sha256").mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        return self.root / "sha256" / split_digest(digest)

    def exists(self, digest: str) -> bool:
        return self.path(digest).exists()

    def digests(self) -> list[str]:
        return [f"sha256:{p.name}" for p in (self.root / "sha256").iterdir()]

    def remove(self, digest: str) -> None:
        self.path(digest).unlink(missing_ok=True)

    def ingest(
        self,
        data: Iterable[bytes],
        expected: str | None,
        bound: int,
        what: str,
        progress: Callable[[int], None] | None = None,
    ) -> tuple[str, int]:
        """Store the bytes of ``data``; refuse more than ``bound`` bytes or a digest other than ``expected``."""
        fd, tmp = tempfile.mkstemp(dir=self._tmp, prefix="blob-")
        try:
            with os.fdopen(fd, "wb") as out:
                digest, size = write_verified(data, out, expected, bound, what, progress)
            os.replace(tmp, self.path(digest))
            return digest, size
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        """Store ``data`` as it is; return (digest, size)."""
        digest = sha256_bytes(data)
        target = self.path(digest)
        if not target.exists():
            atomic_write(target, data)
        return digest, len(data)

    def put_json(self, obj: Any) -> tuple[str, int]:
        """Store ``obj`` as canonical JSON; return (digest, size)."""
        return self.put_bytes(canonical_json(obj))

    def read_bytes(self, digest: str) -> bytes:
        try:
            return self.path(digest).read_bytes()
        except OSError as e:
            raise InvalidImage(f"blob {digest} is missing: {e}") from e

    def read_json(self, digest: str) -> Any:
        try:
            return json.loads(self.read_bytes(digest))
        except ValueError as e:
            raise InvalidImage(f"blob {digest} is not JSON: {e}") from e
