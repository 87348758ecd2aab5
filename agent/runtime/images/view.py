"""An image's file system as its containers see it, read from the unpacked layers without a mount.

overlayfs lookup, done by hand over directory fds: a name is looked up in the layers of its
directory from the top; a whiteout (char device 0/0) hides it and everything below, a
non-directory ends the lookup, directories merge down to the first opaque one. Paths are
resolved as a container would resolve them (securejoin semantics): symlinks are read from
the layer that shows them and followed, an absolute target or ``..`` starting again from or
stopping at the image's root — never the host's. Every step is an ``*at`` call on an fd
with O_NOFOLLOW / AT_SYMLINK_NOFOLLOW (agent.runtime.rootpath), so no path is ever handed to
the kernel to resolve outside the layers.

Used for what the agent reads of an image: /etc/passwd and /etc/group for ``user:``, and the
content a new volume is seeded with.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from agent.runtime.rootpath import DIR_FLAGS, is_whiteout, open_regular_at

MAX_SYMLINKS = 40  # as the kernel's MAXSYMLINKS
OPAQUE_XATTR = "trusted.overlay.opaque"


@dataclass
class Dir:
    """A merged directory: a read fd of it in each layer that contributes, top first."""

    fds: list[int]

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []


@dataclass
class Node:
    """A merged non-directory: a fd of the layer directory that shows it, its name there, its lstat."""

    parent: int
    name: str
    st: os.stat_result

    def close(self) -> None:
        if self.parent >= 0:
            os.close(self.parent)
            self.parent = -1


class ImageView:
    """The merged view of ``layer_dirs`` (lowest first, as Image.layer_dirs); a context manager."""

    def __init__(self, layer_dirs: Sequence[Path]) -> None:
        self.root = Dir([])
        for layer in reversed(layer_dirs):
            self.root.fds.append(os.open(layer, DIR_FLAGS))

    def close(self) -> None:
        self.root.close()

    def __enter__(self) -> ImageView:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # --- lookup ---------------------------------------------------------------------------

    def child(self, parent: Dir, name: str) -> Dir | Node | None:
        """``name`` in the merged directory ``parent``: a Dir or a Node (the caller closes either), or None."""
        found: list[int] = []
        for fd in parent.fds:
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if is_whiteout(st) or (found and not stat.S_ISDIR(st.st_mode)):
                break  # hidden from here down
            if not stat.S_ISDIR(st.st_mode):
                return Node(os.dup(fd), name, st)
            sub = os.open(name, DIR_FLAGS, dir_fd=fd)
            found.append(sub)
            if _opaque(sub):
                break
        return Dir(found) if found else None

    def resolve(self, path: str) -> Dir | Node | None:
        """What ``path`` names in the image, every symlink followed inside it; None if nothing.

        The result is the caller's to close (the image root is returned as a fresh Dir too).
        """
        parts = [p for p in path.split("/") if p and p != "."]
        stack: list[Dir] = [Dir([os.dup(fd) for fd in self.root.fds])]
        hops = 0
        try:
            while parts:
                part = parts.pop(0)
                if part == "..":
                    if len(stack) > 1:
                        stack.pop().close()
                    continue
                found = self.child(stack[-1], part)
                if isinstance(found, Node) and stat.S_ISLNK(found.st.st_mode):
                    hops += 1
                    if hops > MAX_SYMLINKS:
                        raise OSError(errno.ELOOP, "too many levels of symlinks", path)
                    target = os.readlink(found.name, dir_fd=found.parent)
                    found.close()
                    if target.startswith("/"):
                        while len(stack) > 1:
                            stack.pop().close()
                    parts = [p for p in target.split("/") if p and p != "."] + parts
                    continue
                if found is None or (isinstance(found, Node) and parts):
                    if found is not None:
                        found.close()
                    return None  # missing, or a file where a directory was needed
                if isinstance(found, Node):
                    return found
                stack.append(found)
            result = stack.pop()
            return result
        finally:
            for d in stack:
                d.close()

    def names(self, directory: Dir) -> list[str]:
        """The names a merged directory may show (whiteouts among them; ``child`` tells)."""
        seen: dict[str, None] = {}
        for fd in directory.fds:
            seen.update(dict.fromkeys(os.listdir(fd)))
        return sorted(seen)

    # --- content --------------------------------------------------------------------------

    def open_regular(self, node: Node) -> int | None:
        """A read fd of the regular file ``node``; None for anything else (a FIFO or device is never opened)."""
        return open_regular_at(node.parent, node.name)

    def read_file(self, path: str, bound: int) -> bytes | None:
        """The regular file at ``path`` (symlinks followed inside the image); None if there is none.

        ValueError when it is larger than ``bound`` bytes.
        """
        found = self.resolve(path)
        if found is None:
            return None
        try:
            fd = self.open_regular(found) if isinstance(found, Node) else None
        finally:
            found.close()
        if fd is None:
            return None
        with os.fdopen(fd, "rb") as f:
            data = f.read(bound + 1)
        if len(data) > bound:
            raise ValueError(f"the image's {path} is larger than {bound} bytes")
        return data

    def walk(self, directory: Dir) -> Iterator[tuple[str, Dir | Node]]:
        """The entries of a merged directory, name order, whited-out names left out; each is
        closed once the consumer asks for the next entry."""
        for name in self.names(directory):
            found = self.child(directory, name)
            if found is None:
                continue
            try:
                yield name, found
            finally:
                found.close()


def _opaque(fd: int) -> bool:
    try:
        return os.getxattr(fd, OPAQUE_XATTR) == b"y"
    except OSError:
        return False
