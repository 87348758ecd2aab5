"""Real etcd servers for development and tests: one member, or a cluster of three."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from moorage.localcluster.procs import Daemon, free_port, port_open, wait_for

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
# Faster than etcd's defaults (100 ms / 1 s) so that losing a member's
# leadership costs a test well under a second; fine on loopback.
HEARTBEAT_MS = 50
ELECTION_MS = 500


@dataclass
class Etcd:
    """One etcd member listening for clients on ``host:client_port``."""

    data_dir: Path
    host: str = "127.0.0.1"
    client_port: int = 0
    peer_port: int = 0
    name: str = "moorage-etcd"
    daemon: Daemon | None = None
    tls: bool = False  # serve clients over TLS, requiring client certificates of its own CA

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.client_port}"

    @property
    def tls_dir(self) -> Path:
        return self.data_dir / "tls"

    def client_credentials(self) -> tuple[bytes, bytes, bytes]:
        """(CA, client certificate, client key) for a client of a TLS member."""
        return tuple((self.tls_dir / name).read_bytes() for name in ("ca.crt", "client.crt", "client.key"))  # type: ignore[return-value]

    def _make_tls(self) -> list[str]:
        """A CA of its own, a server certificate for ``host`` and a client pair; etcd's TLS flags."""
        import datetime as dt

        from moorage import pki

        self.tls_dir.mkdir(parents=True, exist_ok=True)
        ca, ca_key = pki.new_ca(f"{self.name}-ca")
        files = {"ca.crt": ca}
        for role, name in (("server", "server"), ("client", "client")):
            key = pki.new_key()
            names = (self.host,) if role == "server" else ()
            cert = pki.issue(
                ca, ca_key, pki.make_csr(key, name), name=name, role=pki.CONTROLLER,
                lifetime=dt.timedelta(days=1), server_names=names,
            )  # fmt: skip
            files[f"{name}.crt"], files[f"{name}.key"] = cert, key
        for name, data in files.items():
            (self.tls_dir / name).write_bytes(data)
            (self.tls_dir / name).chmod(0o600)
        return [
            "--cert-file", str(self.tls_dir / "server.crt"), "--key-file", str(self.tls_dir / "server.key"),
            "--trusted-ca-file", str(self.tls_dir / "ca.crt"), "--client-cert-auth",
        ]  # fmt: skip

    @property
    def peer_url(self) -> str:
        return f"http://{self.host}:{self.peer_port}"

    def launch(self, initial_cluster: str | None = None) -> Etcd:
        """Start the process without waiting; ``initial_cluster`` names every member (default: only this one)."""
        self.client_port = self.client_port or free_port(self.host)
        self.peer_port = self.peer_port or free_port(self.host)
        client_url = f"{'https' if self.tls else 'http'}://{self.host}:{self.client_port}"
        argv = [
            ETCD,
            "--name", self.name,
            "--data-dir", str(self.data_dir / "data"),
            "--listen-client-urls", client_url,
            "--advertise-client-urls", client_url,
            "--listen-peer-urls", self.peer_url,
            "--initial-advertise-peer-urls", self.peer_url,
            "--initial-cluster", initial_cluster or f"{self.name}={self.peer_url}",
            "--heartbeat-interval", str(HEARTBEAT_MS),
            "--election-timeout", str(ELECTION_MS),
            "--log-level", "warn",
            *(self._make_tls() if self.tls else []),
        ]  # fmt: skip
        self.daemon = Daemon(self.name, argv, self.data_dir / "etcd.log").start()
        return self

    def wait_ready(self, timeout: float = 20.0) -> Etcd:
        daemon = self.daemon
        assert daemon is not None, f"{self.name} was not launched"

        def ready() -> bool:
            daemon.check_alive()
            return port_open(self.host, self.client_port)

        wait_for(ready, timeout, f"etcd on {self.endpoint}")
        return self

    def start(self, timeout: float = 20.0) -> Etcd:
        return self.launch().wait_ready(timeout)

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()


@dataclass
class EtcdCluster:
    """``size`` etcd members on one host, forming one cluster (three tolerate losing one)."""

    data_dir: Path
    size: int = 3
    host: str = "127.0.0.1"
    members: list[Etcd] = field(default_factory=list)

    @property
    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self.members]

    def start(self, timeout: float = 30.0) -> EtcdCluster:
        self.members = [
            Etcd(
                self.data_dir / f"member{i}",
                self.host,
                free_port(self.host),
                free_port(self.host),
                name=f"moorage-etcd-{i}",
            )
            for i in range(1, self.size + 1)
        ]
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        for member in self.members:  # all at once: each waits for a quorum of the others
            member.launch(initial)
        for member in self.members:
            member.wait_ready(timeout)
        return self

    def stop(self) -> None:
        for member in self.members:
            member.stop()
