"""Paths inside a tree the agent does not trust: a layer, an image, a build context, a volume.

One mechanism for all of them. The tree is opened once as a directory fd (a ``Root``) and
every path below it is opened with openat2(2) relative to that fd, so the kernel resolves the
whole path in one call that no rename or symlink swap can race:

* ``Root(path)`` resolves with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS:
  no symlink is followed anywhere on a path (ELOOP instead). For trees the agent writes: a
  layer being unpacked, a volume being seeded, a build's staging directory, a directory tarred.
* ``Root(path, follow=True)`` resolves with RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS: symlinks
  are followed as if the tree were ``/`` (an absolute target or ``..`` stops at the root —
  securejoin semantics). For reading a build context or an OCI image layout.

Whatever is done at the end of a path is done on an fd, or by an ``*at`` call on the parent's
fd that does not follow a last symlink (O_NOFOLLOW, AT_SYMLINK_NOFOLLOW, O_EXCL): metadata
through fchown/fchmod/futimens of the fd. Linux has no lchmod; where there is no fd of the
file (a device node, a FIFO), ``os.chmod(name, dir_fd=..., follow_symlinks=False)`` is
fchmodat(AT_SYMLINK_NOFOLLOW), which glibc refuses on a symlink. Content is read through
``open_regular``: an O_PATH fd is checked to be a regular file and only then reopened for
reading (through its own /proc/self/fd entry, the same inode), so a FIFO or a device node
reached by a path is never opened.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
from pathlib import Path
from types import TracebackType

RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

CONFINED = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS
IN_ROOT = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC

_SYS_OPENAT2 = 437  # one number on every architecture (the syscall table was unified before it)
_RETRIES = 64  # openat2 answers EAGAIN when a rename elsewhere raced a RESOLVE_IN_ROOT walk


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def openat2(dir_fd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    """openat2(2): ``path`` opened relative to ``dir_fd`` under the ``resolve`` rules; OSError as os.open gives."""
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    raw = os.fsencode(path or ".")
    for _ in range(_RETRIES):
        fd = _libc.syscall(_SYS_OPENAT2, ctypes.c_int(dir_fd), ctypes.c_char_p(raw), ctypes.byref(how),
                           ctypes.c_size_t(ctypes.sizeof(how)))
        if fd >= 0:
            return int(fd)
        err = ctypes.get_errno()
        if err not in (errno.EAGAIN, errno.EINTR):
            raise OSError(err, os.strerror(err), path)
    raise OSError(errno.EAGAIN, "openat2 kept racing with renames", path)


def split(path: str) -> tuple[str, str]:
    """``a/b/c`` → (``a/b``, ``c``); the parent is ``""`` for a name at the root."""
    parent, _, name = path.strip("/").rpartition("/")
    return parent, name


def reopen(fd: int, flags: int) -> int:
    """A new open file description of the inode ``fd`` (an O_PATH fd) refers to — not of a path."""
    return os.open(f"/proc/self/fd/{fd}", flags | os.O_CLOEXEC)


def open_regular_at(dir_fd: int, name: str) -> int | None:
    """A read fd of the regular file ``name`` in ``dir_fd`` (not following a symlink there); None
    for anything else — a FIFO or device node found there is never opened, even if it was
    swapped in since the caller looked."""
    try:
        fd = os.open(name, PATH_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    try:
        return reopen(fd, os.O_RDONLY) if stat.S_ISREG(os.fstat(fd).st_mode) else None
    finally:
        os.close(fd)


def is_whiteout(st: os.stat_result) -> bool:
    """An overlayfs whiteout: a character device 0/0."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


class Root:
    """An open directory that paths are resolved in (see the module docstring); a context manager."""

    def __init__(self, path: Path | str, follow: bool = False) -> None:
        """``path`` itself is the caller's (a store directory, a context the user named): it is
        opened as given, a symlink to a directory included; only what is below it is not trusted."""
        self.path = Path(path)
        self.resolve = IN_ROOT if follow else CONFINED
        self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Root:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def open(self, path: str, flags: int, mode: int = 0) -> int:
        return openat2(self.fd, path.strip("/") or ".", flags, self.resolve, mode)

    def open_dir(self, path: str) -> int:
        """A read fd of the directory at ``path`` (a last symlink is followed only with ``follow``)."""
        return self.open(path, self._dir_flags)

    @property
    def _dir_flags(self) -> int:
        return DIR_FLAGS & ~os.O_NOFOLLOW if self.resolve == IN_ROOT else DIR_FLAGS

    def lstat(self, path: str) -> os.stat_result:
        """The entry at ``path`` itself (a last symlink is not followed)."""
        fd = self.open(path, PATH_FLAGS)
        try:
            return os.fstat(fd)
        finally:
            os.close(fd)

    def stat(self, path: str) -> os.stat_result:
        """What ``path`` names, a last symlink followed within the root (``follow``) or refused."""
        fd = self.open(path, PATH_FLAGS & ~os.O_NOFOLLOW)
        try:
            return os.fstat(fd)
        finally:
            os.close(fd)

    def open_regular(self, path: str) -> int | None:
        """A read fd of the regular file at ``path``; None when it is anything else (never opened)."""
        fd = self.open(path, PATH_FLAGS & ~os.O_NOFOLLOW)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            return reopen(fd, os.O_RDONLY)
        finally:
            os.close(fd)

    def make_dirs(self, path: str, mode: int = 0o755) -> int:
        """A read fd of the directory ``path``, made (with its missing parents) if needed.

        Each missing component is made with mkdirat in the fd of its parent, which the kernel
        resolved under this root's rules; a symlink the rules do not follow, a symlink to
        nothing or a non-directory on the way is an OSError (ELOOP, ENOENT, ENOTDIR).
        """
        try:
            return self.open(path, self._dir_flags)
        except FileNotFoundError:
            pass
        parts = [p for p in path.split("/") if p and p != "."]
        for depth in range(1, len(parts) + 1):
            prefix = "/".join(parts[:depth])
            try:
                fd = self.open(prefix, self._dir_flags)
            except FileNotFoundError:
                parent = self.open("/".join(parts[: depth - 1]), self._dir_flags)
                try:
                    os.mkdir(parts[depth - 1], mode, dir_fd=parent)
                except FileExistsError:
                    pass  # made meanwhile, or a dangling symlink: the open below tells
                finally:
                    os.close(parent)
                fd = self.open(prefix, self._dir_flags)
            if depth == len(parts):
                return fd
            os.close(fd)
        return self.open("", self._dir_flags)

    def make_file(self, path: str, mode: int = 0o644) -> int:
        """An O_PATH fd of the file at ``path`` (a last symlink followed only with ``follow``),
        made as an empty regular file in a directory made by ``make_dirs`` if missing."""
        flags = PATH_FLAGS & ~os.O_NOFOLLOW if self.resolve == IN_ROOT else PATH_FLAGS
        try:
            return self.open(path, flags)
        except FileNotFoundError:
            pass
        parent_path, name = split(path)
        parent = self.make_dirs(parent_path)
        try:
            os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode,
                             dir_fd=parent))
        except FileExistsError:
            pass  # made meanwhile, or a dangling symlink: the open below tells
        finally:
            os.close(parent)
        return self.open(path, flags)
