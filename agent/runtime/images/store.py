"""The image store: an OCI image layout on disk plus the unpacked layers overlayfs mounts.

    <root>/oci-layout                {"imageLayoutVersion": "1.0.0"}
    <root>/index.json                OCI image index; each manifest carries its reference in
                                     the annotation org.opencontainers.image.ref.name ("name:tag")
    <root>/blobs/sha256/<hex>        layers (as pulled or loaded: gzip or plain tar), configs, manifests
    <root>/layers/<diff-id hex>/     each layer unpacked once, shared read-only by all images and containers
    <root>/build-cache.json          build step cache key → manifest digest (see build/)
    <root>/tmp/                      work files, renamed into place when complete

Reference counting is done the way containerd's garbage collector does it: removal and
prune mark everything reachable from the roots (tagged images, the images and layers of
existing containers, the build cache) and sweep the rest, so nothing in use can go and
nothing unreferenced stays. Writers (pull, load, build, import) hold the store's gc lock
shared while their blobs are not yet reachable; a sweep holds it exclusively.

A writer's ``writing()`` is also a transaction: the blobs it ingests and the layers it
unpacks are staged in ``tmp/txn-*/`` and published (renamed into ``blobs/`` and ``layers/``)
only by the ``create`` or ``add_manifest`` of an image that uses them, right before its tag
is written. Whatever is still staged when ``writing()`` ends — the blobs of an image that
failed to load, a layer over a limit — is deleted with the staging directory, so a failed
pull, load, import or build leaves no blob or layer behind.
"""

from __future__ import annotations

import fcntl
import gzip
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.runtime.images import spec
from agent.runtime.images import layers
from agent.runtime.images.blobs import BlobStore, bounded, chunks, sha256_file, split_digest, write_verified
from agent.runtime.errors import ImageInUse, ImageNotFound, InvalidImage
from agent.runtime.fsutil import atomic_write_json



@dataclass(frozen=True)
class Healthcheck:
    """The image's HEALTHCHECK; durations in nanoseconds as in the image config."""

    test: tuple[str, ...] = ()  # ("CMD", ...), ("CMD-SHELL", "..."), ("NONE",)
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    retries: int = 0


@dataclass(frozen=True)
class ImageConfig:
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ()  # "K=V"
    working_dir: str = ""
    user: str = ""
    exposed_ports: tuple[str, ...] = ()  # "80/tcp"
    volumes: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    healthcheck: Healthcheck | None = None
    stop_signal: str = ""


@dataclass(frozen=True)
class Layer:
    digest: str  # of the blob as stored (gzip or plain)
    diff_id: str  # of the uncompressed tar
    size: int  # of the blob
    media_type: str
    path: Path  # unpacked


@dataclass(frozen=True)
class Image:
    reference: str  # normalised "name:tag" (or the manifest digest of an untagged image)
    digest: str  # manifest digest "sha256:<hex>"
    config: ImageConfig
    layer_dirs: tuple[Path, ...]  # unpacked layers, lowest first
    size: int  # bytes of the layer blobs
    config_digest: str = ""
    layers: tuple[Layer, ...] = ()
    config_json: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Reference:
    name: str
    tag: str | None
    digest: str | None

    def __str__(self) -> str:
        return f"{self.name}:{self.tag}" if self.digest is None else f"{self.name}@{self.digest}"


@dataclass(frozen=True)
class Usage:
    """What existing containers hold: their images' manifest digests and their lower layer dirs."""

    digests: frozenset[str] = frozenset()
    layer_dirs: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Swept:
    blobs: int
    layers: int
    bytes: int


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


def config_section(config: ImageConfig) -> dict[str, Any]:
    """The ``config`` object of an OCI image config; empty fields left out."""
    out: dict[str, Any] = {}
    if config.user:
        out["User"] = config.user
    if config.exposed_ports:
        out["ExposedPorts"] = {port: {} for port in config.exposed_ports}
    if config.env:
        out["Env"] = list(config.env)
    if config.entrypoint:
        out["Entrypoint"] = list(config.entrypoint)
    if config.cmd:
        out["Cmd"] = list(config.cmd)
    if config.volumes:
        out["Volumes"] = {volume: {} for volume in config.volumes}
    if config.working_dir:
        out["WorkingDir"] = config.working_dir
    if config.labels:
        out["Labels"] = dict(config.labels)
    if config.stop_signal:
        out["StopSignal"] = config.stop_signal
    if config.healthcheck is not None:
        check = config.healthcheck
        out["Healthcheck"] = {
            "Test": list(check.test),
            **{k: v for k, v in (("Interval", check.interval), ("Timeout", check.timeout),
                                 ("StartPeriod", check.start_period), ("Retries", check.retries)) if v},
        }
    return out


def image_config_json(config: ImageConfig, diff_ids: list[str], base: Mapping[str, Any] | None = None,
                      history: Iterable[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The OCI image config for ``config`` over the given layers, keeping other fields of ``base``.

    No timestamps: the same input gives the same digest (and a build cache hit).
    """
    out = dict(base or {})
    out.update({"architecture": out.get("architecture", spec.ARCH), "os": out.get("os", "linux")})
    out["config"] = config_section(config)
    out["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
    entries = list(out.get("history") or []) + [dict(h) for h in history]
    if entries:
        out["history"] = entries
    else:
        out.pop("history", None)
    return out


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value or ())


def image_config_from_json(obj: Mapping[str, Any]) -> ImageConfig:
    config = obj.get("config") or {}
    health = config.get("Healthcheck")
    return ImageConfig(
        entrypoint=_strings(config.get("Entrypoint")),
        cmd=_strings(config.get("Cmd")),
        env=_strings(config.get("Env")),
        working_dir=config.get("WorkingDir") or "",
        user=config.get("User") or "",
        exposed_ports=tuple(sorted(config.get("ExposedPorts") or {})),
        volumes=tuple(sorted(config.get("Volumes") or {})),
        labels={str(k): str(v) for k, v in (config.get("Labels") or {}).items()},
        healthcheck=None if not isinstance(health, dict) else Healthcheck(
            test=_strings(health.get("Test")),
            interval=int(health.get("Interval") or 0),
            timeout=int(health.get("Timeout") or 0),
            start_period=int(health.get("StartPeriod") or 0),
            retries=int(health.get("Retries") or 0),
        ),
        stop_signal=config.get("StopSignal") or "",
    )


class ImageStore:
    def __init__(self, root: Path, limits: spec.Limits | None = None) -> None:
        self.root = root
        self.limits = limits or spec.Limits()
        self.tmp = root / "tmp"
        self._layers = root / "layers"
        self.blobs = BlobStore(root / "blobs", self.tmp)
        self._index = root / "index.json"
        self._cache = root / "build-cache.json"
        self._lock = threading.Lock()
        self._txn = threading.local()  # .stage: this thread's writing() transaction directory
        for d in (self._layers, self.tmp):
            d.mkdir(parents=True, exist_ok=True)
        if not (root / "oci-layout").exists():
            atomic_write_json(root / "oci-layout", {"imageLayoutVersion": "1.0.0"})
        self._remove_stale_transactions()

    # --- making images ----------------------------------------------------------------------

    def import_rootfs(self, source: Path, reference: str, config: ImageConfig | None = None) -> Image:
        """Make a one-layer image from a directory or a .tar / .tar.gz of a root file system."""
        ref = self._tag_reference(reference)
        with self.writing():
            fd, name = tempfile.mkstemp(dir=self.work_dir, prefix="layer-", suffix=".tar")
            os.close(fd)
            tar_path = Path(name)
            try:
                _write_layer_tar(source, tar_path, self.limits)
                layer = self.add_layer_tar(tar_path)
            finally:
                tar_path.unlink(missing_ok=True)
            return self.create([layer], config or ImageConfig(), str(ref))

    def add_layer_tar(self, tar_path: Path) -> Layer:
        """Keep the uncompressed layer tar at ``tar_path`` (moved into the store) and unpack it once.

        Inside ``writing()`` both are staged until an image using the layer is made.
        """
        diff_id = sha256_file(tar_path)
        self._unpack_once(tar_path, diff_id, tar_path.stat().st_size)
        size = tar_path.stat().st_size
        self.blobs.adopt(tar_path, diff_id)
        return Layer(diff_id, diff_id, size, spec.MEDIA_LAYER, self._layers / split_digest(diff_id))

    def create(self, layer_list: list[Layer], config: ImageConfig, reference: str | None,
               base: Image | None = None, history: Iterable[Mapping[str, Any]] = ()) -> Image:
        """An image of ``base``'s layers plus ``layer_list``; tagged ``reference`` unless None."""
        every = [*(base.layers if base else ()), *layer_list]
        config_obj = image_config_json(config, [layer.diff_id for layer in every], base.config_json if base else None,
                                       history)
        config_digest, config_size = self.blobs.put_json(config_obj)
        manifest = {
            "schemaVersion": 2,
            "mediaType": spec.MEDIA_MANIFEST,
            "config": {"mediaType": spec.MEDIA_CONFIG, "digest": config_digest, "size": config_size},
            "layers": [{"mediaType": layer.media_type, "digest": layer.digest, "size": layer.size} for layer in every],
        }
        digest, size = self.blobs.put_json(manifest)
        self._publish([digest, config_digest, *(layer.digest for layer in every)], [layer.diff_id for layer in every])
        if reference is None:
            return self._image(digest, digest)
        name = str(self._tag_reference(reference))
        self._tag(name, digest, size, spec.MEDIA_MANIFEST)
        return self._image(name, digest)

    def add_manifest(self, data: bytes, reference: str | None, what: str = "manifest") -> Image:
        """Adopt a manifest whose config and layer blobs are already in the store; unpack its layers.

        The manifest is kept byte for byte, so its digest is the one the source gave it.
        """
        manifest = spec.parse_manifest(spec.load_json(data, self.limits.manifest, what), what)
        if manifest.config.size > self.limits.config:
            raise InvalidImage(f"{what}: config of {manifest.config.size} bytes is over the bound")
        config = spec.load_json(self.blobs.read_bytes(manifest.config.digest), self.limits.config, f"{what} config")
        ids = spec.diff_ids(config)
        if len(ids) != len(manifest.layers):
            raise InvalidImage(f"{what}: {len(manifest.layers)} layers but {len(ids)} diff_ids in the config")
        for layer, diff_id in zip(manifest.layers, ids, strict=True):
            self._unpack_blob(layer, diff_id)
        digest, size = self.blobs.put_bytes(data)
        self._publish([digest, manifest.config.digest, *(layer.digest for layer in manifest.layers)], ids)
        if reference is None:
            return self._image(digest, digest)
        ref = parse_reference(reference)
        if ref.digest is not None and ref.digest != digest:
            raise InvalidImage(f"{reference} names a digest other than the manifest's ({digest})")
        self._tag(str(ref), digest, size, manifest.media_type)  # "name@digest" is kept as a reference too
        return self._image(str(ref), digest)

    def tag(self, source: str, reference: str) -> Image:
        image = self.get(source)
        name = str(self._tag_reference(reference))
        data = self.blobs.read_bytes(image.digest)
        self._tag(name, image.digest, len(data), spec.media_type_of(json.loads(data), spec.MEDIA_MANIFEST))
        return self._image(name, image.digest)

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold off sweeps while blobs being added are not yet reachable from a tag, and stage
        them (see the module docstring); a nested ``writing()`` joins the outer one."""
        if getattr(self._txn, "stage", None) is not None:
            yield
            return
        with self._gc_lock(fcntl.LOCK_SH):
            stage = Path(tempfile.mkdtemp(dir=self.tmp, prefix="txn-"))
            try:
                for d in ("blobs", "layers"):
                    (stage / d).mkdir()
                self._txn.stage = stage
                with self.blobs.staging(stage / "blobs"):
                    yield
            finally:
                self._txn.stage = None
                shutil.rmtree(stage, ignore_errors=True)

    @property
    def work_dir(self) -> Path:
        """Where work files go: this thread's transaction directory (removed with it, even after
        a crash: see ``_remove_stale_transactions``), else tmp/."""
        stage: Path | None = getattr(self._txn, "stage", None)
        return stage or self.tmp

    def _remove_stale_transactions(self) -> None:
        """Transaction directories a killed writer left: removed when no writer holds the gc lock."""
        with open(self.root / "gc.lock", "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return  # a writer is at work: its own directory is among them
            for stale in self.tmp.glob("txn-*"):
                shutil.rmtree(stale, ignore_errors=True)

    # --- reading ----------------------------------------------------------------------------

    def get(self, reference: str) -> Image:
        """By ``name:tag``, ``name@digest``, or a bare manifest digest (tagged or not)."""
        if reference.startswith("sha256:"):
            split_digest(reference)
            tagged = [name for name, digest in self._entries() if digest == reference]
            if tagged or self._is_manifest(reference):
                return self._image(tagged[0] if tagged else reference, reference)
            raise ImageNotFound(reference)
        ref = parse_reference(reference)
        for name, digest in self._entries():
            if (ref.digest is None and name == str(ref)) or (
                ref.digest == digest and parse_reference(name).name == ref.name
            ):
                return self._image(name, digest)
        raise ImageNotFound(reference)

    def list(self) -> list[Image]:
        return [self._image(name, digest) for name, digest in self._entries()]

    def references(self, digest: str) -> list[str]:
        return [name for name, d in self._entries() if d == digest]

    def manifest_bytes(self, digest: str) -> bytes:
        return self.blobs.read_bytes(digest)

    # --- build cache ------------------------------------------------------------------------

    def cache_get(self, key: str) -> Image | None:
        digest = self._read_cache().get(key)
        return self._image(digest, digest) if digest and self._is_manifest(digest) else None

    def cache_put(self, key: str, image: Image) -> None:
        with self._index_locked():
            cache = self._read_cache()
            cache[key] = image.digest
            atomic_write_json(self._cache, cache)

    # --- removal ----------------------------------------------------------------------------

    def remove(self, reference: str, usage: Usage, force: bool = False) -> list[str]:
        """Untag ``reference`` (every tag of the image when given by digest) and sweep what nothing holds.

        ImageInUse when a container uses the image and this would drop its last tag (``force``
        untags anyway; the container keeps its layers). Returns the references removed.
        """
        image = self.get(reference)
        by_digest = reference.startswith("sha256:") or "@" in reference
        names = self.references(image.digest) if by_digest else [image.reference]
        remaining = [n for n in self.references(image.digest) if n not in names]
        if not remaining and image.digest in usage.digests and not force:
            raise ImageInUse(reference, "a container uses it")
        with self._index_locked():
            index = self._read_index()
            index["manifests"] = [m for m in index["manifests"] if m.get("annotations", {}).get(spec.REF_NAME) not in names]
            atomic_write_json(self._index, index)
        self.sweep(usage)
        return names

    def prune(self, usage: Usage, all_unused: bool = False) -> tuple[list[str], Swept]:
        """Sweep unreferenced blobs and layers; with ``all_unused`` first drop the build cache and
        every tag of images no container uses."""
        removed: list[str] = []
        if all_unused:
            with self._index_locked():
                index = self._read_index()
                kept = []
                for m in index["manifests"]:
                    if m["digest"] in usage.digests:
                        kept.append(m)
                    else:
                        removed.append(m.get("annotations", {}).get(spec.REF_NAME, m["digest"]))
                index["manifests"] = kept
                atomic_write_json(self._index, index)
                atomic_write_json(self._cache, {})
        return removed, self.sweep(usage)

    def sweep(self, usage: Usage) -> Swept:
        """Delete every blob and unpacked layer not reachable from a tag, a container or the build cache."""
        with self._gc_lock(fcntl.LOCK_EX):
            roots = {d for _, d in self._entries()} | set(self._read_cache().values()) | set(usage.digests)
            keep_blobs: set[str] = set()
            keep_layers = {Path(d).name for d in usage.layer_dirs}
            for digest in roots:
                if not self._is_manifest(digest):
                    continue
                image = self._image(digest, digest)
                keep_blobs |= {digest, image.config_digest, *(layer.digest for layer in image.layers)}
                keep_layers |= {split_digest(layer.diff_id) for layer in image.layers}
            blobs = layers_removed = freed = 0
            for digest in self.blobs.digests():
                if digest not in keep_blobs:
                    freed += self.blobs.path(digest).stat().st_size
                    self.blobs.remove(digest)
                    blobs += 1
            for path in self._layers.iterdir():
                if path.name not in keep_layers:
                    shutil.rmtree(path)
                    layers_removed += 1
            return Swept(blobs, layers_removed, freed)

    # --- layers -----------------------------------------------------------------------------

    def _unpack_blob(self, layer: spec.Descriptor, diff_id: str) -> None:
        """Unpack a stored layer blob once, checking its uncompressed content against ``diff_id``."""
        if self._layer_dir(diff_id).exists():
            return
        source = self.blobs.path(layer.digest)
        if not source.exists():
            raise InvalidImage(f"layer blob {layer.digest} is not in the store")
        blob_size = source.stat().st_size
        if layer.media_type in spec.PLAIN_LAYERS:
            if layer.digest != diff_id:
                raise InvalidImage(f"uncompressed layer {layer.digest} does not match its diff_id {diff_id}")
            self._unpack_once(source, diff_id, blob_size)
            return
        fd, tmp = tempfile.mkstemp(dir=self.work_dir, prefix="layer-", suffix=".tar")
        os.close(fd)
        what = f"layer {layer.digest}"
        try:
            bound, limit = self.limits.uncompressed_bound(blob_size)
            with gzip.open(source, "rb") as stream, open(tmp, "wb") as out:
                write_verified(bounded(chunks(stream), bound, what, limit), out, diff_id, self.limits.blob,
                               f"{what} (uncompressed)")
        except (OSError, EOFError, gzip.BadGzipFile) as e:
            os.unlink(tmp)
            raise InvalidImage(f"{what} is not a readable gzip stream: {e}") from e
        except BaseException:
            os.unlink(tmp)
            raise
        try:
            self._unpack_once(Path(tmp), diff_id, blob_size)
        finally:
            os.unlink(tmp)

    def _layer_dir(self, diff_id: str) -> Path:
        """Where the unpacked layer is: staged by this thread's transaction, else in layers/."""
        stage: Path | None = getattr(self._txn, "stage", None)
        staged = None if stage is None else stage / "layers" / split_digest(diff_id)
        return staged if staged is not None and staged.exists() else self._layers / split_digest(diff_id)

    def _unpack_once(self, tar_path: Path, diff_id: str, blob_size: int) -> None:
        """Unpack into layers/<hex> (or the transaction's stage) unless there already; a rename
        makes a complete tree visible, never a partial one."""
        if self._layer_dir(diff_id).exists():
            return
        stage: Path | None = getattr(self._txn, "stage", None)
        target = (self._layers if stage is None else stage / "layers") / split_digest(diff_id)
        work = Path(tempfile.mkdtemp(dir=self.work_dir, prefix="unpack-"))
        try:
            layers.unpack(tar_path, work / "layer", self.limits, f"layer {diff_id}", blob_size)
            try:
                os.rename(work / "layer", target)
            except OSError:
                if not target.exists():
                    raise  # lost a race to an identical unpack otherwise: theirs is as good
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _publish(self, digests: Iterable[str], diff_ids: Iterable[str]) -> None:
        """Move what an image about to be made needs out of the transaction's stage into the store."""
        stage: Path | None = getattr(self._txn, "stage", None)
        if stage is None:
            return
        self.blobs.publish(digests)
        for diff_id in diff_ids:
            staged = stage / "layers" / split_digest(diff_id)
            if not staged.exists():
                continue
            try:
                os.rename(staged, self._layers / split_digest(diff_id))
            except OSError:
                if not (self._layers / split_digest(diff_id)).exists():
                    raise
                shutil.rmtree(staged)  # another writer published the same layer first

    # --- index ------------------------------------------------------------------------------

    @staticmethod
    def _tag_reference(reference: str) -> Reference:
        ref = parse_reference(reference)
        if ref.digest is not None:
            raise InvalidImage(f"a tag is needed here, not a digest: {reference}")
        return ref

    def _is_manifest(self, digest: str) -> bool:
        try:
            obj = json.loads(self.blobs.path(digest).read_bytes())
        except (OSError, ValueError):
            return False
        return isinstance(obj, dict) and spec.media_type_of(obj) in spec.MANIFEST_TYPES

    def _entries(self) -> list[tuple[str, str]]:
        return [
            (m["annotations"][spec.REF_NAME], m["digest"])
            for m in self._read_index()["manifests"]
            if spec.REF_NAME in m.get("annotations", {})
        ]

    def _read_index(self) -> dict[str, Any]:
        try:
            with open(self._index, "rb") as f:
                return dict(json.load(f))
        except FileNotFoundError:
            return {"schemaVersion": 2, "mediaType": spec.MEDIA_INDEX, "manifests": []}

    def _read_cache(self) -> dict[str, str]:
        try:
            return dict(json.loads(self._cache.read_bytes()))
        except FileNotFoundError:
            return {}

    @contextmanager
    def _index_locked(self) -> Iterator[None]:
        """Serialise index updates between threads and between processes sharing the store."""
        with self._lock, open(self.root / "index.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    @contextmanager
    def _gc_lock(self, mode: int) -> Iterator[None]:
        with open(self.root / "gc.lock", "a") as lock:
            fcntl.flock(lock, mode)
            yield

    def _tag(self, name: str, digest: str, size: int, media_type: str) -> None:
        with self._index_locked():
            index = self._read_index()
            kept = [m for m in index["manifests"] if m.get("annotations", {}).get(spec.REF_NAME) != name]
            kept.append({"mediaType": media_type, "digest": digest, "size": size, "annotations": {spec.REF_NAME: name}})
            index["manifests"] = kept
            atomic_write_json(self._index, index)

    def _image(self, name: str, digest: str) -> Image:
        manifest = spec.parse_manifest(self.blobs.read_json(digest), f"manifest {digest}")
        config = self.blobs.read_json(manifest.config.digest)
        ids = spec.diff_ids(config)
        layer_list = tuple(
            Layer(d.digest, diff_id, d.size, d.media_type, self._layers / split_digest(diff_id))
            for d, diff_id in zip(manifest.layers, ids, strict=True)
        )
        return Image(
            reference=name,
            digest=digest,
            config=image_config_from_json(config),
            layer_dirs=tuple(layer.path for layer in layer_list),
            size=sum(layer.size for layer in layer_list),
            config_digest=manifest.config.digest,
            layers=layer_list,
            config_json=config,
        )


def _write_layer_tar(source: Path, out_path: Path, limits: spec.Limits) -> None:
    """The layer blob: a deterministic tar of a directory, or the tarball's own (uncompressed) bytes,
    gunzipped within the ``ratio`` and ``blob`` limits."""
    try:
        with open(out_path, "wb") as out:
            if source.is_dir():
                layers.write_tar(source, out, max_depth=limits.path_depth)
                return
            with open(source, "rb") as f:
                compressed = f.read(2) == b"\x1f\x8b"
            bound, limit = limits.uncompressed_bound(source.stat().st_size) if compressed else (limits.blob, "blob")
            with gzip.open(source, "rb") if compressed else open(source, "rb") as f:
                for chunk in bounded(chunks(f), bound, f"rootfs source {source}", limit):
                    out.write(chunk)
    except (OSError, EOFError) as e:
        raise InvalidImage(f"cannot read rootfs source {source}: {e}") from e

