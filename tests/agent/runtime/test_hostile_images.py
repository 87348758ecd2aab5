"""Images whose symlinks point at the host: volume seeding and user lookup stay inside the image.

Every test checks the host afterwards (HostFiles: sentinels unchanged, nothing new outside
the state directory) and, where a container runs, that it cannot see the host's files.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from agent.runtime import ContainerSpec, ImageConfig, ImageStore, InvalidSpec, MountSpec, Runtime, StartFailed
from agent.runtime.containers.volumes import Volumes
from tests.agent.runtime.support import HostFiles, lines

DIR, SYM, LNK, CHR, FIFO = tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.FIFOTYPE


def layer(images: ImageStore, name: str, entries: list[tuple[str, bytes, str | bytes | None]]) -> object:
    """A layer of (name, type, data or link target) entries, added to the store."""
    path = images.tmp / f"{name}.tar"
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for member, kind, value in entries:
            info = tarfile.TarInfo(member)
            info.type, info.mode = kind, 0o755 if kind == DIR else 0o644
            if kind in (SYM, LNK):
                info.linkname = str(value)
            if kind == CHR:
                info.devmajor, info.devminor = 1, 3
            data = value if kind == tarfile.REGTYPE and isinstance(value, bytes) else b""
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    return images.add_layer_tar(path)


def image(images: ImageStore, reference: str, layers: list[object], volumes: tuple[str, ...] = ()) -> str:
    base = images.get("busybox")
    images.create(layers, dataclasses.replace(base.config, volumes=volumes), reference, base=base)  # type: ignore[arg-type]
    return reference


@pytest.fixture
def images(tmp_path: Path, busybox_rootfs: Path) -> ImageStore:
    store = ImageStore(tmp_path / "moorage-state" / "images")
    store.import_rootfs(busybox_rootfs, "busybox", ImageConfig(cmd=("sh",)))
    return store


@pytest.fixture
def runtime(tmp_path: Path, images: ImageStore) -> object:
    rt = Runtime(tmp_path / "moorage-state", images)
    try:
        yield rt
    finally:
        rt.release()


@pytest.fixture
def host(tmp_path: Path) -> HostFiles:
    return HostFiles(tmp_path)


def run(runtime: Runtime, cid: str, spec: ContainerSpec) -> list[str]:
    runtime.run(cid, spec)
    runtime.wait(cid, 30)
    return lines(runtime, cid)


def test_an_image_volume_through_a_symlink_to_root_copies_no_host_file(
    tmp_path: Path, images: ImageStore, runtime: Runtime, host: HostFiles
) -> None:
    evil = image(images, "evil:1", [layer(images, "h", [("h", SYM, "/")])], volumes=(f"/h{host.root}",))
    before = host.snapshot(allowed=(tmp_path / "moorage-state",))
    script = f"cat /h{host.secret}; ls /h{host.root}"
    out = run(runtime, "c1", ContainerSpec(name="c1", image=evil, args=("sh", "-c", script)))
    assert "host secret" not in out
    (volume,) = runtime.state("c1").volumes
    assert list(runtime.volumes.get(volume).path.iterdir()) == []
    assert host.snapshot(allowed=(tmp_path / "moorage-state",)) == before


def test_a_manifest_volume_through_a_symlink_gets_the_image_etc_not_the_host_one(
    tmp_path: Path, images: ImageStore, runtime: Runtime, host: HostFiles
) -> None:
    evil = image(images, "evil:1", [layer(images, "h", [("h", SYM, "/")])])
    before = host.snapshot(allowed=(tmp_path / "moorage-state",))
    spec = ContainerSpec(name="c1", image=evil, args=("sh", "-c", "ls /h/etc"),
                         mounts=(MountSpec("/h/etc", "volume", "moorage-test-etc"),))
    out = run(runtime, "c1", spec)
    seeded = sorted(p.name for p in runtime.volumes.get("moorage-test-etc").path.iterdir())
    assert seeded == ["group", "moorage-marker", "passwd"] and sorted(out) == seeded  # busybox's /etc, not the host's
    assert host.snapshot(allowed=(tmp_path / "moorage-state",)) == before


def test_a_volume_is_seeded_as_overlayfs_shows_the_image(tmp_path: Path, images: ImageStore) -> None:
    lower = layer(images, "lower", [
        ("srv", DIR, None), ("srv/data", DIR, None), ("srv/data/keep", tarfile.REGTYPE, b"k"),
        ("srv/data/drop", tarfile.REGTYPE, b"d"), ("srv/data/opaque", DIR, None),
        ("srv/data/opaque/old", tarfile.REGTYPE, b"o"),
        ("srv/data/was-dir", DIR, None), ("srv/data/was-dir/inside", tarfile.REGTYPE, b"i"),
        ("srv/data/hard", LNK, "srv/data/keep"), ("srv/data/rel", SYM, "../elsewhere"),
    ])
    upper = layer(images, "upper", [
        ("h", SYM, "srv"),  # the volume target is reached through a symlink of another layer
        ("srv/data/.wh.drop", tarfile.REGTYPE, b""), ("srv/data/opaque/.wh..wh..opq", tarfile.REGTYPE, b""),
        ("srv/data/opaque/new", tarfile.REGTYPE, b"n"), ("srv/data/was-dir", tarfile.REGTYPE, b"now a file"),
    ])
    built = images.get(image(images, "seeded:1", [lower, upper]))
    volume = Volumes(tmp_path / "moorage-state" / "volumes").ensure(None, built.layer_dirs, "/h/data")
    found = {str(p.relative_to(volume.path)) for p in volume.path.rglob("*")}
    assert found == {"keep", "hard", "rel", "opaque", "opaque/new", "was-dir"}
    assert (volume.path / "hard").stat().st_ino == (volume.path / "keep").stat().st_ino  # copied once
    assert os.readlink(volume.path / "rel") == "../elsewhere"
    assert (volume.path / "was-dir").read_bytes() == b"now a file"


def test_devices_and_fifos_are_not_volume_content(tmp_path: Path, images: ImageStore) -> None:
    """A device node is never opened (reading /dev/zero this way once copied without end)."""
    devices = layer(images, "dev", [("dev/null", CHR, None), ("dev/fifo", FIFO, None),
                                    ("dev/plain", tarfile.REGTYPE, b"p")])
    built = images.get(image(images, "dev:1", [devices]))
    volume = Volumes(tmp_path / "moorage-state" / "volumes").ensure(None, built.layer_dirs, "/dev")
    assert sorted(p.name for p in volume.path.iterdir()) == ["plain"]


def test_user_lookup_reads_no_host_passwd(tmp_path: Path, images: ImageStore, runtime: Runtime,
                                          host: HostFiles) -> None:
    (host.root / "passwd").write_text("hostuser:x:4242:4242::/home:/bin/sh\n")
    evil = image(images, "evil:1", [layer(images, "etc", [("etc", SYM, str(host.root))])])
    with pytest.raises(InvalidSpec, match="'hostuser' not found in the image's /etc/passwd"):
        runtime.create("c1", ContainerSpec(name="c1", image=evil, user="hostuser", args=("true",)))


def test_user_lookup_follows_symlinks_inside_the_image(images: ImageStore, runtime: Runtime) -> None:
    linked = image(images, "linked:1", [layer(images, "passwd", [
        ("usr/share/passwd", tarfile.REGTYPE, b"app:x:1234:1234::/srv:/bin/sh\n"),
        ("etc/passwd", SYM, "../usr/share/passwd"),
    ])])
    runtime.create("c1", ContainerSpec(name="c1", image=linked, user="app", args=("true",)))
    config = json.loads((runtime.bundle_dir("c1") / "config.json").read_text())
    assert config["process"]["user"]["uid"] == 1234 and "HOME=/srv" in config["process"]["env"]


FLIPPER = """
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
a, b = sys.argv[1].encode(), sys.argv[2].encode()
print("ready", flush=True)
while True:
    libc.renameat2(-100, a, -100, b, 2)  # RENAME_EXCHANGE
"""


def test_a_shared_volume_changing_under_a_start_cannot_move_its_mounts_to_the_host(
    tmp_path: Path, images: ImageStore, runtime: Runtime, host: HostFiles
) -> None:
    """Another container holding the volume swaps /data/sub between a directory and a symlink
    to a host directory while this one starts and mounts a file at /data/sub/f (here the swap
    is done from outside, by a process as fast as a container's would be)."""
    volume = runtime.volumes.ensure("moorage-flip")
    (volume.path / "sub").mkdir()
    (volume.path / "zsub").symlink_to(host.dir)
    source = tmp_path / "moorage-bind-source"
    source.write_text("bound\n")
    spec = ContainerSpec(name="c", image="busybox", args=("true",),
                         mounts=(MountSpec("/data", "volume", "moorage-flip"),
                                 MountSpec("/data/sub/f", "bind", str(source))))
    before = host.snapshot(allowed=(tmp_path / "moorage-state", source))
    flipper = subprocess.Popen([sys.executable, "-c", FLIPPER, str(volume.path / "sub"), str(volume.path / "zsub")],
                               stdout=subprocess.PIPE)
    try:
        assert flipper.stdout is not None and flipper.stdout.readline() == b"ready\n"
        started = 0
        for i in range(40):
            try:
                runtime.run(f"c{i}", spec)
                started += runtime.wait(f"c{i}", 30).exit_code == 0
            except StartFailed:
                pass  # a mount point that vanished mid-walk: refused, not redirected
            runtime.remove(f"c{i}", force=True)
    finally:
        flipper.kill()
        flipper.wait()
        flipper.stdout.close()  # type: ignore[union-attr]
    assert host.snapshot(allowed=(tmp_path / "moorage-state", source)) == before
    assert not (host.dir / "f").exists()
    assert started > 0  # the swaps did not simply make every start fail


def test_a_volume_target_in_a_symlink_loop_is_a_clear_error(images: ImageStore, runtime: Runtime) -> None:
    looped = image(images, "loop:1", [layer(images, "loop", [("a", SYM, "b"), ("b", SYM, "a")])], volumes=("/a/data",))
    with pytest.raises(InvalidSpec, match="volume /a/data: too many levels of symlinks in the image"):
        runtime.create("c1", ContainerSpec(name="c1", image=looped, args=("true",)))
    assert runtime.list() == []
