"""Small file-system helpers shared by the image store and the container state."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from moorage.fsutil import atomic_write


def canonical_json(obj: Any) -> bytes:
    """Stable JSON bytes (sorted keys, no spaces): equal content gives an equal digest."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def atomic_write_json(path: Path, obj: Any, durable: bool = True) -> None:
    atomic_write(path, canonical_json(obj), durable)
