"""The image store: an OCI image layout on disk plus the unpacked layers overlayfs mounts.

    <root>/oci-layout                {"imageLayoutVersion": "1.0.0"}
    <root>/index.json                OCI image index; each manifest carries its reference in
                                     the annotation org.opencontainers.image.ref.name ("name:tag")
    <root>/blobs/sha256/<hex>        layers (uncompressed tar), image configs, manifests
    <root>/layers/<diff-id hex>/     each layer unpacked once, shared read-only by all containers
    <root>/tmp/                      work files, renamed into place when complete
"""

from __future__ import annotations

import fcntl
import gzip
import json
import os
import platform
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.runtime import layers
from agent.runtime.blobs import BlobStore, sha256_file, split_digest
from agent.runtime.errors import ImageNotFound, InvalidImage
from agent.runtime.fsutil import atomic_write_json

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"
REF_NAME = "org.opencontainers.image.ref.name"

_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}


@dataclass(frozen=True)
class ImageConfig:
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ()  # "K=V"
    working_dir: str = ""


@dataclass(frozen=True)
class Image:
    reference: str  # normalised "name:tag"
    digest: str  # manifest digest "sha256:<hex>"
    config: ImageConfig
    layer_dirs: tuple[Path, ...]  # unpacked layers, lowest first
    size: int  # bytes of the layer blobs


@dataclass(frozen=True)
class Reference:
    name: str
    tag: str | None
    digest: str | None

    def __str__(self) -> str:
        return f"{self.name}:{self.tag}" if self.digest is None else f"{self.name}@{self.digest}"


def parse_reference(text: str) -> Reference:
    """``name``, ``name:tag`` or ``name@sha256:<hex>``; a missing tag means ``latest``.

    A colon only starts a tag after the last slash (``host:5000/app`` has no tag).
    """
    name, _, digest = text.partition("@")
    if digest:
        split_digest(digest)
        return Reference(name, None, digest)
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
    else:
        tag = "latest"
    if not name or not tag:
        raise ImageNotFound(text)
    return Reference(name, tag, None)


def image_config_json(config: ImageConfig, diff_ids: list[str]) -> dict[str, Any]:
    """The OCI image config for ``config`` over the given layers. No timestamps: same input, same digest."""
    return {
        "architecture": _ARCH.get(platform.machine(), platform.machine()),
        "os": "linux",
        "config": {
            "Entrypoint": list(config.entrypoint),
            "Cmd": list(config.cmd),
            "Env": list(config.env),
            "WorkingDir": config.working_dir,
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }


def image_config_from_json(obj: dict[str, Any]) -> ImageConfig:
    config = obj.get("config") or {}
    return ImageConfig(
        entrypoint=tuple(config.get("Entrypoint") or ()),
        cmd=tuple(config.get("Cmd") or ()),
        env=tuple(config.get("Env") or ()),
        working_dir=config.get("WorkingDir") or "",
    )


class ImageStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._blobs = BlobStore(root / "blobs")
        self._layers = root / "layers"
        self._tmp = root / "tmp"
        self._index = root / "index.json"
        self._lock = threading.Lock()
        for d in (self._layers, self._tmp):
            d.mkdir(parents=True, exist_ok=True)
        if not (root / "oci-layout").exists():
            atomic_write_json(root / "oci-layout", {"imageLayoutVersion": "1.0.0"})

    # --- public -------------------------------------------------------------------------

    def import_rootfs(self, source: Path, reference: str, config: ImageConfig | None = None) -> Image:
        """Make a one-layer image from a directory or a .tar / .tar.gz of a root file system."""
        ref = parse_reference(reference)
        if ref.digest is not None:
            raise InvalidImage(f"import needs a name:tag, not a digest: {reference}")
        tar_path = Path(tempfile.mkstemp(dir=self._tmp, prefix="layer-", suffix=".tar")[1])
        try:
            self._write_layer_tar(source, tar_path)
            diff_id = sha256_file(tar_path)
            self._unpack_once(tar_path, diff_id)
            layer_size = self._blobs.put_file(tar_path, diff_id)
        finally:
            tar_path.unlink(missing_ok=True)
        config_digest, config_size = self._blobs.put_json(image_config_json(config or ImageConfig(), [diff_id]))
        manifest = {
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": {"mediaType": MEDIA_CONFIG, "digest": config_digest, "size": config_size},
            "layers": [{"mediaType": MEDIA_LAYER, "digest": diff_id, "size": layer_size}],
        }
        manifest_digest, manifest_size = self._blobs.put_json(manifest)
        self._tag(str(ref), manifest_digest, manifest_size)
        return self._image(str(ref), manifest_digest)

    def get(self, reference: str) -> Image:
        ref = parse_reference(reference)
        for name, digest in self._entries():
            if (ref.digest is None and name == str(ref)) or (
                ref.digest == digest and name.rpartition(":")[0] == ref.name
            ):
                return self._image(name, digest)
        raise ImageNotFound(reference)

    def list(self) -> list[Image]:
        return [self._image(name, digest) for name, digest in self._entries()]

    # --- layers ---------------------------------------------------------------------------

    def _write_layer_tar(self, source: Path, out_path: Path) -> None:
        """The layer blob: a deterministic tar of a directory, or the tarball's own (uncompressed) bytes."""
        try:
            with open(out_path, "wb") as out:
                if source.is_dir():
                    layers.write_tar(source, out)
                    return
                with open(source, "rb") as f:
                    compressed = f.read(2) == b"\x1f\x8b"
                with gzip.open(source, "rb") if compressed else open(source, "rb") as f:
                    shutil.copyfileobj(f, out)
        except (OSError, EOFError) as e:
            raise InvalidImage(f"cannot read rootfs source {source}: {e}") from e

    def _unpack_once(self, tar_path: Path, diff_id: str) -> None:
        """Unpack into layers/<hex> unless there already; a rename publishes a complete tree only."""
        final = self._layers / split_digest(diff_id)
        if final.exists():
            return
        work = Path(tempfile.mkdtemp(dir=self._tmp, prefix="unpack-"))
        try:
            layers.unpack(tar_path, work / "layer")
            try:
                os.rename(work / "layer", final)
            except OSError:
                if not final.exists():
                    raise  # lost a race to an identical unpack otherwise: theirs is as good
        finally:
            shutil.rmtree(work, ignore_errors=True)

    # --- index ----------------------------------------------------------------------------

    def _entries(self) -> list[tuple[str, str]]:
        return [
            (m["annotations"][REF_NAME], m["digest"])
            for m in self._read_index()["manifests"]
            if REF_NAME in m.get("annotations", {})
        ]

    def _read_index(self) -> dict[str, Any]:
        try:
            with open(self._index, "rb") as f:
                return dict(json.load(f))
        except FileNotFoundError:
            return {"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": []}

    @contextmanager
    def _index_locked(self) -> Iterator[None]:
        """Serialise index updates between threads and between processes sharing the store."""
        with self._lock, open(self.root / "index.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _tag(self, name: str, digest: str, size: int) -> None:
        with self._index_locked():
            index = self._read_index()
            kept = [m for m in index["manifests"] if m.get("annotations", {}).get(REF_NAME) != name]
            kept.append({"mediaType": MEDIA_MANIFEST, "digest": digest, "size": size, "annotations": {REF_NAME: name}})
            index["manifests"] = kept
            atomic_write_json(self._index, index)

    def _image(self, name: str, digest: str) -> Image:
        manifest = self._blobs.read_json(digest)
        config = self._blobs.read_json(manifest["config"]["digest"])
        return Image(
            reference=name,
            digest=digest,
            config=image_config_from_json(config),
            layer_dirs=tuple(self._layers / split_digest(d) for d in config["rootfs"]["diff_ids"]),
            size=sum(layer["size"] for layer in manifest["layers"]),
        )
