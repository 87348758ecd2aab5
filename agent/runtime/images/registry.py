"""Pull and push images over the OCI Distribution API (httpx for the HTTP).

    pull: GET manifest (tag or digest) → index? pick linux/<arch> → GET each blob the store
          lacks, streamed into BlobStore.ingest (checked against its digest and size bound)
          → adopt the manifest byte for byte, so the local digest is the registry's.
    push: HEAD each blob; upload only those the registry lacks (POST + monolithic PUT);
          PUT the manifest under the tag (or digest).

Names: ``host[:port]/repo[:tag|@digest]`` names its registry; an unqualified name goes to
the default registry of RegistrySettings. Registries in ``insecure`` (and loopback ones)
are spoken to over plain HTTP, as Docker's insecure-registries. Auth: anonymous, then on a
401 the challenge is answered: Bearer tokens from the realm (with basic credentials when
given), or Basic. Registry errors carry the registry's own code and message.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import httpx

from agent.runtime.images import spec
from agent.runtime.images.blobs import chunks, sha256_bytes
from agent.runtime.errors import ImageNotFound, InvalidImage, RegistryError
from agent.runtime.images.store import Image, ImageStore, parse_reference

ACCEPT = ", ".join([spec.MEDIA_MANIFEST, spec.DOCKER_MANIFEST, spec.MEDIA_INDEX, spec.DOCKER_LIST])
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


class Progress(Protocol):
    """What a pull or push reports per blob; the CLI draws it with Rich, tests record it."""

    def start(self, digest: str, total: int) -> None: ...

    def advance(self, digest: str, amount: int) -> None: ...

    def done(self, digest: str, skipped: bool) -> None: ...


class _Silent:
    def start(self, digest: str, total: int) -> None:
        pass

    def advance(self, digest: str, amount: int) -> None:
        pass

    def done(self, digest: str, skipped: bool) -> None:
        pass


@dataclass(frozen=True)
class RegistrySettings:
    default: str | None = None  # HOST:PORT for names without a registry part
    insecure: frozenset[str] = frozenset()  # HOST:PORT or CIDR spoken to over plain HTTP (as Docker's)
    username: str | None = None
    password: str | None = None
    timeout: float = 60.0

    def scheme(self, registry: str) -> str:
        """http for loopback and insecure registries (HOST:PORT, or a CIDR its address is in), else https."""
        host = registry.rsplit(":", 1)[0] if not registry.startswith("[") else registry.partition("]")[0][1:]
        try:
            address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
        except ValueError:
            address = None
        networks = [ipaddress.ip_network(n, strict=False) for n in self.insecure if "/" in n]
        insecure = (
            registry in self.insecure
            or host == "localhost"
            or (address is not None and (address.is_loopback or any(address in n for n in networks)))
        )
        return "http" if insecure else "https"


@dataclass(frozen=True)
class Remote:
    registry: str
    repository: str
    tag: str | None
    digest: str | None

    @property
    def reference(self) -> str:
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        sep = "@" if self.digest else ":"
        return f"{self.registry}/{self.repository}{sep}{self.reference}"


def resolve(reference: str, settings: RegistrySettings) -> Remote:
    """Where ``reference`` lives: its own registry part, else the default registry."""
    ref = parse_reference(reference)
    first, _, rest = ref.name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, repository = first, rest
    elif settings.default:
        registry, repository = settings.default, ref.name
    else:
        raise RegistryError("(none)", f"{reference} names no registry and no default registry is set")
    return Remote(registry, repository, ref.tag, ref.digest)


def has_registry(reference: str) -> bool:
    first, _, rest = parse_reference(reference).name.partition("/")
    return bool(rest) and ("." in first or ":" in first or first == "localhost")


@dataclass
class RegistryClient:
    settings: RegistrySettings = field(default_factory=RegistrySettings)
    _tokens: dict[tuple[str, str], str] = field(default_factory=dict)

    # --- pull -------------------------------------------------------------------------------

    def pull(self, store: ImageStore, reference: str, local_name: str | None = None,
             progress: Progress | None = None) -> Image:
        """Fetch ``reference`` into ``store``; tagged ``local_name`` (default: ``reference``'s tag form)."""
        progress = progress or _Silent()
        remote = resolve(reference, self.settings)
        with httpx.Client(timeout=self.settings.timeout, follow_redirects=True) as http, store.writing():
            data = self._manifest(http, store, remote, remote.reference)
            obj = spec.load_json(data, store.limits.manifest, f"manifest of {remote}")
            if spec.media_type_of(obj) in spec.INDEX_TYPES:
                chosen = spec.pick_platform(spec.parse_index(obj, f"index of {remote}"), f"index of {remote}")
                data = self._manifest(http, store, remote, chosen.digest)
                obj = spec.load_json(data, store.limits.manifest, f"manifest of {remote}")
            manifest = spec.parse_manifest(obj, f"manifest of {remote}")
            self._fetch_blob(http, store, remote, manifest.config, store.limits.config, progress)
            for layer in manifest.layers:
                self._fetch_blob(http, store, remote, layer, store.limits.blob, progress)
            return store.add_manifest(data, local_name or reference, f"manifest of {remote}")

    def _manifest(self, http: httpx.Client, store: ImageStore, remote: Remote, ref: str) -> bytes:
        url = self._url(remote, f"manifests/{ref}")
        with self._send(http, "GET", url, remote, headers={"Accept": ACCEPT}) as response:
            data = _read_bounded(response, store.limits.manifest, f"manifest of {remote}")
            served = response.headers.get("Docker-Content-Digest")
        expected = ref if ref.startswith("sha256:") else served
        if expected is not None and sha256_bytes(data) != expected:
            raise InvalidImage(f"manifest of {remote} has digest {sha256_bytes(data)}, expected {expected}")
        return data

    def _fetch_blob(self, http: httpx.Client, store: ImageStore, remote: Remote, blob: spec.Descriptor, bound: int,
                    progress: Progress) -> None:
        if store.blobs.exists(blob.digest):
            progress.done(blob.digest, skipped=True)
            return
        if blob.size > bound:
            raise InvalidImage(f"blob {blob.digest} of {remote} is {blob.size} bytes, over the bound of {bound}")
        progress.start(blob.digest, blob.size)
        with self._send(http, "GET", self._url(remote, f"blobs/{blob.digest}"), remote) as response:
            store.blobs.ingest(response.iter_bytes(), blob.digest, min(bound, blob.size),
                               f"blob {blob.digest} of {remote}", lambda n: progress.advance(blob.digest, n))
        progress.done(blob.digest, skipped=False)

    # --- push -------------------------------------------------------------------------------

    def push(self, store: ImageStore, local: str, reference: str | None = None,
             progress: Progress | None = None) -> str:
        """Upload ``local`` as ``reference`` (default: the same name); return the manifest digest."""
        progress = progress or _Silent()
        image = store.get(local)
        remote = resolve(reference or local, self.settings)
        if remote.digest is not None and remote.digest != image.digest:
            raise RegistryError(remote.registry, f"{local} is {image.digest}, not {remote.digest}")
        data = store.manifest_bytes(image.digest)
        media_type = spec.media_type_of(spec.load_json(data, store.limits.manifest, "manifest"), spec.MEDIA_MANIFEST)
        with httpx.Client(timeout=self.settings.timeout, follow_redirects=True) as http:
            for digest, size in [(layer.digest, layer.size) for layer in image.layers] + [
                (image.config_digest, store.blobs.path(image.config_digest).stat().st_size)
            ]:
                self._push_blob(http, store.blobs.path(digest), digest, size, remote, progress)
            url = self._url(remote, f"manifests/{remote.reference}")
            with self._send(http, "PUT", url, remote, headers={"Content-Type": media_type}, content=data) as response:
                response.read()
        return image.digest

    def _push_blob(self, http: httpx.Client, path: Path, digest: str, size: int, remote: Remote,
                   progress: Progress) -> None:
        with self._send(http, "HEAD", self._url(remote, f"blobs/{digest}"), remote, ok=(200, 404)) as found:
            if found.status_code == 200:
                progress.done(digest, skipped=True)
                return
        progress.start(digest, size)
        with self._send(http, "POST", self._url(remote, "blobs/uploads/"), remote) as started:
            location = started.headers.get("Location")
        if not location:
            raise RegistryError(remote.registry, "upload started without a Location")
        target = httpx.URL(self._url(remote, "")).join(location).copy_merge_params({"digest": digest})

        def body() -> Iterator[bytes]:
            with open(path, "rb") as f:
                for chunk in chunks(f):
                    progress.advance(digest, len(chunk))
                    yield chunk

        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        with self._send(http, "PUT", str(target), remote, headers=headers, content=body()) as response:
            response.read()
        progress.done(digest, skipped=False)

    # --- HTTP -------------------------------------------------------------------------------

    def _url(self, remote: Remote, path: str) -> str:
        return f"{self.settings.scheme(remote.registry)}://{remote.registry}/v2/{remote.repository}/{path}"

    def _send(self, http: httpx.Client, method: str, url: str, remote: Remote, *, ok: tuple[int, ...] = (),
              headers: dict[str, str] | None = None, content: bytes | Iterator[bytes] | None = None) -> _Response:
        """Send, answering an auth challenge once; RegistryError with the registry's reason on failure."""
        scope = f"repository:{remote.repository}:{'pull' if method in ('GET', 'HEAD') else 'pull,push'}"
        headers = dict(headers or {})
        token = self._tokens.get((remote.registry, scope))
        if token:
            headers["Authorization"] = token
        try:
            response = http.send(http.build_request(method, url, headers=headers, content=content), stream=True)
            if response.status_code == 401 and not isinstance(content, Iterator):
                challenge = response.headers.get("WWW-Authenticate", "")
                response.close()
                headers["Authorization"] = self._authorize(http, remote, challenge, scope)
                response = http.send(http.build_request(method, url, headers=headers, content=content), stream=True)
        except httpx.HTTPError as e:
            raise RegistryError(remote.registry, f"{method} {url}: {e}") from e
        if response.status_code >= 400 and response.status_code not in ok:
            reason = _reason(response)
            response.close()
            raise RegistryError(remote.registry, f"{remote}: {reason}", response.status_code)
        return _Response(response)

    def _authorize(self, http: httpx.Client, remote: Remote, challenge: str, scope: str) -> str:
        scheme, _, params = challenge.partition(" ")
        creds = None
        if self.settings.username is not None:
            pair = f"{self.settings.username}:{self.settings.password or ''}".encode()
            creds = "Basic " + base64.b64encode(pair).decode()
        if scheme.lower() == "basic":
            if creds is None:
                raise RegistryError(remote.registry, "authentication required (basic) and no credentials given", 401)
            value = creds
        elif scheme.lower() == "bearer":
            fields = dict(_CHALLENGE.findall(params))
            if "realm" not in fields:
                raise RegistryError(remote.registry, f"bearer challenge without a realm: {challenge}", 401)
            query = {k: v for k, v in (("service", fields.get("service")), ("scope", fields.get("scope", scope))) if v}
            answer = http.get(fields["realm"], params=query, headers={"Authorization": creds} if creds else None)
            if answer.status_code != 200:
                raise RegistryError(remote.registry, f"token request refused: {_reason(answer)}", answer.status_code)
            body = answer.json()
            value = "Bearer " + str(body.get("token") or body.get("access_token") or "")
        else:
            raise RegistryError(remote.registry, f"unsupported authentication challenge: {challenge!r}", 401)
        self._tokens[(remote.registry, scope)] = value
        return value


class _Response:
    """A streamed response closed on leaving the ``with``."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response

    def __enter__(self) -> httpx.Response:
        return self.response

    def __exit__(self, *exc: object) -> None:
        self.response.close()


def _read_bounded(response: httpx.Response, bound: int, what: str) -> bytes:
    data = bytearray()
    for chunk in response.iter_bytes():
        data += chunk
        if len(data) > bound:
            raise InvalidImage(f"{what} is over the bound of {bound} bytes")
    return bytes(data)


def _reason(response: httpx.Response) -> str:
    """The registry's own words: its error codes and messages, else the HTTP status."""
    try:
        response.read()
        errors = response.json().get("errors") or []
        words = [f"{e.get('code', '')}: {e.get('message', '')}".strip(": ") for e in errors if isinstance(e, dict)]
        if words:
            return "; ".join(words)
    except (ValueError, AttributeError, httpx.HTTPError):
        pass
    return f"HTTP {response.status_code} {response.reason_phrase}"



def ensure_image(store: ImageStore, reference: str, settings: RegistrySettings) -> Image:
    """The image from the store, pulled first when it is missing and some registry can serve it.

    ImageNotFound when it is missing and no registry is known for it; RegistryError (with the
    registry's reason) or InvalidImage when the pull fails.
    """
    try:
        return store.get(reference)
    except ImageNotFound:
        if not (has_registry(reference) or settings.default):
            raise
    return RegistryClient(settings).pull(store, reference)
