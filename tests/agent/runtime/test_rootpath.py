"""agent.runtime.rootpath: paths resolved by the kernel inside a root, and made there."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from agent.runtime.rootpath import Root


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A root with symlinks to its inside, to the host (absolute and by ..), and a loop."""
    root = tmp_path / "root"
    (root / "real").mkdir(parents=True)
    (root / "real" / "f").write_text("inside\n")
    (root / "abs").symlink_to("/real")
    (root / "up").symlink_to("../../../../etc")
    (root / "loop").symlink_to("loop")
    (root / "dangling").symlink_to("/nowhere/at/all")
    (tmp_path / "outside").mkdir()
    (root / "host").symlink_to(tmp_path / "outside")
    return root


def test_a_following_root_resolves_symlinks_inside_it(tree: Path) -> None:
    with Root(tree, follow=True) as root:
        assert root.stat("/abs/f").st_ino == (tree / "real" / "f").stat().st_ino
        assert root.stat("../../real/f").st_ino == (tree / "real" / "f").stat().st_ino  # .. stops at the root
        with pytest.raises(FileNotFoundError):
            root.stat("up/passwd")  # <root>/etc/passwd, not the host's
        with pytest.raises(OSError) as err:
            root.stat("loop")
        assert err.value.errno == errno.ELOOP


def test_a_confined_root_follows_no_symlink(tree: Path) -> None:
    with Root(tree) as root:
        for path in ("abs/f", "abs", "host"):
            with pytest.raises(OSError) as err:
                root.stat(path)
            assert err.value.errno == errno.ELOOP
        assert root.lstat("abs").st_mode & 0o170000 == 0o120000  # the link itself


def test_open_regular_opens_no_fifo_and_no_device(tree: Path) -> None:
    os.mkfifo(tree / "fifo")
    os.mknod(tree / "null", 0o20666, os.makedev(1, 3))
    with Root(tree, follow=True) as root:
        assert [root.open_regular(p) for p in ("fifo", "null", "real")] == [None, None, None]
        fd = root.open_regular("abs/f")
        assert fd is not None
        with os.fdopen(fd) as f:
            assert f.read() == "inside\n"


def test_make_dirs_and_make_file_stay_inside(tmp_path: Path, tree: Path) -> None:
    (tree / "etc").mkdir()
    with Root(tree, follow=True) as root:
        os.close(root.make_dirs("/up/made/deeper"))  # up -> ../../../../etc: <root>/etc/made/deeper
        os.close(root.make_file("/abs/new/file"))
        for dangling in ("/host/made", "/dangling"):  # a symlink to nothing (inside the root) is refused
            with pytest.raises(FileNotFoundError):
                root.make_file(dangling)
    assert list((tmp_path / "outside").iterdir()) == []
    assert (tree / "etc" / "made" / "deeper").is_dir()
    assert (tree / "real" / "new" / "file").is_file()
    with Root(tree) as confined:
        with pytest.raises(OSError) as err:
            confined.make_dirs("abs/x")
        assert err.value.errno == errno.ELOOP
    assert not (tree / "real" / "x").exists()
