"""Load and save: OCI layouts and docker archives, checked against skopeo in both directions."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from agent.runtime import ImageConfig, ImageStore, InvalidImage
from agent.runtime.images import archive
from agent.runtime.images.blobs import sha256_bytes
from agent.runtime.images.spec import Limits
from agent.runtime.images.store import Usage
from tests.agent.runtime.support import MARKER

SKOPEO = ["skopeo", "--insecure-policy"]


def skopeo(*args: str) -> str:
    return subprocess.run([*SKOPEO, *args], check=True, capture_output=True, text=True, timeout=120).stdout


@pytest.fixture
def store(tmp_path: Path, busybox_rootfs: Path) -> ImageStore:
    store = ImageStore(tmp_path / "moorage-images")
    store.import_rootfs(busybox_rootfs, "app:v1", ImageConfig(cmd=("sh",), env=("A=1",), labels={"k": "v"}))
    return store


def fresh(tmp_path: Path, name: str = "moorage-other") -> ImageStore:
    return ImageStore(tmp_path / name)


def test_our_oci_layout_is_read_by_skopeo(tmp_path: Path, store: ImageStore) -> None:
    image = store.get("app:v1")
    archive.save_oci(store, ["app:v1"], tmp_path / "oci")
    raw = skopeo("inspect", "--raw", f"oci:{tmp_path / 'oci'}:app:v1")
    assert sha256_bytes(raw.encode()) == image.digest
    info = json.loads(skopeo("inspect", f"oci:{tmp_path / 'oci'}:app:v1"))
    assert info["Digest"] == image.digest and info["Layers"] == [layer.digest for layer in image.layers]
    skopeo("copy", "-q", f"oci:{tmp_path / 'oci'}:app:v1", f"oci:{tmp_path / 'copy'}:x")  # reads and checks every blob


def test_our_docker_archive_is_read_by_skopeo(tmp_path: Path, store: ImageStore) -> None:
    image = store.get("app:v1")
    archive.save_docker(store, ["app:v1"], tmp_path / "app.tar")
    info = json.loads(skopeo("inspect", f"docker-archive:{tmp_path / 'app.tar'}"))
    assert info["Layers"] == [layer.diff_id for layer in image.layers]
    config = json.loads(skopeo("inspect", "--config", f"docker-archive:{tmp_path / 'app.tar'}"))
    assert config["config"]["Labels"] == {"k": "v"} and config["rootfs"]["diff_ids"] == [image.layers[0].diff_id]


def test_skopeo_oci_layout_with_gzip_layers_loads_with_its_digests(tmp_path: Path, store: ImageStore) -> None:
    archive.save_docker(store, ["app:v1"], tmp_path / "app.tar")
    skopeo("copy", "-q", f"docker-archive:{tmp_path / 'app.tar'}", f"oci:{tmp_path / 'sk'}:app:v2")
    index = json.loads((tmp_path / "sk" / "index.json").read_text())
    other = fresh(tmp_path)
    (loaded,) = archive.load(other, tmp_path / "sk")
    assert loaded.reference == "app:v2" and loaded.digest == index["manifests"][0]["digest"]
    (layer,) = loaded.layers
    assert layer.media_type.endswith("+gzip") and layer.diff_id == store.get("app:v1").layers[0].diff_id
    assert (layer.path / MARKER).exists() is (store.get("app:v1").layer_dirs[0] / MARKER).exists()
    assert (layer.path / "bin" / "busybox").is_file()


def test_skopeo_docker_archive_loads_with_its_config_digest(tmp_path: Path, store: ImageStore) -> None:
    image = store.get("app:v1")
    archive.save_oci(store, ["app:v1"], tmp_path / "oci")
    skopeo("copy", "-q", f"oci:{tmp_path / 'oci'}:app:v1", f"docker-archive:{tmp_path / 'sk.tar'}:app:v3")
    (loaded,) = archive.load(fresh(tmp_path), tmp_path / "sk.tar")
    assert loaded.reference == "app:v3"
    assert loaded.config_digest == image.config_digest
    assert [layer.diff_id for layer in loaded.layers] == [layer.diff_id for layer in image.layers]
    assert loaded.config == image.config


def test_our_archives_round_trip_with_the_same_manifest_digest(tmp_path: Path, store: ImageStore) -> None:
    image = store.get("app:v1")
    archive.save_docker(store, ["app:v1"], tmp_path / "app.tar")
    archive.save_oci(store, ["app:v1"], tmp_path / "oci")
    (from_docker,) = archive.load(fresh(tmp_path, "moorage-a"), tmp_path / "app.tar")
    (from_oci,) = archive.load(fresh(tmp_path, "moorage-b"), tmp_path / "oci", tag="renamed:v9")
    assert from_docker.digest == from_oci.digest == image.digest
    assert from_oci.reference == "renamed:v9"


def _tar(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_a_docker_archive_naming_paths_outside_is_refused(tmp_path: Path) -> None:
    manifest = json.dumps([{"Config": "../../etc/passwd", "RepoTags": ["x:1"], "Layers": []}]).encode()
    bad = _tar(tmp_path / "bad.tar", {"manifest.json": manifest})
    other = fresh(tmp_path)
    with pytest.raises(InvalidImage, match="leaves the archive"):
        archive.load(other, bad)
    assert other.list() == []


def test_a_blob_that_does_not_match_its_digest_is_refused(tmp_path: Path, store: ImageStore) -> None:
    image = store.get("app:v1")
    archive.save_oci(store, ["app:v1"], tmp_path / "oci")
    config_blob = tmp_path / "oci" / "blobs" / "sha256" / image.config_digest.removeprefix("sha256:")
    config_blob.write_bytes(config_blob.read_bytes().replace(b'"k":"v"', b'"k":"X"'))
    other = fresh(tmp_path)
    with pytest.raises(InvalidImage, match="expected " + image.config_digest):
        archive.load(other, tmp_path / "oci")
    assert other.list() == [] and image.config_digest not in other.blobs.digests()
    other.sweep(Usage())  # what a failed load left (its manifest) goes with the next sweep
    assert other.blobs.digests() == []


def test_a_layer_over_the_bound_is_refused(tmp_path: Path, store: ImageStore) -> None:
    archive.save_oci(store, ["app:v1"], tmp_path / "oci")
    other = ImageStore(tmp_path / "moorage-small", Limits(blob=1024))
    with pytest.raises(InvalidImage, match="bound of 1024"):
        archive.load(other, tmp_path / "oci")
    assert other.list() == [] and list((other.root / "tmp").iterdir()) == []


def test_load_of_something_else_says_what_it_wanted(tmp_path: Path) -> None:
    bad = _tar(tmp_path / "bad.tar", {"hello": b"x"})
    with pytest.raises(InvalidImage, match="neither an OCI image layout"):
        archive.load(fresh(tmp_path), bad)
