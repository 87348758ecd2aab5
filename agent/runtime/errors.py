"""The runtime's one error tree.

    RuntimeFailure                 anything the runtime refuses or fails to do
    ├── ImageNotFound              no image under that reference or digest
    ├── InvalidImage               a source or blob that is not a safe, readable image
    │   └── LimitExceeded          ... over one of the store's configured limits (``limit`` names it)
    ├── ImageInUse                 removal refused: a container still uses the image
    ├── RegistryError              a registry refused or failed a request; ``reason`` is its word
    ├── BuildError                 a Containerfile that does not parse, or a step that failed
    ├── ContainerNotFound          no container with that id
    ├── ContainerExists            the id is already taken
    ├── InvalidState               an illegal transition (e.g. start of a running container)
    ├── InvalidSpec                a container spec the runtime cannot honour (also a ValueError)
    ├── VolumeNotFound, VolumeInUse  (volumes.py) no such volume; removal of one a container holds
    ├── ExecFailed                 (execproc.py) a command could not be started in a container
    └── StartFailed                the user command could not be exec'd; ``reason`` says why

Callers check by class, never by message. Lower-level errors (OSError, tarfile.TarError,
json errors) are converted at the boundary with ``raise ... from``.
"""

from __future__ import annotations


class RuntimeFailure(Exception):
    """Base of every error the runtime raises on purpose."""


class ImageNotFound(RuntimeFailure):
    def __init__(self, reference: str) -> None:
        super().__init__(f"image not found: {reference}")
        self.reference = reference


class InvalidImage(RuntimeFailure):
    """A rootfs source or stored blob is unreadable or unsafe (e.g. a tar member escapes)."""


class LimitExceeded(InvalidImage):
    """``what`` (a layer, a blob, an archive) is over the limit named ``limit`` (a field of images.spec.Limits)."""

    def __init__(self, what: str, limit: str, bound: int, found: str) -> None:
        super().__init__(f"{what}: {found}, over the limit {limit}={bound}")
        self.what = what
        self.limit = limit
        self.bound = bound


class ImageInUse(RuntimeFailure):
    def __init__(self, reference: str, why: str) -> None:
        super().__init__(f"image {reference} is in use: {why}")
        self.reference = reference


class RegistryError(RuntimeFailure):
    def __init__(self, registry: str, reason: str, status: int = 0) -> None:
        super().__init__(f"registry {registry}: {reason}")
        self.registry = registry
        self.reason = reason
        self.status = status


class BuildError(RuntimeFailure):
    """``where`` is ``file:line: INSTRUCTION`` for parse errors and the step for failed steps."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason


class ContainerNotFound(RuntimeFailure):
    def __init__(self, container_id: str) -> None:
        super().__init__(f"container not found: {container_id}")
        self.container_id = container_id


class ContainerExists(RuntimeFailure):
    def __init__(self, container_id: str) -> None:
        super().__init__(f"container already exists: {container_id}")
        self.container_id = container_id


class InvalidState(RuntimeFailure):
    """The requested transition is not legal from the container's current status."""

    def __init__(self, container_id: str, status: str, action: str) -> None:
        super().__init__(f"cannot {action} container {container_id}: it is {status}")
        self.container_id = container_id
        self.status = status
        self.action = action


class StartFailed(RuntimeFailure):
    """The container did not reach the exec of its command; ``reason`` is the kernel's or shim's word."""

    def __init__(self, container_id: str, reason: str) -> None:
        super().__init__(f"start of container {container_id} failed: {reason}")
        self.container_id = container_id
        self.reason = reason


class InvalidSpec(RuntimeFailure, ValueError):
    """A container spec that cannot be honoured: the message names the field and the reason."""
