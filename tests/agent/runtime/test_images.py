"""The image store: OCI layout on disk, references, digests, tarball sources."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from agent.runtime import ImageConfig, ImageNotFound, ImageStore
from agent.runtime.images.store import parse_reference
from agent.runtime.images.layers import write_tar
from tests.agent.runtime.support import MARKER


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("busybox", "busybox:latest"),
        ("busybox:1.36", "busybox:1.36"),
        ("localhost:5000/team/app", "localhost:5000/team/app:latest"),
        ("localhost:5000/app:v2", "localhost:5000/app:v2"),
        ("app@sha256:" + "a" * 64, "app@sha256:" + "a" * 64),
    ],
)
def test_references_are_normalised(text: str, expected: str) -> None:
    assert str(parse_reference(text)) == expected


def test_import_writes_an_oci_layout(tmp_path: Path, busybox_rootfs: Path) -> None:
    store = ImageStore(tmp_path / "moorage-images")
    config = ImageConfig(entrypoint=("/bin/sh", "-c"), cmd=("echo hi",), env=("A=1",), working_dir="/tmp")
    image = store.import_rootfs(busybox_rootfs, "busybox:1", config)
    root = store.root
    assert json.loads((root / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((root / "index.json").read_text())
    (entry,) = index["manifests"]
    assert entry["digest"] == image.digest
    assert entry["annotations"]["org.opencontainers.image.ref.name"] == "busybox:1"
    manifest = json.loads((root / "blobs" / "sha256" / image.digest.removeprefix("sha256:")).read_bytes())
    oci_config = json.loads((root / "blobs" / "sha256" / manifest["config"]["digest"][7:]).read_bytes())
    assert oci_config["rootfs"]["diff_ids"] == [layer["digest"] for layer in manifest["layers"]]
    assert oci_config["config"] == {"Entrypoint": ["/bin/sh", "-c"], "Cmd": ["echo hi"], "Env": ["A=1"], "WorkingDir": "/tmp"}
    (layer_dir,) = image.layer_dirs
    assert (layer_dir / MARKER).read_text() == "from-image\n"
    assert image.size == manifest["layers"][0]["size"] > 0
    assert store.get("busybox:1") == image == store.get(f"busybox@{image.digest}")
    assert image.config == config


def test_same_rootfs_gives_same_digest_and_one_unpacked_layer(tmp_path: Path, busybox_rootfs: Path) -> None:
    store = ImageStore(tmp_path / "moorage-images")
    first = store.import_rootfs(busybox_rootfs, "one")
    tarball = tmp_path / "rootfs.tar.gz"
    with gzip.open(tarball, "wb") as out:
        write_tar(busybox_rootfs, out)
    second = store.import_rootfs(tarball, "two:v1")
    assert first.digest == second.digest and first.layer_dirs == second.layer_dirs
    assert len(list((store.root / "layers").iterdir())) == 1
    assert sorted(i.reference for i in store.list()) == ["one:latest", "two:v1"]


def test_retagging_moves_the_reference(tmp_path: Path, busybox_rootfs: Path) -> None:
    store = ImageStore(tmp_path / "moorage-images")
    old = store.import_rootfs(busybox_rootfs, "app", ImageConfig(cmd=("old",)))
    new = store.import_rootfs(busybox_rootfs, "app", ImageConfig(cmd=("new",)))
    assert old.digest != new.digest
    assert store.get("app").config.cmd == ("new",)
    assert [i.digest for i in store.list()] == [new.digest]


def test_unknown_references_are_not_found(tmp_path: Path, busybox_rootfs: Path) -> None:
    store = ImageStore(tmp_path / "moorage-images")
    image = store.import_rootfs(busybox_rootfs, "app")
    for reference in ("nope", "app:other", f"other@{image.digest}", "app@sha256:" + "0" * 64):
        with pytest.raises(ImageNotFound):
            store.get(reference)
