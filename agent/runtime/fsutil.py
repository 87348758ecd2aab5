"""Small file-system helpers shared by the image store and the container state."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any


def atomic_write(path: Path, data: bytes, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` so readers see the old or the new file, never a torn one.

    Temp file in the same directory, fsync, ``os.replace``, then fsync of the directory so
    the rename itself survives a crash. ``durable=False`` skips both fsyncs: still atomic for
    readers, not across a crash of the machine.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")  # one per writer thread
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if not durable:
        return
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def canonical_json(obj: Any) -> bytes:
    """Stable JSON bytes (sorted keys, no spaces): equal content gives an equal digest."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def atomic_write_json(path: Path, obj: Any, durable: bool = True) -> None:
    atomic_write(path, canonical_json(obj), durable)
