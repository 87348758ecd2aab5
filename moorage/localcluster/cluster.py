"""A one-machine cluster: etcd, a controller, and agents on namespace hosts.

Everything it creates is written down in a ledger under LEDGER_DIR as it is
created, so that `stop()` — or the next run, when this one crashed — removes
exactly what was made: processes by PID (checked against their start time),
containers through the runtime, network namespaces, links and directories.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from moorage.localcluster import network
from moorage.localcluster.etcd import Etcd
from moorage.localcluster.procs import Daemon, free_port, port_open, wait_for
from moorage.v1 import control_pb2, control_pb2_grpc, types_pb2

LEDGER_DIR = Path("/run/moorage-localcluster")
MOOR = str(Path(sys.executable).parent / "moor")
NSENTER = shutil.which("nsenter") or "/usr/bin/nsenter"


def process_start_time(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), or None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def short_id(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if number == 0:
            return out


@dataclass
class Ledger:
    """What a cluster created, persisted so a later run can clean up after a crash."""

    path: Path
    owner_pid: int
    owner_start: int | None
    persistent: bool
    base: str
    daemons: list[dict[str, int]] = field(default_factory=list)
    netns: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    state_dirs: list[str] = field(default_factory=list)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {k: v for k, v in self.__dict__.items() if k != "path"}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self.path)

    @classmethod
    def load(cls, path: Path) -> Ledger:
        return cls(path=path, **json.loads(path.read_text()))

    def owner_alive(self) -> bool:
        return process_start_time(self.owner_pid) == self.owner_start

    def clean(self) -> None:
        """Remove everything recorded, most dependent first; tolerate what is already gone."""
        for entry in reversed(self.daemons):
            if process_start_time(entry["pid"]) == entry["start"]:
                try:
                    os.killpg(entry["pid"], signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for state_dir in self.state_dirs:
            remove_containers(Path(state_dir))
        for name in self.netns:
            network.remove_netns(name)
        for link in self.links:
            network.remove_link(link)
        shutil.rmtree(self.base, ignore_errors=True)
        self.path.unlink(missing_ok=True)


def remove_containers(state_dir: Path) -> None:
    """Force-remove every container an agent left in ``state_dir``."""
    if not (state_dir / "containers").exists():
        return
    from agent.runtime.containers import Runtime
    from agent.runtime.images import ImageStore

    runtime = Runtime(state_dir, ImageStore(state_dir / "images"))
    for container in runtime.list():
        runtime.remove(container.id, force=True)


def reap_stale() -> None:
    """Clean up after earlier runs whose owner died without cleaning (never a persistent demo)."""
    if not LEDGER_DIR.exists():
        return
    for path in LEDGER_DIR.glob("*.json"):
        ledger = Ledger.load(path)
        if not ledger.persistent and not ledger.owner_alive():
            ledger.clean()


_counter = 0


@dataclass
class AgentHost:
    name: str
    host: network.Host
    state_dir: Path
    daemon: Daemon | None = None


class LocalCluster:
    """etcd + one controller + ``hosts`` agents, each agent in its own network namespace."""

    def __init__(
        self,
        base: Path,
        hosts: int = 2,
        *,
        name: str | None = None,
        extra_listen: tuple[str, ...] = (),
        persistent: bool = False,
        image_sources: dict[str, Path] | None = None,
    ) -> None:
        global _counter
        _counter += 1
        self.id = name or short_id(os.getpid() * 100 + _counter)
        assert "moorage" in str(base), "state must live under a path containing 'moorage' (leak checks look for it)"
        self.base = base
        self.host_count = hosts
        self.extra_listen = extra_listen
        self.image_sources = image_sources or {}
        self.ledger = Ledger(
            path=LEDGER_DIR / f"{self.id}.json",
            owner_pid=os.getpid(),
            owner_start=process_start_time(os.getpid()),
            persistent=persistent,
            base=str(base),
        )
        self.etcd = Etcd(base / "etcd")
        self.net: network.TestNetwork | None = None
        self.controller: Daemon | None = None
        self.controller_port = 0
        self.agents: list[AgentHost] = []

    # -- addresses ---------------------------------------------------------------
    @property
    def controller_address(self) -> str:
        assert self.net is not None
        return f"{self.net.gateway}:{self.controller_port}"

    def cli_env(self) -> dict[str, str]:
        return {**os.environ, "MOOR_CONTROLLER": self.controller_address}

    # -- lifecycle ---------------------------------------------------------------
    def _track(self, daemon: Daemon) -> Daemon:
        self.ledger.daemons.append({"pid": daemon.pid, "start": process_start_time(daemon.pid) or 0})
        self.ledger.save()
        return daemon

    def start(self, timeout: float = 30.0) -> LocalCluster:
        reap_stale()
        self.base.mkdir(parents=True, exist_ok=True)
        self.ledger.save()
        try:
            self.etcd.start()
            assert self.etcd.daemon is not None
            self._track(self.etcd.daemon)
            self.net = network.TestNetwork(f"moorb{self.id}", network.free_subnet())
            self.ledger.links.append(self.net.bridge)
            self.ledger.save()
            self.net.create()
            self._start_controller(timeout)
            for index in range(1, self.host_count + 1):
                self.add_host(index)
            self.wait_nodes_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_controller(self, timeout: float) -> None:
        assert self.net is not None
        self.controller_port = free_port(self.net.gateway)
        listen = [self.controller_address, *self.extra_listen]
        argv = [MOOR, "controller", "--etcd", self.etcd.endpoint]
        for address in listen:
            argv += ["--listen", address]
        self.controller = self._track(Daemon("controller", argv, self.base / "controller.log").start())
        controller = self.controller

        def ready() -> bool:
            controller.check_alive()
            return port_open(self.net.gateway, self.controller_port)  # type: ignore[union-attr]

        wait_for(ready, timeout, "the controller to listen")

    def add_host(self, index: int) -> AgentHost:
        assert self.net is not None
        name = f"h{index}"
        ns_name, veth = f"moor-{self.id}-{name}", f"moorv{self.id}{name}"
        self.ledger.netns.append(ns_name)
        self.ledger.links.append(veth)
        state_dir = self.base / "hosts" / name / "state"
        self.ledger.state_dirs.append(str(state_dir))
        self.ledger.save()
        agent = AgentHost(name, self.net.add_host(ns_name, veth), state_dir)
        state_dir.mkdir(parents=True, exist_ok=True)
        for reference, source in self.image_sources.items():
            import_image(state_dir, source, reference)
        self.agents.append(agent)
        self.start_agent(agent)
        return agent

    def start_agent(self, agent: AgentHost) -> None:
        argv = [
            NSENTER, f"--net=/run/netns/{agent.host.name}", "--",
            MOOR, "agent",
            "--controller", self.controller_address,
            "--state-dir", str(agent.state_dir),
            "--node-id", agent.name,
            "--address", agent.host.address,
        ]  # fmt: skip
        agent.daemon = self._track(Daemon(f"agent-{agent.name}", argv, agent.state_dir.parent / "agent.log").start())

    def stop_agent(self, agent: AgentHost, sig: int = signal.SIGTERM) -> None:
        if agent.daemon is not None:
            agent.daemon.stop(sig)

    def wait_nodes_ready(self, timeout: float = 30.0) -> None:
        wanted = {agent.name for agent in self.agents}

        def ready() -> bool:
            for agent in self.agents:
                if agent.daemon is not None:
                    agent.daemon.check_alive()
            nodes = self.control().ListNodes(control_pb2.ListNodesRequest(), timeout=5).nodes
            return wanted <= {n.id for n in nodes if n.state == types_pb2.NODE_STATE_READY}

        wait_for(ready, timeout, f"nodes {sorted(wanted)} to be ready", interval=0.05)

    def control(self) -> control_pb2_grpc.ControlStub:
        if not hasattr(self, "_channel"):
            self._channel = grpc.insecure_channel(self.controller_address)
        return control_pb2_grpc.ControlStub(self._channel)

    def stop(self) -> None:
        """End every process, container, namespace and link this cluster made."""
        if hasattr(self, "_channel"):
            self._channel.close()
            del self._channel
        for agent in self.agents:
            self.stop_agent(agent)
        if self.controller is not None:
            self.controller.stop()
        self.etcd.stop()
        self.ledger.clean()

    def logs(self) -> str:
        """Every daemon's last log lines, for a failing test's report."""
        parts = []
        for daemon in [self.controller, *(a.daemon for a in self.agents)]:
            if daemon is not None:
                parts.append(f"--- {daemon.name} ---\n{daemon.tail(40)}")
        return "\n".join(parts)


def import_image(state_dir: Path, source: Path, reference: str) -> None:
    from agent.runtime.images import ImageStore

    ImageStore(state_dir / "images").import_rootfs(source, reference)


