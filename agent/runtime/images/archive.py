"""Images in and out of the store as OCI image layouts and ``docker save`` tarballs.

Load reads a directory or a tarball (plain or gzip) and never unpacks the archive itself
to disk: each blob streams from its member into ``BlobStore.ingest``, which checks it
against its digest and the store's bounds. Digests the format carries are kept as they are:
an OCI layout's manifests, configs and layers; a docker archive's config (the image ID)
and layers (diff_ids). A docker archive has no manifest, so we write an OCI one for it.

Bounds: a directory is a root (agent.runtime.rootpath): a blob name resolves inside it,
through symlinks that stay inside, and only regular files are read (never a FIFO or a
device). A tarball is read with layers.BoundedTarInfo (bounded headers, no sparse members),
at most ``MAX_MEMBERS`` members, and a compressed one (gzip, bzip2, xz) decompresses at
most what the store's ``ratio`` and ``blob`` limits allow for its size, seeks included.

Names: an OCI layout names an image by the annotation ``org.opencontainers.image.ref.name``.
We write the full ``name:tag`` there (as ``skopeo copy ... oci:DIR:name:tag`` does); a bare
tag such as ``v1`` needs a name from the caller (``--tag``).
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, Protocol

from agent.runtime.images import spec
from agent.runtime.images.blobs import chunks, split_digest
from agent.runtime.errors import ImageNotFound, InvalidImage, LimitExceeded
from agent.runtime.fsutil import canonical_json
from agent.runtime.images.layers import BoundedTarInfo
from agent.runtime.images.store import Image, ImageStore, parse_reference
from agent.runtime.rootpath import Root


DOCKER_HUB = "docker.io/library/"  # skopeo and docker write short names out in full
MAX_MEMBERS = 100_000  # of an image tarball: a few per layer and image in practice
_COMPRESSED = {b"\x1f\x8b": gzip.GzipFile, b"BZh": bz2.BZ2File, b"\xfd7zXZ\x00": lzma.LZMAFile}


class Source(Protocol):
    def open(self, name: str) -> IO[bytes]: ...

    def exists(self, name: str) -> bool: ...


class DirSource:
    """An image layout directory, read as a root: names resolve inside it, regular files only."""

    def __init__(self, root: Root) -> None:
        self.root = root

    def open(self, name: str) -> IO[bytes]:
        try:
            fd = self.root.open_regular(_relative(name))
        except OSError as e:
            raise InvalidImage(f"{self.root.path}: cannot read {name}: {e}") from e
        if fd is None:
            raise InvalidImage(f"{self.root.path}: {name} is not a regular file")
        return os.fdopen(fd, "rb")

    def exists(self, name: str) -> bool:
        try:
            return stat.S_ISREG(self.root.stat(_relative(name)).st_mode)
        except OSError:
            return False


class TarSource:
    """Members of a tarball by normalised name; links inside the archive resolve inside it."""

    def __init__(self, tar: tarfile.TarFile, label: str) -> None:
        self.tar = tar
        self.label = label
        count = 0
        while tar.next() is not None:
            count += 1
            if count > MAX_MEMBERS:
                raise InvalidImage(f"{label}: more than {MAX_MEMBERS} members: not an image archive")
        self.members = {_relative(m.name): m for m in tar.getmembers() if m.isfile() or m.issym() or m.islnk()}

    def open(self, name: str) -> IO[bytes]:
        member = self.members.get(_relative(name))
        stream = None
        if member is not None:
            try:
                stream = self.tar.extractfile(member)
            except (KeyError, tarfile.TarError) as e:
                raise InvalidImage(f"{self.label}: {name} is a link to nothing: {e}") from e
        if stream is None:
            raise InvalidImage(f"{self.label}: no file {name} in the archive")
        return stream

    def exists(self, name: str) -> bool:
        return _relative(name) in self.members


def _relative(name: str) -> str:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts or name.startswith("/"):
        raise InvalidImage(f"archive path {name!r} leaves the archive")
    return "/".join(parts)


class _Bounded(io.RawIOBase):
    """A decompressing stream that counts every byte it produces, those a seek skips or re-reads included."""

    def __init__(self, raw: IO[bytes], bound: int, what: str, limit: str) -> None:
        self.raw, self.bound, self.what, self.limit = raw, bound, what, limit
        self.work = 0

    def _count(self, n: int) -> None:
        self.work += n
        if self.work > self.bound:
            raise LimitExceeded(self.what, self.limit, self.bound, f"more than {self.bound} bytes decompressed")

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.raw.read(min(len(buffer), 1 << 20))
        self._count(len(data))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        before = self.raw.tell()
        target = offset if whence == io.SEEK_SET else before + offset if whence == io.SEEK_CUR else -1
        if target < 0:
            raise OSError("only absolute and relative seeks in a compressed archive")
        self._count(target - before if target >= before else target)  # backwards: decompressed again from 0
        return self.raw.seek(target)

    def tell(self) -> int:
        return self.raw.tell()


@contextmanager
def open_source(path: Path, limits: spec.Limits | None = None) -> Iterator[Source]:
    if path.is_dir():
        with Root(path, follow=True) as root:
            yield DirSource(root)
        return
    try:
        with ExitStack() as stack:
            raw = stack.enter_context(open(path, "rb"))
            head = raw.read(6)
            raw.seek(0)
            kind = next((cls for magic, cls in _COMPRESSED.items() if head.startswith(magic)), None)
            if kind is not None:
                bound, limit = (limits or spec.Limits()).uncompressed_bound(os.fstat(raw.fileno()).st_size)
                raw = stack.enter_context(io.BufferedReader(_Bounded(kind(fileobj=raw), bound, str(path), limit)))
            tar = stack.enter_context(tarfile.open(fileobj=raw, mode="r:", tarinfo=BoundedTarInfo))
            yield TarSource(tar, str(path))
    except (tarfile.TarError, OSError, EOFError, lzma.LZMAError) as e:
        raise InvalidImage(f"{path}: not a readable image archive: {e}") from e


# --- load ---------------------------------------------------------------------------------


def load(store: ImageStore, path: Path, tag: str | None = None) -> list[Image]:
    """Load every image of the OCI layout or docker archive at ``path``; ``tag`` names a single one."""
    with store.writing(), open_source(path, store.limits) as source:
        if source.exists("manifest.json"):
            return _load_docker(store, source, tag)
        if source.exists("index.json"):
            return _load_oci(store, source, tag)
        raise InvalidImage(f"{path}: neither an OCI image layout (index.json) nor a docker archive (manifest.json)")


def _read(source: Source, name: str, bound: int, what: str) -> bytes:
    with source.open(name) as f:
        data = f.read(bound + 1)
    if len(data) > bound:
        raise InvalidImage(f"{what} is over the bound of {bound} bytes")
    return data


def _blob(store: ImageStore, source: Source, digest: str, bound: int, what: str) -> None:
    if store.blobs.exists(digest):
        return
    with source.open(f"blobs/sha256/{split_digest(digest)}") as f:
        store.blobs.ingest(chunks(f), digest, bound, what)


def _load_oci(store: ImageStore, source: Source, tag: str | None) -> list[Image]:
    index = spec.load_json(_read(source, "index.json", store.limits.manifest, "index.json"), store.limits.manifest,
                           "index.json")
    found: list[tuple[str | None, bytes]] = []
    for entry in spec.parse_index(index, "index.json"):
        name = entry.annotations.get(spec.REF_NAME)
        _blob(store, source, entry.digest, store.limits.manifest, f"manifest {entry.digest}")
        data = store.blobs.read_bytes(entry.digest)
        obj = spec.load_json(data, store.limits.manifest, f"manifest {entry.digest}")
        if spec.media_type_of(obj, entry.media_type) in spec.INDEX_TYPES:
            chosen = spec.pick_platform(spec.parse_index(obj, f"index {entry.digest}"), f"index {entry.digest}")
            _blob(store, source, chosen.digest, store.limits.manifest, f"manifest {chosen.digest}")
            data = store.blobs.read_bytes(chosen.digest)
            obj = spec.load_json(data, store.limits.manifest, f"manifest {chosen.digest}")
        manifest = spec.parse_manifest(obj)
        _blob(store, source, manifest.config.digest, store.limits.config, f"config {manifest.config.digest}")
        for layer in manifest.layers:
            _blob(store, source, layer.digest, store.limits.blob, f"layer {layer.digest}")
        found.append((name, data))
    return _adopt(store, found, tag)


def _adopt(store: ImageStore, found: list[tuple[str | None, bytes]], tag: str | None) -> list[Image]:
    if tag is not None and len(found) != 1:
        raise InvalidImage(f"--tag names one image, but the archive holds {len(found)}")
    images = []
    for name, data in found:
        reference = tag or name
        if reference is not None and ":" not in reference and "/" not in reference:
            raise InvalidImage(f"the archive names an image only by the tag {reference!r}: give a name with --tag")
        images.append(store.add_manifest(data, reference))
    return images


def _load_docker(store: ImageStore, source: Source, tag: str | None) -> list[Image]:
    entries = json.loads(_read(source, "manifest.json", store.limits.manifest, "manifest.json"))
    if not isinstance(entries, list):
        raise InvalidImage("manifest.json: not a list of images")
    found: list[tuple[str | None, bytes]] = []
    for i, entry in enumerate(entries):
        what = f"manifest.json entry {i}"
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str) or not isinstance(
            entry.get("Layers"), list
        ):
            raise InvalidImage(f"{what}: needs Config and Layers")
        with source.open(entry["Config"]) as f:
            config_digest, config_size = store.blobs.ingest(chunks(f), None, store.limits.config, f"{what} config")
        config = spec.load_json(store.blobs.read_bytes(config_digest), store.limits.config, f"{what} config")
        ids = spec.diff_ids(config, f"{what} config")
        if len(ids) != len(entry["Layers"]):
            raise InvalidImage(f"{what}: {len(entry['Layers'])} layers but {len(ids)} diff_ids in the config")
        layers = [_docker_layer(store, source, name, diff_id) for name, diff_id in zip(entry["Layers"], ids,
                                                                                       strict=True)]
        manifest = {
            "schemaVersion": 2,
            "mediaType": spec.MEDIA_MANIFEST,
            "config": {"mediaType": spec.MEDIA_CONFIG, "digest": config_digest, "size": config_size},
            "layers": layers,
        }
        data = canonical_json(manifest)
        tags = [t.removeprefix(DOCKER_HUB) for t in entry.get("RepoTags") or [] if isinstance(t, str)]
        for name in tags or [None]:
            found.append((name, data))
    return _adopt(store, found, tag)


def _docker_layer(store: ImageStore, source: Source, name: object, diff_id: str) -> dict[str, object]:
    if not isinstance(name, str):
        raise InvalidImage("manifest.json: a layer path is not a string")
    with source.open(name) as f:
        head = f.read(2)
        gzipped = head == b"\x1f\x8b"
        data = _prefixed(head, chunks(f))
        digest, size = store.blobs.ingest(data, None if gzipped else diff_id, store.limits.blob, f"layer {name}")
    media_type = spec.MEDIA_LAYER_GZIP if gzipped else spec.MEDIA_LAYER
    return {"mediaType": media_type, "digest": digest, "size": size}


def _prefixed(head: bytes, rest: Iterable[bytes]) -> Iterator[bytes]:
    yield head
    yield from rest


# --- save ---------------------------------------------------------------------------------


def save_oci(store: ImageStore, references: list[str], dest: Path) -> list[Image]:
    """Write the images to the OCI image layout directory ``dest`` (created, or added to)."""
    images = [store.get(r) for r in references]
    (dest / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (dest / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": "1.0.0"}))
    index_path = dest / "index.json"
    index = json.loads(index_path.read_bytes()) if index_path.exists() else {"schemaVersion": 2, "manifests": []}
    index["mediaType"] = spec.MEDIA_INDEX
    for image in images:
        name = _named(image)
        for digest in (image.digest, image.config_digest, *(layer.digest for layer in image.layers)):
            target = dest / "blobs" / "sha256" / split_digest(digest)
            if not target.exists():
                shutil.copyfile(store.blobs.path(digest), target)
        data = store.manifest_bytes(image.digest)
        index["manifests"] = [m for m in index["manifests"] if m.get("annotations", {}).get(spec.REF_NAME) != name]
        index["manifests"].append({
            "mediaType": spec.media_type_of(json.loads(data), spec.MEDIA_MANIFEST),
            "digest": image.digest,
            "size": len(data),
            "annotations": {spec.REF_NAME: name},
        })
    index_path.write_bytes(canonical_json(index))
    return images


def save_docker(store: ImageStore, references: list[str], dest: Path) -> list[Image]:
    """Write the images as a ``docker save`` tarball: ``<config hex>.json``, ``<diff_id hex>/layer.tar``."""
    images = [store.get(r) for r in references]
    entries, repositories = [], {}
    with ExitStack() as stack, tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        written: set[str] = set()
        for image in images:
            config_name = f"{split_digest(image.config_digest)}.json"
            layer_names = [f"{split_digest(layer.diff_id)}/layer.tar" for layer in image.layers]
            if config_name not in written:
                _add(tar, config_name, store.blobs.path(image.config_digest))
                written.add(config_name)
            for layer, name in zip(image.layers, layer_names, strict=True):
                if name in written:
                    continue
                path = store.blobs.path(layer.digest)
                if layer.media_type in spec.GZIP_LAYERS:
                    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=store.tmp))) / "layer.tar"
                    with gzip.open(path, "rb") as f, open(tmp, "wb") as out:
                        shutil.copyfileobj(f, out)
                    path = tmp
                _add(tar, name, path)
                written.add(name)
            name = _named(image)
            ref = parse_reference(name)
            repositories.setdefault(ref.name, {})[ref.tag] = split_digest(image.layers[-1].diff_id) if image.layers else ""
            entries.append({"Config": config_name, "RepoTags": [name], "Layers": layer_names})
        _add_bytes(tar, "manifest.json", json.dumps(entries).encode())
        _add_bytes(tar, "repositories", json.dumps(repositories).encode())
    return images


def _named(image: Image) -> str:
    if image.reference.startswith("sha256:"):
        raise ImageNotFound(f"{image.digest} has no name:tag to save it under")
    return image.reference


def _add(tar: tarfile.TarFile, name: str, path: Path) -> None:
    info = tarfile.TarInfo(name)
    info.size = path.stat().st_size
    info.mode = 0o644
    with open(path, "rb") as f:
        tar.addfile(info, f)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))
