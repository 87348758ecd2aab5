"""The OCI image spec as data: media types, size bounds, and checked parsing of manifests and indexes.

Docker's schema-2 media types are accepted beside the OCI ones (registries and ``docker
save`` still speak them); what we write is always OCI. Parsing is strict about the fields
the store relies on (digests, sizes, media types) and refuses anything else with
InvalidImage, so a hostile registry or archive cannot steer the store with odd JSON.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from agent.runtime.images.blobs import split_digest
from agent.runtime.errors import InvalidImage

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"

MANIFEST_TYPES = frozenset({MEDIA_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({MEDIA_INDEX, DOCKER_LIST})
GZIP_LAYERS = frozenset({MEDIA_LAYER_GZIP, DOCKER_LAYER_GZIP})
PLAIN_LAYERS = frozenset({MEDIA_LAYER, DOCKER_LAYER})
REF_NAME = "org.opencontainers.image.ref.name"

_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}
ARCH = _ARCH.get(platform.machine(), platform.machine())

MiB = 1 << 20
GiB = 1 << 30
_UNITS = {"": 1, "KiB": 1 << 10, "MiB": MiB, "GiB": GiB, "TiB": 1 << 40}
_SIZE = re.compile(r"^(\d+)(KiB|MiB|GiB|TiB)?$")


@dataclass(frozen=True)
class Limits:
    """Upper bounds on what the store accepts from outside; larger input is refused before it is kept.

    The ``layer_*``, ``path_*`` and ``ratio*`` bounds apply to every layer unpacked (pulled,
    loaded, imported, built or committed); README.md (Image limits) explains the defaults.
    """

    manifest: int = 4 * MiB  # a manifest or an index (the distribution spec's suggested bound)
    config: int = 8 * MiB
    blob: int = 16 * GiB  # one layer blob, compressed or not, and the uncompressed tar of a gzip layer
    layer_bytes: int = 16 * GiB  # the sizes of a layer's files added up, as unpacked
    layer_entries: int = 1_000_000  # tar members of one layer
    path_bytes: int = 4096  # a member's path (and a link's target), as PATH_MAX
    path_depth: int = 128  # components of a member's path
    ratio: int = 250  # uncompressed bytes per byte of the blob (a gzip stream, or a tar's own data)...
    ratio_floor: int = 512 * MiB  # ...checked only past this many uncompressed bytes

    @classmethod
    def parse(cls, items: Iterable[str], base: Limits | None = None) -> Limits:
        """``["layer_bytes=8GiB", "ratio=500"]`` over ``base`` (the defaults); ValueError names a bad item."""
        names = {f.name for f in dataclasses.fields(cls)}
        values: dict[str, int] = {}
        for item in items:
            name, _, text = item.partition("=")
            match = _SIZE.match(text.strip())
            if name not in names:
                raise ValueError(f"{item!r}: no such image limit (want one of {', '.join(sorted(names))})")
            if match is None or int(match[1]) <= 0:
                raise ValueError(f"{item!r}: want {name}=N with N > 0, optionally in KiB, MiB, GiB or TiB")
            values[name] = int(match[1]) * _UNITS[match[2] or ""]
        return dataclasses.replace(base or cls(), **values)

    def uncompressed_bound(self, compressed: int) -> tuple[int, str]:
        """How many bytes may come out of ``compressed`` bytes of a blob, and the limit that says so."""
        by_ratio = max(self.ratio_floor, self.ratio * compressed)
        return (by_ratio, "ratio") if by_ratio < self.blob else (self.blob, "blob")


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: dict[str, str]
    platform: dict[str, Any]


@dataclass(frozen=True)
class Manifest:
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


def descriptor(obj: Any, where: str) -> Descriptor:
    if not isinstance(obj, dict):
        raise InvalidImage(f"{where}: a descriptor must be an object")
    digest, size, media_type = obj.get("digest"), obj.get("size"), obj.get("mediaType", "")
    if not isinstance(digest, str):
        raise InvalidImage(f"{where}: descriptor without a digest")
    split_digest(digest)
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidImage(f"{where}: descriptor {digest} has no valid size")
    if not isinstance(media_type, str):
        raise InvalidImage(f"{where}: descriptor {digest} has a non-string mediaType")
    annotations = obj.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(isinstance(v, str) for v in annotations.values()):
        raise InvalidImage(f"{where}: descriptor {digest} has malformed annotations")
    plat = obj.get("platform") or {}
    if not isinstance(plat, dict):
        raise InvalidImage(f"{where}: descriptor {digest} has a malformed platform")
    return Descriptor(media_type, digest, size, dict(annotations), dict(plat))


def load_json(data: bytes, bound: int, what: str) -> dict[str, Any]:
    if len(data) > bound:
        raise InvalidImage(f"{what} is {len(data)} bytes, over the bound of {bound}")
    try:
        obj = json.loads(data)
    except ValueError as e:
        raise InvalidImage(f"{what} is not JSON: {e}") from e
    if not isinstance(obj, dict):
        raise InvalidImage(f"{what} is not a JSON object")
    return obj


def media_type_of(obj: dict[str, Any], fallback: str = "") -> str:
    """The document's own mediaType, else the one it was served or listed as, else its shape's."""
    media_type = obj.get("mediaType") or fallback
    if not media_type and "manifests" in obj:
        media_type = MEDIA_INDEX
    elif not media_type and "layers" in obj:
        media_type = MEDIA_MANIFEST
    return str(media_type)


def parse_manifest(obj: dict[str, Any], what: str = "manifest") -> Manifest:
    if obj.get("schemaVersion") != 2:
        raise InvalidImage(f"{what}: schemaVersion {obj.get('schemaVersion')!r} is not 2")
    media_type = media_type_of(obj, MEDIA_MANIFEST)
    if media_type not in MANIFEST_TYPES:
        raise InvalidImage(f"{what}: unsupported media type {media_type}")
    layers = obj.get("layers")
    if not isinstance(layers, list):
        raise InvalidImage(f"{what}: no layers list")
    parsed = tuple(descriptor(layer, f"{what} layer {i}") for i, layer in enumerate(layers))
    for layer in parsed:
        if layer.media_type not in GZIP_LAYERS | PLAIN_LAYERS:
            raise InvalidImage(f"{what}: layer {layer.digest} has unsupported media type {layer.media_type!r}")
    return Manifest(media_type, descriptor(obj.get("config"), f"{what} config"), parsed)


def parse_index(obj: dict[str, Any], what: str = "index") -> list[Descriptor]:
    manifests = obj.get("manifests")
    if not isinstance(manifests, list):
        raise InvalidImage(f"{what}: no manifests list")
    return [descriptor(m, f"{what} entry {i}") for i, m in enumerate(manifests)]


def pick_platform(entries: list[Descriptor], what: str) -> Descriptor:
    """The entry of an index for this host (linux and our architecture), else the only entry."""
    for entry in entries:
        if entry.platform.get("os", "linux") == "linux" and entry.platform.get("architecture") == ARCH:
            return entry
    if len(entries) == 1:
        return entries[0]
    raise InvalidImage(f"{what}: no manifest for linux/{ARCH}")


def diff_ids(config: dict[str, Any], what: str = "image config") -> list[str]:
    rootfs = config.get("rootfs")
    ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(ids, list) or not all(isinstance(d, str) for d in ids):
        raise InvalidImage(f"{what}: no rootfs.diff_ids")
    for d in ids:
        split_digest(d)
    return list(ids)
