"""Layer tarballs: deterministic writing, member checks, and refusal of archives that escape."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from agent.runtime import ImageStore, InvalidImage
from agent.runtime.images import archive
from agent.runtime.images.layers import check_members, unpack, write_tar


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
    "hard link to a symlink": [member("link", SYM, "/etc/passwd"), member("hl", LNK, "link")],
    "dir replaced by a symlink, then written into": [member("a", DIR), member("a/f"), member("a", SYM, "/etc"),
                                                     member("a/g")],
    "symlink climbing through dot-dot inside": [member("a/b", DIR), member("a/b/up", SYM, "../x/../../../etc")],
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


CHR, BLK = tarfile.CHRTYPE, tarfile.BLKTYPE

HOSTILE_SPECIALS = {
    "whiteout of the parent": [member("a", DIR), member("a/.wh..")],
    "whiteout of nothing": [member(".wh.")],
    "whiteout through a symlink": [member("l", SYM, "/etc"), member("l/.wh.passwd")],
    "opaque marker through a symlink": [member("l", SYM, "/etc"), member("l/.wh..wh..opq")],
    "char device outside dev": [member("data/disk", CHR)],
    "block device outside dev": [member("sda", BLK)],
}


@pytest.mark.parametrize("members", HOSTILE_SPECIALS.values(), ids=HOSTILE_SPECIALS.keys())
def test_hostile_whiteouts_and_devices_are_refused(members: list[tarfile.TarInfo]) -> None:
    with pytest.raises(InvalidImage):
        check_members(members)


def test_device_nodes_under_dev_are_created(tmp_path: Path) -> None:
    null = member("dev/null", CHR)
    null.devmajor, null.devminor, null.mode = 1, 3, 0o666
    tar = make_tar(tmp_path / "d.tar", [member("dev", DIR), null, member("run/fifo", tarfile.FIFOTYPE)])
    unpack(tar, tmp_path / "out")
    st = (tmp_path / "out" / "dev" / "null").lstat()
    assert os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 3


def test_loading_an_escaping_layer_leaves_nothing_outside_the_store(tmp_path: Path) -> None:
    make_tar(tmp_path / "bad.tar", ESCAPING["write through symlink"])  # our store would refuse it: a layout by hand
    layout = tmp_path / "layout"
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return f"sha256:{digest}"

    layer = (tmp_path / "bad.tar").read_bytes()
    layer_digest = put(layer)
    config = json.dumps({"os": "linux", "rootfs": {"type": "layers", "diff_ids": [layer_digest]}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": len(layer)}],
    }).encode()
    index = {"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                                "digest": put(manifest), "size": len(manifest),
                                                "annotations": {"org.opencontainers.image.ref.name": "evil:1"}}]}
    (layout / "index.json").write_text(json.dumps(index))
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    store_root = tmp_path / "moorage-dst"
    store = ImageStore(store_root)
    assert not Path("/evil").exists()
    with pytest.raises(InvalidImage, match="through the symlink"):
        archive.load(store, layout)
    assert store.list() == [] and list((store_root / "layers").iterdir()) == []
    assert not Path("/evil").exists() and list(tmp_path.rglob("evil")) == []  # the member link/evil went nowhere


FLIPPER = """
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
pairs = [(a.encode(), b.encode()) for a, b in zip(sys.argv[1::2], sys.argv[2::2])]
print("ready", flush=True)
while True:
    for a, b in pairs:
        libc.renameat2(-100, a, -100, b, 2)  # RENAME_EXCHANGE: the two names swap atomically
"""


def test_write_tar_of_a_tree_changing_under_it_takes_nothing_of_the_host(tmp_path: Path) -> None:
    """A running container's rw layer being committed: its entries flip between a file or a
    directory of its own and a symlink to the host, as fast as another process can swap them."""
    host = tmp_path / "host"
    host.mkdir()
    (host / "secret.txt").write_text("HOST\n")  # as long as the container's own file
    upper = tmp_path / "upper"
    (upper / "d").mkdir(parents=True)
    (upper / "d" / "secret.txt").write_text("mine\n")
    (upper / "f").write_text("mine\n")
    (upper / "zd").symlink_to(host)
    (upper / "zf").symlink_to(host / "secret.txt")
    flipper = subprocess.Popen([sys.executable, "-c", FLIPPER, str(upper / "d"), str(upper / "zd"), str(upper / "f"),
                                str(upper / "zf")], stdout=subprocess.PIPE)
    try:
        assert flipper.stdout is not None and flipper.stdout.readline() == b"ready\n"
        for _ in range(300):
            out = io.BytesIO()
            write_tar(upper, out)
            assert b"HOST\n" not in out.getvalue()
    finally:
        flipper.kill()
        flipper.wait()
        flipper.stdout.close()  # type: ignore[union-attr]


def test_a_truncated_member_names_the_layer(tmp_path: Path) -> None:
    tar = tmp_path / "cut.tar"
    info = tarfile.TarInfo("big")
    info.size = 100_000
    with tarfile.open(tar, "w") as out:
        out.addfile(info, io.BytesIO(bytes(info.size)))
    tar.write_bytes(tar.read_bytes()[:4096])
    with pytest.raises(InvalidImage, match="^layer x: tar member big is cut short"):
        unpack(tar, tmp_path / "out", what="layer x")
