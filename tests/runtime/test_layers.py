"""Layer tarballs: deterministic writing, member checks, and refusal of archives that escape."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from agent.runtime import ImageStore, InvalidImage
from agent.runtime.layers import check_members, unpack, write_tar


def member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


def make_tar(path: Path, members: list[tarfile.TarInfo]) -> Path:
    with tarfile.open(path, "w") as tar:
        for info in members:
            tar.addfile(info, io.BytesIO(b"") if info.isreg() else None)
    return path


DIR, SYM, LNK = tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE

ESCAPING = {
    "parent": [member("../evil")],
    "parent inside": [member("a/../../evil")],
    "absolute": [member("/tmp/moorage-evil")],
    "symlink climbing out": [member("a", DIR), member("a/up", SYM, "../../outside")],
    "write through symlink": [member("link", SYM, "/"), member("link/evil")],
    "write through relative symlink": [member("link", SYM, "."), member("link/evil")],
    "hard link out": [member("hl", LNK, "../../etc/passwd")],
    "hard link absolute": [member("hl", LNK, "/etc/passwd")],
    "hard link through symlink": [member("link", SYM, "/etc"), member("hl", LNK, "link/passwd")],
}


@pytest.mark.parametrize("members", ESCAPING.values(), ids=ESCAPING.keys())
def test_escaping_members_are_refused(members: list[tarfile.TarInfo]) -> None:
    with pytest.raises(InvalidImage):
        check_members(members)


def test_safe_members_pass_with_normalised_paths() -> None:
    members = [
        member("./", DIR),
        member("./bin", DIR),
        member("bin/busybox"),
        member("bin/sh", SYM, "busybox"),
        member("bin/abs", SYM, "/bin/busybox"),  # absolute targets resolve inside the container
        member("bin/up", SYM, "../etc"),
        member("bin/hard", LNK, "./bin/busybox"),
        member("link", SYM, "/"),
        member("link", DIR),  # replaces the symlink: writing below it is fine again
        member("link/file"),
    ]
    assert [path for path, _ in check_members(members)] == [
        "bin", "bin/busybox", "bin/sh", "bin/abs", "bin/up", "bin/hard", "link", "link", "link/file",
    ]


@pytest.mark.parametrize("members", ESCAPING.values(), ids=ESCAPING.keys())
def test_import_of_an_escaping_tarball_leaves_nothing_behind(tmp_path: Path, members: list[tarfile.TarInfo]) -> None:
    bad = make_tar(tmp_path / "bad.tar", members)
    store_root = tmp_path / "a" / "b" / "moorage-store"
    store = ImageStore(store_root)
    before = sorted(p for p in tmp_path.rglob("*") if not p.is_relative_to(store_root))
    with pytest.raises(InvalidImage):
        store.import_rootfs(bad, "evil:1")
    assert sorted(p for p in tmp_path.rglob("*") if not p.is_relative_to(store_root)) == before
    assert list((store_root / "layers").iterdir()) == [] and list((store_root / "tmp").iterdir()) == []
    assert list((store_root / "blobs" / "sha256").iterdir()) == []
    assert store.list() == []


def test_write_tar_is_deterministic_and_round_trips(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "b" / "deep").mkdir(parents=True)
    (src / "a.txt").write_text("a")
    (src / "b" / "deep" / "c.txt").write_text("c")
    (src / "b" / "hard").hardlink_to(src / "a.txt")
    (src / "sh").symlink_to("/bin/busybox")
    os.chmod(src / "a.txt", 0o4755)
    os.utime(src / "b" / "deep", (1_000_000, 1_000_000))
    tars = []
    for name in ("one.tar", "two.tar"):
        with open(tmp_path / name, "wb") as out:
            write_tar(src, out)
        tars.append((tmp_path / name).read_bytes())
    assert tars[0] == tars[1]
    with tarfile.open(tmp_path / "one.tar") as tar:
        assert tar.getnames() == ["a.txt", "b", "b/deep", "b/deep/c.txt", "b/hard", "sh"]
    unpack(tmp_path / "one.tar", tmp_path / "out")
    out = tmp_path / "out"
    assert (out / "b" / "deep" / "c.txt").read_text() == "c"
    assert os.readlink(out / "sh") == "/bin/busybox"
    assert (out / "b" / "hard").stat().st_ino == (out / "a.txt").stat().st_ino
    assert (out / "a.txt").stat().st_mode & 0o7777 == 0o4755
    assert (out / "b" / "deep").stat().st_mtime == 1_000_000


def test_oci_whiteouts_become_overlay_whiteouts(tmp_path: Path) -> None:
    tar = make_tar(tmp_path / "w.tar", [member("d", DIR), member("d/.wh..wh..opq"), member("d/.wh.gone")])
    unpack(tar, tmp_path / "out")
    gone = (tmp_path / "out" / "d" / "gone").lstat()
    assert (os.major(gone.st_rdev), os.minor(gone.st_rdev)) == (0, 0) and gone.st_mode & 0o170000 == 0o020000
    assert os.getxattr(tmp_path / "out" / "d", "trusted.overlay.opaque") == b"y"
