"""Helpers shared by the runtime tests."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from collections.abc import Mapping
from pathlib import Path

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


class HostFiles:
    """Sentinel files outside every store, and a check that nothing of ``area`` changed but ``allowed``.

    ``secret`` is a 0600 file, ``tool`` a root-owned 0755 copy of /usr/bin/id (what a setuid
    bit planted on the host would turn into a root shell), ``dir`` a 0700 directory.
    """

    def __init__(self, area: Path) -> None:
        self.area = area
        self.root = area / "moorage-host"
        self.root.mkdir()
        self.secret = self.root / "secret.txt"
        self.secret.write_text("host secret\n")
        self.secret.chmod(0o600)
        self.tool = self.root / "id"
        shutil.copyfile("/usr/bin/id", self.tool)
        self.tool.chmod(0o755)
        self.dir = self.root / "private"
        self.dir.mkdir(mode=0o700)
        (self.dir / "inner.txt").write_text("inner\n")
        os.utime(self.secret, (1_500_000_000, 1_500_000_000))

    def snapshot(self, allowed: tuple[Path, ...] = ()) -> dict[str, tuple[object, ...]]:
        """Every entry under ``area`` (``allowed`` trees left out): type, mode, owner, mtime, content."""
        found: dict[str, tuple[object, ...]] = {}
        for path in [self.area, *self.area.rglob("*")]:
            if any(path == a or path.is_relative_to(a) for a in allowed):
                continue
            st = path.lstat()
            content: object = None
            if stat.S_ISREG(st.st_mode):
                content = hashlib.sha256(path.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                content = os.readlink(path)
            found[str(path)] = (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, content)
        return found
