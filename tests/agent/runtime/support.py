"""Helpers shared by the runtime tests."""

from __future__ import annotations

from collections.abc import Mapping

from agent.runtime.containers.procinfo import read_stat

from agent.runtime import ContainerSpec, Runtime

MARKER = "etc/moorage-marker"  # a file only the test image has
IMAGE_ENV = ("IMAGE_VAR=from-image", "OVERRIDE=from-image")


def sh(name: str, script: str, env: Mapping[str, str] | None = None, grace: float = 10.0) -> ContainerSpec:
    """A busybox container running ``sh -c script``."""
    return ContainerSpec(
        name=name, image="busybox", args=("sh", "-c", script), env=dict(env or {}), stop_grace_period=grace
    )


def lines(runtime: Runtime, container_id: str, stream: str | None = None) -> list[str]:
    return [r.line for r in runtime.read_logs(container_id) if stream is None or r.stream == stream]


def gone(pid: int) -> bool:
    """The process has ended (a zombie counts as ended)."""
    stat = read_stat(pid)
    return stat is None or stat[0] in ("Z", "X")
