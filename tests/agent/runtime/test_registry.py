"""Pull and push against a real registry: digests kept, blobs deduplicated both ways, bad answers refused."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agent.runtime import ImageConfig, ImageStore, InvalidImage
from agent.runtime.images import archive
from agent.runtime.images.blobs import sha256_bytes
from agent.runtime.errors import RegistryError
from agent.runtime.images.spec import Limits
from agent.runtime.images.layers import write_tar
from agent.runtime.images.registry import RegistryClient, RegistrySettings, resolve
from tests.agent.runtime.registry_server import Registry, running_registry
from tests.agent.runtime.support import MARKER


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with running_registry(tmp_path_factory.mktemp("moorage-registry")) as reg:
        yield reg


@dataclass
class Recorder:
    fetched: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    moved: int = 0

    def start(self, digest: str, total: int) -> None:
        pass

    def advance(self, digest: str, amount: int) -> None:
        self.moved += amount

    def done(self, digest: str, skipped: bool) -> None:
        (self.skipped if skipped else self.fetched).append(digest)


def skopeo(*args: str) -> str:
    argv = ["skopeo", "--insecure-policy", *args]
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=120).stdout


def test_push_then_pull_keeps_the_digest_and_skips_present_blobs(
    tmp_path: Path, registry: Registry, busybox_rootfs: Path
) -> None:
    source = ImageStore(tmp_path / "moorage-src")
    base = source.import_rootfs(busybox_rootfs, "base:1", ImageConfig(cmd=("sh",)))
    extra = tmp_path / "extra"
    (extra / "app").mkdir(parents=True)
    (extra / "app" / "hello").write_text("hi\n")
    layer_tar = tmp_path / "moorage-src" / "tmp" / "l.tar"
    with open(layer_tar, "wb") as out:
        write_tar(extra, out)
    app = source.create([source.add_layer_tar(layer_tar)], ImageConfig(cmd=("cat", "/app/hello")), "app:1", base=base)
    client = RegistryClient(RegistrySettings())
    ref = f"{registry.address}/team/app:1"

    first = Recorder()
    assert client.push(source, "base:1", f"{registry.address}/team/app:base", first) == base.digest
    assert len(first.fetched) == 2 and first.skipped == []  # layer + config
    second = Recorder()
    assert client.push(source, "app:1", ref, second) == app.digest
    assert base.layers[0].digest in second.skipped and app.layers[1].digest in second.fetched

    target = ImageStore(tmp_path / "moorage-dst")
    pulled_base = client.pull(target, f"{registry.address}/team/app:base")
    assert pulled_base.digest == base.digest
    third = Recorder()
    pulled = client.pull(target, ref, progress=third)
    assert pulled.digest == app.digest and pulled.reference == ref
    assert third.skipped == [base.layers[0].digest] and app.layers[1].digest in third.fetched
    assert third.moved == app.layers[1].size + len(target.blobs.read_bytes(app.config_digest))
    assert (pulled.layer_dirs[0] / MARKER).exists() and (pulled.layer_dirs[1] / "app" / "hello").read_text() == "hi\n"
    assert registry.requests("GET", f"/blobs/{base.layers[0].digest}") == 1  # fetched once, for the base
    by_digest = client.pull(ImageStore(tmp_path / "moorage-dig"), f"{registry.address}/team/app@{app.digest}")
    assert by_digest.digest == app.digest and by_digest.reference.endswith(f"@{app.digest}")


def test_skopeo_reads_what_we_push_and_we_pull_what_skopeo_pushes(
    tmp_path: Path, registry: Registry, busybox_rootfs: Path
) -> None:
    store = ImageStore(tmp_path / "moorage-src")
    image = store.import_rootfs(busybox_rootfs, "sk:1", ImageConfig(env=("A=1",)))
    client = RegistryClient(RegistrySettings())
    client.push(store, "sk:1", f"{registry.address}/sk:1")
    info = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{registry.address}/sk:1"))
    assert info["Digest"] == image.digest and info["Env"] == ["A=1"]
    # skopeo compresses what it copies from a docker archive: gzip layers we then pull and unpack
    archive.save_docker(store, ["sk:1"], tmp_path / "sk.tar")
    skopeo("copy", "-q", "--dest-tls-verify=false", f"docker-archive:{tmp_path / 'sk.tar'}",
           f"docker://{registry.address}/skgz:1")
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{registry.address}/skgz:1")
    pulled = client.pull(ImageStore(tmp_path / "moorage-dst"), f"{registry.address}/skgz:1")
    assert pulled.digest == sha256_bytes(raw.encode())
    assert pulled.layers[0].media_type.endswith("gzip") and pulled.layers[0].diff_id == image.layers[0].diff_id
    assert (pulled.layer_dirs[0] / "bin" / "busybox").is_file()


def test_missing_images_fail_with_the_registrys_reason(tmp_path: Path, registry: Registry) -> None:
    client = RegistryClient(RegistrySettings())
    with pytest.raises(RegistryError, match="MANIFEST_UNKNOWN|NAME_UNKNOWN") as err:
        client.pull(ImageStore(tmp_path / "moorage-dst"), f"{registry.address}/nothing/here:1")
    assert err.value.status == 404


def test_unqualified_names_need_a_default_registry() -> None:
    with pytest.raises(RegistryError, match="no default registry"):
        resolve("app:1", RegistrySettings())
    remote = resolve("app:1", RegistrySettings(default="10.0.0.1:5000"))
    assert (remote.registry, remote.repository, remote.tag) == ("10.0.0.1:5000", "app", "1")
    assert RegistrySettings().scheme("127.0.0.1:5000") == "http"
    assert RegistrySettings().scheme("registry.example:5000") == "https"
    assert RegistrySettings(insecure=frozenset({"10.0.0.1:5000"})).scheme("10.0.0.1:5000") == "http"
    assert RegistrySettings(insecure=frozenset({"10.231.0.0/16"})).scheme("10.231.4.1:5000") == "http"
    assert RegistrySettings(insecure=frozenset({"10.231.0.0/16"})).scheme("10.232.4.1:5000") == "https"


def test_a_blob_the_registry_serves_wrong_or_oversized_is_refused(
    tmp_path: Path, registry: Registry, busybox_rootfs: Path
) -> None:
    store = ImageStore(tmp_path / "moorage-src")
    image = store.import_rootfs(busybox_rootfs, "bad:1")
    client = RegistryClient(RegistrySettings())
    client.push(store, "bad:1", f"{registry.address}/bad:1")
    small = ImageStore(tmp_path / "moorage-small", Limits(blob=4096))
    with pytest.raises(InvalidImage, match="over the bound"):
        client.pull(small, f"{registry.address}/bad:1")
    assert small.list() == [] and list((small.root / "layers").iterdir()) == []
    # corrupt the layer in the registry's own storage: the pull must refuse the bytes it is served
    hexpart = image.layers[0].digest.removeprefix("sha256:")
    (data,) = list(registry.root.rglob(f"blobs/sha256/{hexpart[:2]}/{hexpart}/data"))
    original = data.read_bytes()
    data.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    try:
        target = ImageStore(tmp_path / "moorage-dst")
        with pytest.raises(InvalidImage, match=f"expected {image.layers[0].digest}"):
            client.pull(target, f"{registry.address}/bad:1")
        assert target.list() == [] and not target.blobs.exists(image.layers[0].digest)
        assert list((target.root / "layers").iterdir()) == []
    finally:
        data.write_bytes(original)


def test_push_by_digest_and_a_manifest_over_the_bound(tmp_path: Path, registry: Registry, busybox_rootfs: Path) -> None:
    store = ImageStore(tmp_path / "moorage-src")
    image = store.import_rootfs(busybox_rootfs, "dg:1")
    client = RegistryClient(RegistrySettings())
    assert client.push(store, "dg:1", f"{registry.address}/dg@{image.digest}") == image.digest
    with pytest.raises(RegistryError, match="not sha256:0"):
        client.push(store, "dg:1", f"{registry.address}/dg@sha256:{'0' * 64}")
    tiny = ImageStore(tmp_path / "moorage-tiny", Limits(manifest=64))
    with pytest.raises(InvalidImage, match="over the bound of 64"):
        client.pull(tiny, f"{registry.address}/dg@{image.digest}")
    assert tiny.blobs.digests() == []
    assert client.pull(ImageStore(tmp_path / "moorage-dst"), f"{registry.address}/dg@{image.digest}").digest == image.digest
