"""Volumes: directories that outlive containers, named or anonymous.

    <root>/volumes/<name>/_data         what the container sees at the mount's target
    <root>/volumes/<name>/volume.json   {"name", "created_at", "anonymous"}

A volume is in use while some container's bundle lists it (the Runtime counts that from the
containers on disk, so nothing is counted twice or forgotten); it is removed only on request
and, while in use, only with ``force``. A volume that is new (or still empty) when first
mounted is filled from the image's content at the mount's target, as Docker does for named
and anonymous volumes — read from the image's layers as overlayfs shows them (whiteouts,
opaque directories), through agent.runtime.images.view (see ``populate``).
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
from agent.runtime.images.view import Dir, ImageView, Node
from agent.runtime.rootpath import DIR_FLAGS, Root, split

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
ANONYMOUS_PREFIX = "moorage-anon-"


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
            populate(seed, target, data)
        return Volume(name, data, name.startswith(ANONYMOUS_PREFIX))

    def names(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if (p / "_data").is_dir())

    def remove(self, name: str) -> None:
        self.get(name)
        shutil.rmtree(self.root / name)


def populate(layers: tuple[Path, ...], target: str, data: Path) -> None:
    """Copy what the image (``layers``, lowest first) shows at ``target`` into the empty ``data``.

    ``target`` is resolved inside the image (agent.runtime.images.view: symlinks followed
    within the image's root, never the host's); only directories, regular files and symlinks
    are copied, hard links once each, so nothing is read but the layers' own files (a device
    node or FIFO is never opened) and the copy is bounded by the layers' own (bounded) size.
    """
    with ImageView(layers) as view:
        try:
            found = view.resolve(target)
        except OSError as e:  # a symlink loop in the image
            raise InvalidSpec(f"volume {target}: {e.strerror} in the image") from e
        if found is None:
            return
        try:
            if isinstance(found, Dir):
                with Root(data) as dest:
                    _copy(view, found, dest, dest.fd, "", {})
        finally:
            found.close()


def _copy(view: ImageView, source: Dir, dest: Root, dest_fd: int, prefix: str,
          inodes: dict[tuple[int, int], str]) -> None:
    for name, entry in view.walk(source):
        if isinstance(entry, Dir):
            st = os.fstat(entry.fds[0])
            os.mkdir(name, 0o700, dir_fd=dest_fd)
            sub = os.open(name, DIR_FLAGS, dir_fd=dest_fd)
            try:
                _copy(view, entry, dest, sub, f"{prefix}{name}/", inodes)
                os.fchown(sub, st.st_uid, st.st_gid)
                os.fchmod(sub, stat.S_IMODE(st.st_mode))
            finally:
                os.close(sub)
        elif stat.S_ISLNK(entry.st.st_mode):
            os.symlink(os.readlink(entry.name, dir_fd=entry.parent), name, dir_fd=dest_fd)
            os.chown(name, entry.st.st_uid, entry.st.st_gid, dir_fd=dest_fd, follow_symlinks=False)
        elif stat.S_ISREG(entry.st.st_mode):
            key = (entry.st.st_dev, entry.st.st_ino)
            if key in inodes:
                parent, base = split(inodes[key])
                fd = dest.open(parent, DIR_FLAGS)
                try:
                    os.link(base, name, src_dir_fd=fd, dst_dir_fd=dest_fd, follow_symlinks=False)
                finally:
                    os.close(fd)
                continue
            _copy_file(view, entry, name, dest_fd)
            if entry.st.st_nlink > 1:
                inodes[key] = prefix + name
        # devices, FIFOs and sockets are not volume content


def _copy_file(view: ImageView, entry: Node, name: str, dest_fd: int) -> None:
    source = view.open_regular(entry)
    if source is None:
        return
    try:
        out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                      dir_fd=dest_fd)
        try:
            left = entry.st.st_size
            while left > 0 and (n := os.copy_file_range(source, out, left)):
                left -= n
            os.fchown(out, entry.st.st_uid, entry.st.st_gid)
            os.fchmod(out, stat.S_IMODE(entry.st.st_mode))
            os.utime(out, ns=(entry.st.st_atime_ns, entry.st.st_mtime_ns))
        finally:
            os.close(out)
    finally:
        os.close(source)
