"""Layer tarballs: written deterministically from a directory, checked, and unpacked safely.

A layer is an uncompressed tar (OCI media type ``application/vnd.oci.image.layer.v1.tar``),
so its digest is also its diff-id. Unpacking never follows a path out of the layer root:
members with ``..`` or an absolute name, hard links to such names, relative symlinks that
climb above the root, and members reached *through* a symlink of the same archive are all
refused with InvalidImage. Absolute symlink targets are kept: inside the container they
resolve against the container's root, and unpacking never follows a link. OCI whiteouts
become overlayfs whiteouts (``.wh.x`` → char device 0/0, ``.wh..wh..opq`` →
``trusted.overlay.opaque``); a whiteout must name one entry of its own directory (``.wh..``
or ``.wh...`` are refused). Writing a container's overlay upper dir (``write_tar(...,
overlay=True)``) turns them back into OCI whiteouts.

Every file-system call goes through agent.runtime.rootpath: the layer directory is a
``Root`` that follows no symlink (openat2 RESOLVE_NO_SYMLINKS), members are made with ``*at``
calls on their parent directory's fd (O_EXCL, O_NOFOLLOW), and metadata is set on fds —
so a symlink a later member puts where a directory was cannot redirect the deferred
chmod/chown/utime of that directory (or anything else) to the host. Directories get their
metadata last (their children's creation touches their mtime), and only if the directory
that got it is still the one at that path.

Device nodes: block and character devices are created only below ``dev/`` of the layer,
where base images carry their ``/dev`` skeleton (the runtime mounts a fresh tmpfs over
``/dev`` anyway); anywhere else they are refused, so a layer cannot plant a raw disk device
in, say, ``/data`` — nor by a hard link to one under ``dev/``: a hard link is judged by what
it links to. FIFOs are allowed everywhere.

Bombs: a layer's entries, the sizes of its files added up, each path's length and depth,
and its unpacked size against its blob's (``ratio``) are bounded by images.spec.Limits;
past one, unpacking stops with LimitExceeded naming the layer and the limit. Sparse members
are refused (the OCI spec says they SHOULD NOT be used; they are how a 10 KB tar claims
gigabytes), and so are extended headers over ``HEADER_BOUND`` (tarfile reads them whole).
"""

from __future__ import annotations

import errno
import io
import os
import posixpath
import shutil
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from agent.runtime.errors import InvalidImage, LimitExceeded
from agent.runtime.images.spec import Limits
from agent.runtime.rootpath import DIR_FLAGS, Root, is_whiteout, open_regular_at, split

WHITEOUT_PREFIX = ".wh."
OPAQUE_WHITEOUT = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
NAME_MAX = 255
HEADER_BOUND = 1 << 20  # one pax/GNU long-name header; also what global pax headers may add up to
_DIR_CACHE = 64  # parent directory fds kept open while unpacking (members come grouped by directory)
_NODE_KINDS = {tarfile.CHRTYPE: stat.S_IFCHR, tarfile.BLKTYPE: stat.S_IFBLK, tarfile.FIFOTYPE: stat.S_IFIFO}
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


# --- writing ------------------------------------------------------------------------------


def write_tar(source: Path, out: IO[bytes], overlay: bool = False, max_depth: int = Limits.path_depth) -> None:
    """Tar the tree under ``source`` (not the root entry itself) into ``out``.

    Deterministic: entries sorted by name, numeric owners without names, whole-second
    mtimes kept as they are on disk; hard links within the tree stay hard links. With
    ``overlay``, ``source`` is an overlayfs upper dir and its whiteouts are written in OCI form.
    The tree is read through fds (no symlink is followed, a file is read from the fd its
    metadata came from), so a container changing its rw layer while it is committed cannot
    get anything of the host into the tar; a tree deeper than ``max_depth`` is refused.
    """
    with Root(source) as root, tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add_tree(tar, root.fd, "", overlay, {}, max_depth)


def _add_tree(tar: tarfile.TarFile, dir_fd: int, prefix: str, overlay: bool, inodes: dict[tuple[int, int], str],
              depth: int) -> None:
    if depth <= 0:
        raise InvalidImage(f"{prefix.rstrip('/')}: the tree is deeper than the limit path_depth")
    for name in sorted(os.listdir(dir_fd)):
        arcname = prefix + name
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            continue  # removed since it was listed (a running container's rw layer)
        if stat.S_ISDIR(st.st_mode):
            fd = _open_or_none(name, DIR_FLAGS, dir_fd)
            if fd is None:
                continue  # replaced since it was listed
            try:
                tar.addfile(_info(arcname, os.fstat(fd)))
                if overlay and _opaque(fd):
                    tar.addfile(_marker(st.st_mtime, f"{arcname}/{OPAQUE_WHITEOUT}"), io.BytesIO(b""))
                _add_tree(tar, fd, arcname + "/", overlay, inodes, depth - 1)
            finally:
                os.close(fd)
        elif stat.S_ISREG(st.st_mode):
            fd = open_regular_at(dir_fd, name)
            if fd is None:
                continue  # replaced since it was listed (never opened if it is a device now)
            with os.fdopen(fd, "rb") as f:
                st = os.fstat(fd)
                info = _info(arcname, st)
                if st.st_nlink > 1 and inodes.setdefault((st.st_ino, st.st_dev), arcname) != arcname:
                    info.type, info.size, info.linkname = tarfile.LNKTYPE, 0, inodes[(st.st_ino, st.st_dev)]
                    tar.addfile(info)
                else:
                    tar.addfile(info, f)
        elif stat.S_ISLNK(st.st_mode):
            try:
                target = os.readlink(name, dir_fd=dir_fd)
            except (FileNotFoundError, OSError) as e:
                if isinstance(e, FileNotFoundError) or e.errno == errno.EINVAL:
                    continue  # no longer a symlink: changed since it was looked at
                raise
            info = _info(arcname, st)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
        elif overlay and is_whiteout(st):
            tar.addfile(_marker(st.st_mtime, prefix + WHITEOUT_PREFIX + name), io.BytesIO(b""))
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) or stat.S_ISFIFO(st.st_mode):
            tar.addfile(_info(arcname, st))
        # a socket: not part of an image


def _open_or_none(name: str, flags: int, dir_fd: int) -> int | None:
    try:
        return os.open(name, flags, dir_fd=dir_fd)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        if e.errno == errno.ELOOP:  # a symlink now: it is not followed
            return None
        raise


def _info(name: str, st: os.stat_result) -> tarfile.TarInfo:
    """The tar header of an entry from its stat (what ``TarFile.gettarinfo`` writes, names left out)."""
    info = tarfile.TarInfo(name)
    info.mode, info.uid, info.gid, info.mtime = st.st_mode & 0o7777, st.st_uid, st.st_gid, int(st.st_mtime)
    mode = st.st_mode
    if stat.S_ISREG(mode):
        info.type, info.size = tarfile.REGTYPE, st.st_size
    elif stat.S_ISDIR(mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISFIFO(mode):
        info.type = tarfile.FIFOTYPE
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    return info


def _marker(mtime: float, name: str) -> tarfile.TarInfo:
    """An empty regular file (an OCI whiteout) named ``name``."""
    info = tarfile.TarInfo(name)
    info.mode, info.mtime, info.uid, info.gid = 0o644, int(mtime), 0, 0
    return info


def _opaque(fd: int) -> bool:
    try:
        return os.getxattr(fd, OPAQUE_XATTR) == b"y"
    except OSError:
        return False


# --- checking -----------------------------------------------------------------------------


class BoundedTarInfo(tarfile.TarInfo):
    """tarfile's header parsing with a bound on what it reads whole, and no sparse members.

    Hooks tarfile's (stable, long-lived) private ``_proc_*`` steps: a pax or GNU long-name
    header is read into memory in one piece, and sparse maps are read without a bound.
    """

    def _proc_member(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type == tarfile.GNUTYPE_SPARSE:
            raise InvalidImage(f"tar member {self.name} is a sparse file: not allowed in a layer")
        if self.type in (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME,
                         tarfile.GNUTYPE_LONGLINK) and self.size > HEADER_BOUND:
            raise InvalidImage(f"a tar extended header of {self.size} bytes is over the bound of {HEADER_BOUND}")
        if self.type == tarfile.XGLTYPE and sum(map(len, tarfile_.pax_headers.values())) > HEADER_BOUND:
            raise InvalidImage(f"the tar's global headers add up to more than {HEADER_BOUND} bytes")
        return super()._proc_member(tarfile_)  # type: ignore[misc,no-any-return]

    def _proc_gnusparse_00(self, *args: Any) -> None:
        raise InvalidImage(f"tar member {self.name} is a sparse file: not allowed in a layer")

    _proc_gnusparse_01 = _proc_gnusparse_10 = _proc_gnusparse_00


def member_path(name: str) -> str:
    """The member's normalised relative path; InvalidImage if it is absolute or climbs out."""
    if name.startswith("/"):
        raise InvalidImage(f"tar member has an absolute path: {name}")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidImage(f"tar member escapes the layer root: {name}")
    return "/".join(parts)


class Checker:
    """Checks members one by one, in archive order (see the module docstring); keeps what later members need."""

    def __init__(self, limits: Limits | None = None, what: str = "layer", blob_size: int | None = None) -> None:
        limits = self.limits = limits or Limits()
        self.what = what
        self.entries = 0
        self.bytes = 0
        self.bytes_bound, self.bytes_limit = limits.layer_bytes, "layer_bytes"
        if blob_size is not None:
            by_ratio, limit = limits.uncompressed_bound(blob_size)
            if by_ratio < self.bytes_bound:
                self.bytes_bound, self.bytes_limit = by_ratio, limit
        self.symlinks: set[str] = set()
        self.devices: set[str] = set()  # paths of device nodes and whiteouts: not for hard links outside dev/

    def check(self, info: tarfile.TarInfo) -> str:
        """The member's normalised path ("" for the root entry); InvalidImage or LimitExceeded if refused."""
        path = member_path(info.name)
        if not path:
            return ""  # the root entry "./": the layer directory itself
        self._bound(info, path)
        _refuse_through_symlink(path, self.symlinks, info.name)
        if info.issym():
            if not info.linkname.startswith("/"):
                target = posixpath.normpath(posixpath.join(posixpath.dirname(path), info.linkname))
                if target == ".." or target.startswith("../"):
                    raise InvalidImage(f"symlink {info.name} -> {info.linkname} escapes the layer root")
            self.symlinks.add(path)
        else:
            self.symlinks.discard(path)
        if info.islnk():
            target = member_path(info.linkname)
            _refuse_through_symlink(target, self.symlinks, info.name)
            if target in self.symlinks or not target:
                raise InvalidImage(f"hard link {info.name} -> {info.linkname} does not name a file")
            if target in self.devices and not path.startswith("dev/"):
                raise InvalidImage(f"hard link {info.name} -> {info.linkname} is a device node outside dev/")
        if not (info.isreg() or info.isdir() or info.issym() or info.islnk() or info.ischr() or info.isblk()
                or info.isfifo()):
            raise InvalidImage(f"tar member {info.name} has an unsupported type {info.type!r}")
        if info.sparse is not None:
            raise InvalidImage(f"tar member {info.name} is a sparse file: not allowed in a layer")
        if (info.ischr() or info.isblk()) and not path.startswith("dev/"):
            raise InvalidImage(f"tar member {info.name} is a device node outside dev/")
        base = path.rsplit("/", 1)[-1]
        if base.startswith(WHITEOUT_PREFIX) and base != OPAQUE_WHITEOUT:
            hidden = base[len(WHITEOUT_PREFIX):]
            if hidden in ("", ".", ".."):
                raise InvalidImage(f"whiteout {info.name} does not name an entry of its directory")
            self.devices.add(posixpath.join(posixpath.dirname(path), hidden))
        elif info.ischr() or info.isblk() or (info.islnk() and member_path(info.linkname) in self.devices):
            self.devices.add(path)
        else:
            self.devices.discard(path)
        return path

    def _bound(self, info: tarfile.TarInfo, path: str) -> None:
        limits = self.limits
        self.entries += 1
        if self.entries > limits.layer_entries:
            raise LimitExceeded(self.what, "layer_entries", limits.layer_entries,
                                f"more than {limits.layer_entries} entries")
        for name, value in (("path", path), ("link target", info.linkname)):
            if len(value.encode()) > limits.path_bytes:
                raise LimitExceeded(self.what, "path_bytes", limits.path_bytes,
                                    f"the {name} of {info.name[:100]!r}... is {len(value.encode())} bytes")
        if path.count("/") + 1 > limits.path_depth:
            raise LimitExceeded(self.what, "path_depth", limits.path_depth,
                                f"{info.name[:100]!r}... is {path.count('/') + 1} components deep")
        if any(len(part.encode()) > NAME_MAX for part in path.split("/")):
            raise InvalidImage(f"{self.what}: tar member {info.name[:100]!r}... has a name over {NAME_MAX} bytes")
        if info.isreg():
            self.bytes += info.size
            if self.bytes > self.bytes_bound:
                raise LimitExceeded(self.what, self.bytes_limit, self.bytes_bound,
                                    f"its files add up to more than {self.bytes_bound} bytes")


def check_members(members: list[tarfile.TarInfo], limits: Limits | None = None) -> list[tuple[str, tarfile.TarInfo]]:
    """Validate every member (see the module docstring); return them with normalised paths."""
    checker = Checker(limits)
    return [(path, info) for info in members if (path := checker.check(info))]


def _refuse_through_symlink(path: str, symlinks: set[str], name: str) -> None:
    parent = path
    while "/" in parent:
        parent = parent.rsplit("/", 1)[0]
        if parent in symlinks:
            raise InvalidImage(f"tar member {name} is reached through the symlink {parent}")


# --- unpacking ----------------------------------------------------------------------------


def unpack(tar_path: Path, dest: Path, limits: Limits | None = None, what: str = "layer",
           blob_size: int | None = None) -> None:
    """Unpack the layer tar at ``tar_path`` into the new directory ``dest``.

    Members are checked as they are read; on refusal ``dest`` is left partly written for the
    caller to remove (the store unpacks in its tmp/ and renames a complete layer into place).
    ``blob_size``: the size of the blob the tar came from (a gzip layer's), for ``ratio``.
    """
    checker = Checker(limits, what, os.path.getsize(tar_path) if blob_size is None else blob_size)
    try:
        dest.mkdir(mode=0o755)
        with tarfile.open(tar_path, mode="r:", tarinfo=BoundedTarInfo) as tar, _Unpacker(dest, tar) as unpacker:
            while (info := tar.next()) is not None:
                tar.members.clear()  # type: ignore[attr-defined]  # tarfile keeps every header read: a million members would stay in memory
                path = checker.check(info)
                if path:
                    unpacker.extract(info, path)
            unpacker.finish()
    except LimitExceeded:
        raise
    except InvalidImage as e:
        raise InvalidImage(f"{what}: {e}") from e
    except tarfile.TarError as e:
        raise InvalidImage(f"{what}: not a readable tar: {e}") from e
    except (OSError, OverflowError, ValueError) as e:  # a member below a regular file, a hard link to nothing
        raise InvalidImage(f"{what}: cannot unpack: {e}") from e


@dataclass
class _Deferred:
    info: tarfile.TarInfo
    seq: int  # when the directory got this member's metadata


class _Unpacker:
    """The file-system side of unpack: every call relative to a directory fd (see the module docstring)."""

    def __init__(self, dest: Path, tar: tarfile.TarFile) -> None:
        self.root = Root(dest)
        self.tar_fd = tar.fileobj.fileno()  # type: ignore[attr-defined]
        self.dirs: dict[str, int] = {}  # parent path -> fd, oldest first
        self.deferred: dict[str, _Deferred] = {}
        self.cleared: dict[str, int] = {}  # directory path -> when it was last removed
        self.seq = 0

    def __enter__(self) -> _Unpacker:
        return self

    def __exit__(self, *exc: object) -> None:
        for fd in self.dirs.values():
            os.close(fd)
        self.root.close()

    def extract(self, info: tarfile.TarInfo, path: str) -> None:
        self.seq += 1
        parent_path, name = split(path)
        parent = self._dir(parent_path)
        if name == OPAQUE_WHITEOUT:
            os.setxattr(parent, OPAQUE_XATTR, b"y")
            return
        if name.startswith(WHITEOUT_PREFIX):
            hidden = name[len(WHITEOUT_PREFIX):]
            self._clear(parent, hidden, _join(parent_path, hidden))
            os.mknod(hidden, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=parent)
            return
        if info.isdir():
            self._mkdir(parent, name, path)
            self.deferred[path] = _Deferred(info, self.seq)  # metadata once all children are in
            return
        self._make(info, parent, name, path)

    def finish(self) -> None:
        """Directory metadata, last: each directory still standing where its member put it gets its own."""
        for path, entry in self.deferred.items():
            if self._cleared_since(path, entry.seq):
                continue  # a later member replaced it (or a directory above it)
            fd = self.root.open(path, DIR_FLAGS)
            try:
                _set_metadata(fd, entry.info)
            finally:
                os.close(fd)

    def _make(self, info: tarfile.TarInfo, parent: int, name: str, path: str) -> None:
        """A non-directory member, replacing what was there (tar semantics: a later entry wins)."""
        for attempt in (1, 2):
            try:
                if info.isreg():
                    self._write_file(info, parent, name)
                elif info.issym():
                    os.symlink(info.linkname, name, dir_fd=parent)
                    os.chown(name, info.uid, info.gid, dir_fd=parent, follow_symlinks=False)
                    os.utime(name, (info.mtime, info.mtime), dir_fd=parent, follow_symlinks=False)
                elif info.islnk():
                    self._link(info, parent, name, path)
                else:
                    device = os.makedev(info.devmajor, info.devminor)
                    os.mknod(name, _NODE_KINDS[info.type] | 0o600, device, dir_fd=parent)
                    os.chown(name, info.uid, info.gid, dir_fd=parent, follow_symlinks=False)
                    os.chmod(name, info.mode & 0o7777, dir_fd=parent, follow_symlinks=False)
                    os.utime(name, (info.mtime, info.mtime), dir_fd=parent, follow_symlinks=False)
                return
            except FileExistsError:
                if attempt == 2:
                    raise
                self._clear(parent, name, path)

    def _write_file(self, info: tarfile.TarInfo, parent: int, name: str) -> None:
        out = os.open(name, _FILE_FLAGS, 0o600, dir_fd=parent)
        try:
            offset, left = info.offset_data, info.size
            while left:
                n = os.copy_file_range(self.tar_fd, out, left, offset)
                if n == 0:
                    raise InvalidImage(f"tar member {info.name} is cut short")
                offset, left = offset + n, left - n
            os.fchown(out, info.uid, info.gid)
            os.fchmod(out, info.mode & 0o7777)  # after chown, which clears set-id bits
            os.utime(out, (info.mtime, info.mtime))
        finally:
            os.close(out)

    def _link(self, info: tarfile.TarInfo, parent: int, name: str, path: str) -> None:
        target_parent, target_name = split(member_path(info.linkname))
        source = self._dir(target_parent, create=False)
        st = os.stat(target_name, dir_fd=source, follow_symlinks=False)
        if is_whiteout(st) or stat.S_ISLNK(st.st_mode) or stat.S_ISDIR(st.st_mode):
            raise InvalidImage(f"hard link {info.name} -> {info.linkname} does not name a file")
        if (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)) and not path.startswith("dev/"):
            raise InvalidImage(f"hard link {info.name} -> {info.linkname} is a device node outside dev/")
        os.link(target_name, name, src_dir_fd=source, dst_dir_fd=parent, follow_symlinks=False)
        # shares the inode (and its metadata) with the link target

    def _mkdir(self, parent: int, name: str, path: str) -> None:
        try:
            os.mkdir(name, 0o700, dir_fd=parent)  # the member's mode comes in finish()
        except FileExistsError:
            if stat.S_ISDIR(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode):
                return  # a directory stays a directory: the new member's metadata is applied to it
            self._clear(parent, name, path)
            os.mkdir(name, 0o700, dir_fd=parent)

    def _clear(self, parent: int, name: str, path: str) -> None:
        """Remove whatever is at ``name`` in ``parent`` (nothing there is fine)."""
        try:
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            for cached in [p for p in self.dirs if p == path or p.startswith(path + "/")]:
                os.close(self.dirs.pop(cached))
            self.cleared[path] = self.seq
            shutil.rmtree(name, dir_fd=parent)
        else:
            os.unlink(name, dir_fd=parent)

    def _dir(self, path: str, create: bool = True) -> int:
        """A cached fd of the directory ``path`` of the layer (made with its parents if ``create``)."""
        if not path:
            return self.root.fd
        fd = self.dirs.get(path)
        if fd is None:
            fd = self.root.make_dirs(path) if create else self.root.open(path, DIR_FLAGS)
            if len(self.dirs) >= _DIR_CACHE:
                os.close(self.dirs.pop(next(iter(self.dirs))))
            self.dirs[path] = fd
        return fd

    def _cleared_since(self, path: str, seq: int) -> bool:
        prefix = path
        while True:
            if self.cleared.get(prefix, -1) > seq:
                return True
            if "/" not in prefix:
                return False
            prefix = prefix.rsplit("/", 1)[0]


def _join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


def _set_metadata(fd: int, info: tarfile.TarInfo) -> None:
    os.fchown(fd, info.uid, info.gid)
    os.fchmod(fd, info.mode & 0o7777)  # chown clears set-id bits: chmod after it
    os.utime(fd, (info.mtime, info.mtime))
