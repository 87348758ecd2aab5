"""Volumes: directories that outlive containers, named or anonymous.

    <root>/volumes/<name>/_data         what the container sees at the mount's target
    <root>/volumes/<name>/volume.json   {"name", "created_at", "anonymous"}

A volume is in use while some container's bundle lists it (the Runtime counts that from the
containers on disk, so nothing is counted twice or forgotten); it is removed only on request
and, while in use, only with ``force``. A volume that is new (or still empty) when first
mounted is filled from the image's content at the mount's target, as Docker does for named
and anonymous volumes — read from the image's layers, lowest first, honouring whiteouts.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from agent.runtime.errors import InvalidSpec, RuntimeFailure
from agent.runtime.fsutil import atomic_write_json

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
ANONYMOUS_PREFIX = "moorage-anon-"
_OPAQUE_XATTR = "trusted.overlay.opaque"


class VolumeInUse(RuntimeFailure):
    def __init__(self, name: str, users: list[str]) -> None:
        super().__init__(f"volume {name} is in use by container(s) {', '.join(sorted(users))}")
        self.name = name
        self.users = users


class VolumeNotFound(RuntimeFailure):
    def __init__(self, name: str) -> None:
        super().__init__(f"volume not found: {name}")
        self.name = name


@dataclass(frozen=True)
class Volume:
    name: str
    path: Path  # the _data directory
    anonymous: bool


class Volumes:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def get(self, name: str) -> Volume:
        base = self.root / name
        if not _NAME.match(name) or not (base / "_data").is_dir():
            raise VolumeNotFound(name)
        return Volume(name, base / "_data", name.startswith(ANONYMOUS_PREFIX))

    def ensure(self, name: str | None, seed: tuple[Path, ...] = (), target: str = "") -> Volume:
        """The volume ``name`` (a new anonymous one when None), made if missing; an empty one is
        seeded from ``target`` in the layers ``seed`` (lowest first)."""
        if name is None:
            name = ANONYMOUS_PREFIX + secrets.token_hex(16)
        elif not _NAME.match(name):
            raise InvalidSpec(f"invalid volume name {name!r}: want [A-Za-z0-9][A-Za-z0-9_.-]{{0,127}}")
        base = self.root / name
        data = base / "_data"
        if not data.is_dir():
            data.mkdir(parents=True, exist_ok=True)
            atomic_write_json(base / "volume.json", {"name": name, "anonymous": name.startswith(ANONYMOUS_PREFIX),
                                                      "created_at": datetime.now(UTC).isoformat()})
        if seed and target and not any(data.iterdir()):
            for layer in seed:
                _merge(layer / target.lstrip("/"), data)
        return Volume(name, data, name.startswith(ANONYMOUS_PREFIX))

    def names(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if (p / "_data").is_dir())

    def remove(self, name: str) -> None:
        self.get(name)
        shutil.rmtree(self.root / name)


def _merge(src: Path, dest: Path) -> None:
    """Lay the layer directory ``src`` over ``dest`` as overlayfs would: whiteouts delete, opaque dirs replace."""
    if not src.is_dir() or src.is_symlink():
        return
    try:
        if os.getxattr(src, _OPAQUE_XATTR) == b"y":
            for entry in list(dest.iterdir()):
                _delete(entry)
    except OSError:
        pass
    with os.scandir(src) as entries:
        for entry in entries:
            target = dest / entry.name
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISCHR(info.st_mode) and info.st_rdev == 0:  # a whiteout
                _delete(target)
            elif entry.is_dir(follow_symlinks=False):
                if target.is_symlink() or (target.exists() and not target.is_dir()):
                    _delete(target)
                target.mkdir(exist_ok=True)
                _merge(Path(entry.path), target)
                _own(Path(entry.path), target, info)
            else:
                _delete(target)
                if entry.is_symlink():
                    os.symlink(os.readlink(entry.path), target)
                else:
                    shutil.copy2(entry.path, target, follow_symlinks=False)
                _own(Path(entry.path), target, info)


def _own(src: Path, dest: Path, info: os.stat_result) -> None:
    os.lchown(dest, info.st_uid, info.st_gid)
    if not stat.S_ISLNK(info.st_mode):
        os.chmod(dest, stat.S_IMODE(info.st_mode))


def _delete(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
