"""The container runtime: an OCI-shaped image store and overlayfs + namespace containers.

Synchronous and blocking by design; the agent calls it through ``asyncio.to_thread``.
"""

from agent.runtime.containers import ContainerSpec, ContainerState, LogRecord, Runtime
from agent.runtime.errors import (
    ContainerExists,
    ContainerNotFound,
    ImageNotFound,
    InvalidImage,
    InvalidState,
    RuntimeFailure,
    StartFailed,
)
from agent.runtime.images import Image, ImageConfig, ImageStore
from agent.runtime.lifecycle import ContainerStatus

__all__ = [
    "ContainerExists",
    "ContainerNotFound",
    "ContainerSpec",
    "ContainerState",
    "ContainerStatus",
    "Image",
    "ImageConfig",
    "ImageNotFound",
    "ImageStore",
    "InvalidImage",
    "InvalidState",
    "LogRecord",
    "Runtime",
    "RuntimeFailure",
    "StartFailed",
]
