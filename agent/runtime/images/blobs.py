"""A content-addressed blob store: ``<root>/sha256/<hex>``, the ``blobs/`` of an OCI image layout.

Every blob that enters from outside goes through ``ingest``: it is streamed to a temp file
while hashed and counted, refused past its size bound or on a digest mismatch, and only a
verified file is renamed into place.

Staging: inside ``staging(dir)`` (the image store's writing transaction, per thread), new
blobs go to ``dir`` instead, where ``path``/``exists``/``read_bytes`` still find them; only
``publish`` moves them into the store, so what a failed pull or load brought never lands
among the store's blobs.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Protocol

from agent.runtime.errors import InvalidImage, LimitExceeded
from agent.runtime.fsutil import canonical_json
from moorage.fsutil import atomic_write

_CHUNK = 1 << 20


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


def chunks(f: Readable) -> Iterable[bytes]:
    while chunk := f.read(_CHUNK):
        yield chunk


def bounded(data: Iterable[bytes], bound: int, what: str, limit: str) -> Iterator[bytes]:
    """``data`` as it is, but LimitExceeded (naming ``limit``) once more than ``bound`` bytes came."""
    total = 0
    for chunk in data:
        total += len(chunk)
        if total > bound:
            raise LimitExceeded(what, limit, bound, f"more than {bound} bytes uncompressed")
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
        self._local = threading.local()
        (root / "sha256").mkdir(parents=True, exist_ok=True)

    @contextmanager
    def staging(self, stage: Path) -> Iterator[None]:
        """New blobs of this thread go to ``stage`` until published (see the module docstring)."""
        self._local.stage = stage
        try:
            yield
        finally:
            self._local.stage = None

    def _staged(self, digest: str) -> Path | None:
        stage: Path | None = getattr(self._local, "stage", None)
        return None if stage is None else stage / split_digest(digest)

    def _target(self, digest: str) -> Path:
        return self._staged(digest) or self.root / "sha256" / split_digest(digest)

    def path(self, digest: str) -> Path:
        staged = self._staged(digest)
        return staged if staged is not None and staged.exists() else self.root / "sha256" / split_digest(digest)

    def exists(self, digest: str) -> bool:
        return self.path(digest).exists()

    def digests(self) -> list[str]:
        return [f"sha256:{p.name}" for p in (self.root / "sha256").iterdir()]

    def remove(self, digest: str) -> None:
        (self.root / "sha256" / split_digest(digest)).unlink(missing_ok=True)

    def publish(self, digests: Iterable[str]) -> None:
        """Move these staged blobs into the store (those not staged are there already)."""
        for digest in digests:
            staged = self._staged(digest)
            if staged is not None and staged.exists():
                os.replace(staged, self.root / "sha256" / split_digest(digest))

    def ingest(
        self,
        data: Iterable[bytes],
        expected: str | None,
        bound: int,
        what: str,
        progress: Callable[[int], None] | None = None,
    ) -> tuple[str, int]:
        """Store the bytes of ``data``; refuse more than ``bound`` bytes or a digest other than ``expected``."""
        stage: Path | None = getattr(self._local, "stage", None)
        fd, tmp = tempfile.mkstemp(dir=stage or self._tmp, prefix="blob-")
        try:
            with os.fdopen(fd, "wb") as out:
                digest, size = write_verified(data, out, expected, bound, what, progress)
            os.replace(tmp, self._target(digest))
            return digest, size
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def adopt(self, path: Path, digest: str) -> None:
        """Move the file at ``path``, whose content has ``digest`` (the caller checked), in as that blob."""
        os.replace(path, self._target(digest))

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        """Store ``data`` as it is; return (digest, size)."""
        digest = sha256_bytes(data)
        if not self.exists(digest):
            atomic_write(self._target(digest), data)
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
