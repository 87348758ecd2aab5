"""Layers written to get out: late symlinks over directories, hard links to devices, bombs.

Each test builds its tar itself, unpacks it through the image store, and then checks the
host: the sentinel files of HostFiles keep their mode, owner, mtime and content, and nothing
appeared outside the store.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from agent.runtime import ImageStore, InvalidImage
from agent.runtime.errors import LimitExceeded
from agent.runtime.images import archive
from agent.runtime.images.spec import Limits
from tests.agent.runtime.support import HostFiles

DIR, SYM, LNK, CHR, BLK = tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE


def member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "", mode: int = 0o644, data: bytes = b"",
           dev: tuple[int, int] = (0, 0), mtime: int = 1) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.mtime = kind, linkname, mode, mtime
    info.devmajor, info.devminor = dev
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data


def make_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


@pytest.fixture
def host(tmp_path: Path) -> HostFiles:
    return HostFiles(tmp_path)


def store_in(tmp_path: Path, limits: Limits | None = None) -> ImageStore:
    return ImageStore(tmp_path / "moorage-store", limits)


def assert_store_empty(store: ImageStore) -> None:
    """A refused input left no layer, no blob, no work file and no tag."""
    assert list((store.root / "layers").iterdir()) == []
    assert list((store.root / "blobs" / "sha256").iterdir()) == []
    assert list(store.tmp.iterdir()) == []
    assert store.list() == []


def late_symlink_attacks(host: HostFiles) -> dict[str, list[tuple[tarfile.TarInfo, bytes]]]:
    return {
        "dir then symlink to a host file": [member("a", DIR, mode=0o777), member("a", SYM, str(host.secret))],
        "setuid dir then symlink to a host binary": [member("s", DIR, mode=0o4755), member("s", SYM, str(host.tool))],
        "child dir, then its parent a symlink": [member("p", DIR), member("p/inner.txt", DIR, mode=0o777),
                                                 member("p", SYM, str(host.dir))],
        "dir then symlink to a symlink out": [member("l1", SYM, str(host.secret)), member("a", DIR, mode=0o777),
                                              member("a", SYM, "l1")],
        "dir, whiteout, dir, symlink": [member("a", DIR, mode=0o777), member(".wh.a"), member("a", DIR, mode=0o777),
                                        member("./a", SYM, str(host.secret))],
        "dir then symlink through dot segments": [member("d", DIR), member("d/x", DIR, mode=0o4777),
                                                  member("./d/./x", SYM, "/" + "/".join([".."] * 8) + str(host.tool))],
    }



@pytest.mark.parametrize("attack", [
    "dir then symlink to a host file", "setuid dir then symlink to a host binary",
    "child dir, then its parent a symlink", "dir then symlink to a symlink out", "dir, whiteout, dir, symlink",
    "dir then symlink through dot segments",
])
def test_a_late_symlink_over_a_directory_changes_nothing_on_the_host(tmp_path: Path, host: HostFiles,
                                                                   attack: str) -> None:
    layer = make_tar(tmp_path / "attack.tar", late_symlink_attacks(host)[attack])
    store = store_in(tmp_path)
    before = host.snapshot(allowed=(store.root,))
    image = store.import_rootfs(layer, "attack:1")  # a valid layer: the later entry wins
    assert host.snapshot(allowed=(store.root,)) == before
    assert os.stat(host.tool).st_mode & 0o7777 == 0o755 and os.stat(host.secret).st_mode & 0o7777 == 0o600
    unpacked = image.layer_dirs[0]
    links = [p for p in unpacked.rglob("*") if p.is_symlink()]
    assert links, "the symlink member is in the layer, as a symlink"


def test_the_last_directory_member_gives_the_metadata(tmp_path: Path) -> None:
    store = store_in(tmp_path)
    layer = make_tar(tmp_path / "l.tar", [member("a", DIR, mode=0o777, mtime=5), member("a", SYM, "/x"),
                                          member("a", DIR, mode=0o750, mtime=7), member("a/f", data=b"f")])
    unpacked = store.import_rootfs(layer, "meta:1").layer_dirs[0]
    st = (unpacked / "a").lstat()
    assert oct(st.st_mode & 0o7777) == oct(0o750) and st.st_mtime == 7


HARD_LINKED_DEVICES = {
    "block device under dev, linked from data": [member("dev", DIR), member("dev/sda", BLK, dev=(8, 0)),
                                                 member("data", DIR), member("data/disk", LNK, "dev/sda")],
    "dev/zero linked from data": [member("dev/zero", CHR, dev=(1, 5)), member("data/zero", LNK, "dev/zero")],
    "a link to a link to a device": [member("dev/zero", CHR, dev=(1, 5)), member("dev/z2", LNK, "dev/zero"),
                                     member("z", LNK, "dev/z2")],
    "a link to a whiteout": [member("d", DIR), member("d/.wh.x"), member("y", LNK, "d/x")],
}


@pytest.mark.parametrize("members", HARD_LINKED_DEVICES.values(), ids=HARD_LINKED_DEVICES.keys())
def test_a_hard_link_is_judged_by_what_it_links_to(tmp_path: Path, host: HostFiles, members: list) -> None:
    store = store_in(tmp_path)
    layer = make_tar(tmp_path / "dev.tar", members)
    before = host.snapshot(allowed=(store.root,))
    with pytest.raises(InvalidImage, match="device node outside dev/|does not name a file"):
        store.import_rootfs(layer, "dev:1")
    assert_store_empty(store)
    assert host.snapshot(allowed=(store.root,)) == before


def test_hard_links_to_devices_inside_dev_are_kept(tmp_path: Path) -> None:
    store = store_in(tmp_path)
    layer = make_tar(tmp_path / "dev.tar", [member("dev/zero", CHR, dev=(1, 5)), member("dev/zero2", LNK, "dev/zero")])
    unpacked = store.import_rootfs(layer, "dev:1").layer_dirs[0]
    assert (unpacked / "dev" / "zero2").lstat().st_ino == (unpacked / "dev" / "zero").lstat().st_ino


# --- bombs ----------------------------------------------------------------------------------


BOMBS = {
    "entries": (Limits(layer_entries=10), [member(f"f{i}") for i in range(11)]),
    "bytes": (Limits(layer_bytes=1000), [member("a", data=b"x" * 600), member("b", data=b"x" * 600)]),
    "path depth": (Limits(path_depth=5), [member("a/b/c/d/e/f")]),
    "path length": (Limits(path_bytes=64), [member("d/" + "x" * 70)]),
    "link target length": (Limits(path_bytes=64), [member("l", SYM, "y" * 70)]),
}


@pytest.mark.parametrize("limit", BOMBS.keys())
def test_a_layer_over_a_limit_names_it_and_leaves_nothing(tmp_path: Path, limit: str) -> None:
    limits, members = BOMBS[limit]
    store = store_in(tmp_path, limits)
    layer = make_tar(tmp_path / "bomb.tar", members)
    with pytest.raises(LimitExceeded, match=r"layer sha256:[0-9a-f]{64}: .* over the limit") as err:
        store.import_rootfs(layer, "bomb:1")
    assert err.value.limit == {"entries": "layer_entries", "bytes": "layer_bytes", "path depth": "path_depth",
                               "path length": "path_bytes", "link target length": "path_bytes"}[limit]
    assert_store_empty(store)


def test_a_name_over_name_max_is_refused_with_its_reason(tmp_path: Path) -> None:
    store = store_in(tmp_path)
    with pytest.raises(InvalidImage, match="name over 255 bytes"):
        store.import_rootfs(make_tar(tmp_path / "long.tar", [member("a" * 256)]), "long:1")
    assert_store_empty(store)


@pytest.mark.parametrize("fmt", ["gnu", "posix"])
def test_sparse_members_are_refused(tmp_path: Path, fmt: str) -> None:
    """A 10 KB tar that claims a 64 MiB (or 2 GB) file: refused, not written out as zeros."""
    (tmp_path / "src").mkdir()
    subprocess.run(["truncate", "-s", "64M", str(tmp_path / "src" / "hole")], check=True)
    layer = tmp_path / "sparse.tar"
    extra = ["--sparse-version=1.0"] if fmt == "posix" else []
    subprocess.run(["tar", f"--format={fmt}", *extra, "-S", "-C", str(tmp_path / "src"), "-cf", str(layer), "hole"],
                   check=True)
    assert layer.stat().st_size < 64 * 1024
    store = store_in(tmp_path)
    with pytest.raises(InvalidImage, match="sparse"):
        store.import_rootfs(layer, "sparse:1")
    assert_store_empty(store)


def test_a_huge_extended_header_is_refused(tmp_path: Path) -> None:
    info = tarfile.TarInfo("f")
    info.pax_headers = {"comment": "x" * (2 << 20)}
    with tarfile.open(tmp_path / "pax.tar", "w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(b""))
    store = store_in(tmp_path)
    with pytest.raises(InvalidImage, match="extended header"):
        store.import_rootfs(tmp_path / "pax.tar", "pax:1")
    assert_store_empty(store)


def _zeros_tar_gz(path: Path, megabytes: int) -> Path:
    """A gzip'd tar of one file of zeros: ~1000:1."""
    with gzip.open(path, "wb", compresslevel=9) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        info = tarfile.TarInfo("zeros")
        info.size = megabytes << 20
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    return path


BOMB_LIMITS = Limits(ratio=20, ratio_floor=1 << 20)


def test_import_gunzips_within_the_ratio(tmp_path: Path) -> None:
    source = _zeros_tar_gz(tmp_path / "rootfs.tar.gz", 16)
    store = store_in(tmp_path, BOMB_LIMITS)
    with pytest.raises(LimitExceeded, match="over the limit ratio=") as err:
        store.import_rootfs(source, "gz:1")
    assert err.value.limit == "ratio" and str(source) in str(err.value)
    assert_store_empty(store)


def _layout(root: Path, layers: list[tuple[bytes, str, str]]) -> Path:
    """An OCI layout of one image whose layers are (blob, media type, diff_id)."""
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> tuple[str, int]:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return f"sha256:{digest}", len(data)

    descriptors = [{"mediaType": media, "digest": put(blob)[0], "size": len(blob)} for blob, media, _ in layers]
    config = json.dumps({"os": "linux", "rootfs": {"type": "layers", "diff_ids": [d for _, _, d in layers]}}).encode()
    config_digest, config_size = put(config)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": config_digest, "size": config_size},
                           "layers": descriptors}).encode()
    digest, size = put(manifest)
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": size,
        "annotations": {"org.opencontainers.image.ref.name": "bomb:1"}}]}))
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return root


def test_a_gzip_layer_over_the_ratio_is_refused_and_its_blobs_go(tmp_path: Path) -> None:
    good = make_tar(tmp_path / "good.tar", [member("ok", data=b"fine")]).read_bytes()
    bomb = _zeros_tar_gz(tmp_path / "bomb.tar.gz", 16)
    with gzip.open(bomb) as f:
        diff_id = "sha256:" + hashlib.sha256(f.read()).hexdigest()
    layout = _layout(tmp_path / "layout", [
        (good, "application/vnd.oci.image.layer.v1.tar", "sha256:" + hashlib.sha256(good).hexdigest()),
        (bomb.read_bytes(), "application/vnd.oci.image.layer.v1.tar+gzip", diff_id),
    ])
    store = store_in(tmp_path, BOMB_LIMITS)
    with pytest.raises(LimitExceeded, match="over the limit ratio=") as err:
        archive.load(store, layout)
    assert "layer sha256:" in str(err.value)
    assert_store_empty(store)  # neither the good layer (unpacked first) nor any blob stays


def test_a_failed_load_leaves_no_blob(tmp_path: Path) -> None:
    bad = make_tar(tmp_path / "bad.tar", [member("link", SYM, "/"), member("link/evil")]).read_bytes()
    layout = _layout(tmp_path / "layout", [(bad, "application/vnd.oci.image.layer.v1.tar",
                                            "sha256:" + hashlib.sha256(bad).hexdigest())])
    store = store_in(tmp_path)
    with pytest.raises(InvalidImage, match="through the symlink"):
        archive.load(store, layout)
    assert_store_empty(store)


def test_a_compressed_archive_decompresses_within_the_ratio(tmp_path: Path) -> None:
    """A docker archive, gzip'd, whose only member is 16 MiB of zeros: stopped while it is read."""
    source = _zeros_tar_gz(tmp_path / "image.tar.gz", 16)
    store = store_in(tmp_path, BOMB_LIMITS)
    with pytest.raises(LimitExceeded, match="over the limit ratio="):
        archive.load(store, source)
    assert_store_empty(store)


def test_a_killed_writer_s_staging_goes_with_the_next_store_but_a_live_one_stays(tmp_path: Path) -> None:
    store = store_in(tmp_path)
    stale = store.tmp / "txn-killed"
    (stale / "blobs").mkdir(parents=True)
    (stale / "blobs" / "blob-1").write_bytes(b"half a blob")
    with store.writing():
        (live,) = [p for p in store.tmp.iterdir() if p != stale]
        store_in(tmp_path)  # another process starting while this one writes
        assert live.exists() and stale.exists()
    store_in(tmp_path)
    assert list(store.tmp.iterdir()) == []


def test_a_pull_over_a_limit_leaves_nothing(tmp_path: Path) -> None:
    from agent.runtime.images.registry import RegistryClient, RegistrySettings
    from tests.agent.runtime.registry_server import running_registry

    source = ImageStore(tmp_path / "moorage-src")
    base = source.import_rootfs(make_tar(tmp_path / "base.tar", [member("ok", data=b"fine")]), "base:1")
    many = source.add_layer_tar(make_tar(source.tmp / "many.tar", [member(f"f{i}") for i in range(50)]))
    source.create([many], base.config, "many:1", base=base)
    with running_registry(tmp_path / "moorage-registry") as registry:
        client = RegistryClient(RegistrySettings())
        client.push(source, "many:1", f"{registry.address}/many:1")
        store = store_in(tmp_path, Limits(layer_entries=20))
        with pytest.raises(LimitExceeded, match="over the limit layer_entries=20") as err:
            client.pull(store, f"{registry.address}/many:1")
    assert many.diff_id in str(err.value)
    assert_store_empty(store)
