"""A real etcd server (single member) for development and tests."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from moorage.localcluster.procs import Daemon, free_port, port_open, wait_for

ETCD = shutil.which("etcd") or "/usr/bin/etcd"


@dataclass
class Etcd:
    """One etcd member listening for clients on ``host:client_port``."""

    data_dir: Path
    host: str = "127.0.0.1"
    client_port: int = 0
    peer_port: int = 0
    name: str = "moorage-etcd"
    daemon: Daemon | None = None

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.client_port}"

    def start(self, timeout: float = 20.0) -> Etcd:
        self.client_port = self.client_port or free_port(self.host)
        self.peer_port = self.peer_port or free_port(self.host)
        client_url = f"http://{self.host}:{self.client_port}"
        peer_url = f"http://{self.host}:{self.peer_port}"
        argv = [
            ETCD,
            "--name", self.name,
            "--data-dir", str(self.data_dir / "data"),
            "--listen-client-urls", client_url,
            "--advertise-client-urls", client_url,
            "--listen-peer-urls", peer_url,
            "--initial-advertise-peer-urls", peer_url,
            "--initial-cluster", f"{self.name}={peer_url}",
            "--log-level", "warn",
        ]  # fmt: skip
        self.daemon = Daemon(self.name, argv, self.data_dir / "etcd.log").start()
        daemon = self.daemon

        def ready() -> bool:
            daemon.check_alive()
            return port_open(self.host, self.client_port)

        wait_for(ready, timeout, f"etcd on {self.endpoint}")
        return self

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()
