"""The container runtime: an OCI-shaped image store and overlayfs + namespace containers.

Synchronous and blocking by design; the agent calls it through ``asyncio.to_thread``.

The public names load lazily (PEP 562): the shim, which runs as ``python -m
agent.runtime.containers.shim`` for every container start, imports only what it uses, not the image
store and the Runtime class.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.runtime.containers.cgroups import Limits
    from agent.runtime.containers.containers import (
        ContainerSpec,
        ContainerState,
        DeviceSpec,
        LogRecord,
        MountSpec,
        Runtime,
    )
    from agent.runtime.errors import (
        ContainerExists,
        ContainerNotFound,
        ImageNotFound,
        InvalidImage,
        InvalidSpec,
        InvalidState,
        RuntimeFailure,
        StartFailed,
    )
    from agent.runtime.containers.execproc import ExecFailed, ExecProcess
    from agent.runtime.containers.restart import RestartPolicy
    from agent.runtime.containers.volumes import VolumeInUse, VolumeNotFound
    from agent.runtime.images.store import Image, ImageConfig, ImageStore
    from agent.runtime.containers.lifecycle import ContainerStatus

_HOME = {
    "ContainerSpec": "containers.containers",
    "MountSpec": "containers.containers",
    "DeviceSpec": "containers.containers",
    "Limits": "containers.cgroups",
    "InvalidSpec": "errors",
    "ExecFailed": "containers.execproc",
    "ExecProcess": "containers.execproc",
    "RestartPolicy": "containers.restart",
    "VolumeInUse": "containers.volumes",
    "VolumeNotFound": "containers.volumes",
    "ContainerState": "containers.containers",
    "LogRecord": "containers.containers",
    "Runtime": "containers.containers",
    "ContainerExists": "errors",
    "ContainerNotFound": "errors",
    "ImageNotFound": "errors",
    "InvalidImage": "errors",
    "InvalidState": "errors",
    "RuntimeFailure": "errors",
    "StartFailed": "errors",
    "Image": "images.store",
    "ImageConfig": "images.store",
    "ImageStore": "images.store",
    "ContainerStatus": "containers.lifecycle",
}

__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"agent.runtime.{_HOME[name]}"), name)
