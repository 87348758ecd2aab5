"""Layer tarballs: written deterministically from a directory, checked, and unpacked safely.

A layer is an uncompressed tar (OCI media type ``application/vnd.oci.image.layer.v1.tar``),
so its digest is also its diff-id. Unpacking never follows a path out of the layer root:
members with ``..`` or an absolute name, hard links to such names, relative symlinks that
climb above the root, and members reached *through* a symlink of the same archive are all
refused with InvalidImage before anything is written. Absolute symlink targets are kept:
inside the container they resolve against the container's root, and unpacking never
follows a link. OCI whiteouts become overlayfs whiteouts (``.wh.x`` → char device 0/0,
``.wh..wh..opq`` → ``trusted.overlay.opaque``); a whiteout must name one entry of its own
directory (``.wh..`` or ``.wh...`` are refused). Writing a container's overlay upper dir
(``write_tar(..., overlay=True)``) turns them back into OCI whiteouts.

Device nodes: block and character devices are created only below ``dev/`` of the layer,
where base images carry their ``/dev`` skeleton (the runtime mounts a fresh tmpfs over
``/dev`` anyway); anywhere else they are refused, so a layer cannot plant a raw disk device
in, say, ``/data``. FIFOs are allowed everywhere.
"""

from __future__ import annotations

import io
import os
import posixpath
import shutil
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from agent.runtime.errors import InvalidImage

WHITEOUT_PREFIX = ".wh."
OPAQUE_WHITEOUT = ".wh..wh..opq"


def write_tar(source: Path, out: IO[bytes], overlay: bool = False) -> None:
    """Tar the tree under ``source`` (not the root entry itself) into ``out``.

    Deterministic: entries sorted by name, numeric owners without names, whole-second
    mtimes kept as they are on disk; hard links within the tree stay hard links. With
    ``overlay``, ``source`` is an overlayfs upper dir and its whiteouts are written in OCI form.
    """
    empty = io.BytesIO(b"")
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in _walk_sorted(source):
            info = tar.gettarinfo(str(path), arcname=path.relative_to(source).as_posix())
            if info is None:
                continue  # a socket: not part of an image
            info.uname = info.gname = ""
            info.mtime = int(info.mtime)
            if overlay and info.ischr() and info.devmajor == info.devminor == 0:
                tar.addfile(_marker(info, posixpath.join(posixpath.dirname(info.name), WHITEOUT_PREFIX + path.name)), empty)
                continue
            if info.isreg():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
            if overlay and info.isdir() and _opaque(path):
                tar.addfile(_marker(info, f"{info.name}/{OPAQUE_WHITEOUT}"), empty)


def _marker(like: tarfile.TarInfo, name: str) -> tarfile.TarInfo:
    """An empty regular file (an OCI whiteout) named ``name``."""
    info = tarfile.TarInfo(name)
    info.mode, info.mtime, info.uid, info.gid = 0o644, like.mtime, 0, 0
    return info


def _opaque(path: Path) -> bool:
    try:
        return os.getxattr(path, "trusted.overlay.opaque", follow_symlinks=False) == b"y"
    except OSError:
        return False


def _walk_sorted(root: Path) -> Iterator[Path]:
    with os.scandir(root) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        yield Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            yield from _walk_sorted(Path(entry.path))


def member_path(name: str) -> str:
    """The member's normalised relative path; InvalidImage if it is absolute or climbs out."""
    if name.startswith("/"):
        raise InvalidImage(f"tar member has an absolute path: {name}")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidImage(f"tar member escapes the layer root: {name}")
    return "/".join(parts)


def check_members(members: list[tarfile.TarInfo]) -> list[tuple[str, tarfile.TarInfo]]:
    """Validate every member (see the module docstring); return them with normalised paths."""
    symlinks: set[str] = set()
    checked: list[tuple[str, tarfile.TarInfo]] = []
    for info in members:
        path = member_path(info.name)
        if not path:
            continue  # the root entry "./": the layer directory itself
        _refuse_through_symlink(path, symlinks, info.name)
        if info.issym():
            if not info.linkname.startswith("/"):
                target = posixpath.normpath(posixpath.join(posixpath.dirname(path), info.linkname))
                if target == ".." or target.startswith("../"):
                    raise InvalidImage(f"symlink {info.name} -> {info.linkname} escapes the layer root")
            symlinks.add(path)
        else:
            symlinks.discard(path)
        if info.islnk():
            target = member_path(info.linkname)
            _refuse_through_symlink(target, symlinks, info.name)
            if target in symlinks or not target:
                raise InvalidImage(f"hard link {info.name} -> {info.linkname} does not name a file")
        if not (info.isreg() or info.isdir() or info.issym() or info.islnk() or info.ischr() or info.isblk() or info.isfifo()):
            raise InvalidImage(f"tar member {info.name} has an unsupported type {info.type!r}")
        if (info.ischr() or info.isblk()) and not path.startswith("dev/"):
            raise InvalidImage(f"tar member {info.name} is a device node outside dev/")
        base = path.rsplit("/", 1)[-1]
        if base.startswith(WHITEOUT_PREFIX) and base != OPAQUE_WHITEOUT and base[len(WHITEOUT_PREFIX) :] in ("", ".", ".."):
            raise InvalidImage(f"whiteout {info.name} does not name an entry of its directory")
        checked.append((path, info))
    return checked


def _refuse_through_symlink(path: str, symlinks: set[str], name: str) -> None:
    parent = path
    while "/" in parent:
        parent = parent.rsplit("/", 1)[0]
        if parent in symlinks:
            raise InvalidImage(f"tar member {name} is reached through the symlink {parent}")


def unpack(tar_path: Path, dest: Path) -> None:
    """Unpack the layer tar at ``tar_path`` into the new directory ``dest`` (checked first)."""
    try:
        with tarfile.open(tar_path, mode="r:") as tar:
            members = check_members(tar.getmembers())
            dest.mkdir(mode=0o755)
            for path, info in members:
                _extract(tar, info, dest, path)
            for path, info in reversed(members):  # directories last, deepest first: children touch them
                if info.isdir():
                    _set_metadata(dest / path, info)
    except tarfile.TarError as e:
        raise InvalidImage(f"{tar_path}: not a readable tar: {e}") from e
    except OSError as e:  # e.g. a member below a regular file, a hard link to nothing
        raise InvalidImage(f"{tar_path}: cannot unpack: {e}") from e


def _extract(tar: tarfile.TarFile, info: tarfile.TarInfo, dest: Path, path: str) -> None:
    target = dest / path
    parent, base = target.parent, target.name
    parent.mkdir(parents=True, exist_ok=True)
    if base == OPAQUE_WHITEOUT:
        os.setxattr(parent, "trusted.overlay.opaque", b"y")
        return
    if base.startswith(WHITEOUT_PREFIX):
        hidden = parent / base[len(WHITEOUT_PREFIX) :]
        _clear(hidden, keep_dir=False)
        os.mknod(hidden, stat.S_IFCHR | 0o000, os.makedev(0, 0))
        return
    _clear(target, keep_dir=info.isdir())
    if info.isdir():
        target.mkdir(exist_ok=True)
        return  # metadata once all children are in
    if info.issym():
        os.symlink(info.linkname, target)
    elif info.islnk():
        os.link(dest / member_path(info.linkname), target, follow_symlinks=False)
        return  # shares the inode (and its metadata) with the link target
    elif info.isreg():
        source = tar.extractfile(info)
        assert source is not None
        with source, open(target, "xb") as out:
            shutil.copyfileobj(source, out)
    else:
        kind = {tarfile.CHRTYPE: stat.S_IFCHR, tarfile.BLKTYPE: stat.S_IFBLK, tarfile.FIFOTYPE: stat.S_IFIFO}
        os.mknod(target, kind[info.type] | 0o600, os.makedev(info.devmajor, info.devminor))
    _set_metadata(target, info)


def _clear(target: Path, keep_dir: bool) -> None:
    """Make room for a member: a later entry replaces an earlier one (a directory stays if the new one is too)."""
    if target.is_dir() and not target.is_symlink():
        if not keep_dir:
            shutil.rmtree(target)
    elif os.path.lexists(target):
        target.unlink()


def _set_metadata(target: Path, info: tarfile.TarInfo) -> None:
    os.chown(target, info.uid, info.gid, follow_symlinks=False)
    if not info.issym():  # chown clears set-id bits: chmod after it
        os.chmod(target, info.mode & 0o7777)
    os.utime(target, (info.mtime, info.mtime), follow_symlinks=False)
