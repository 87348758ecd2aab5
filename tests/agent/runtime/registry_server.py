"""A real OCI Distribution registry (Debian's docker-registry) for tests, on an address of the test's choosing."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from moorage.localcluster.procs import Daemon, free_port, port_open, wait_for

BINARY = shutil.which("docker-registry") or "/usr/bin/docker-registry"

CONFIG = """\
version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: {host}:{port}
"""


@dataclass(frozen=True)
class Registry:
    host: str
    port: int
    root: Path
    daemon: Daemon

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def requests(self, method: str, what: str) -> int:
        """How many ``METHOD .../what...`` requests the registry's access log shows."""
        log = self.daemon.log_path.read_text(errors="replace")
        return sum(1 for line in log.splitlines() if f'"{method} /v2/' in line and what in line)


@contextmanager
def running_registry(base: Path, host: str = "127.0.0.1") -> Iterator[Registry]:
    """Start docker-registry on ``host`` with its storage under ``base``; stopped on leaving, also on failure."""
    base.mkdir(parents=True, exist_ok=True)
    port = free_port(host)
    config = base / "config.yml"
    config.write_text(CONFIG.format(root=base / "storage", host=host, port=port))
    daemon = Daemon("moorage-registry", [BINARY, "serve", str(config)], base / "registry.log").start()
    try:
        wait_for(lambda: daemon.check_alive() is None and port_open(host, port), 20, "the registry to listen")
        yield Registry(host, port, base / "storage", daemon)
    finally:
        daemon.stop()
