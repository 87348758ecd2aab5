"""A one-machine cluster: etcd, controllers, and agents on namespace hosts.

It also injects the faults the fault tests need: kill a whole host (its agent
and every process of its containers), kill or restart only an agent, cut a
host off the network and heal it, kill a controller or an etcd member.

Everything it creates is written down in a ledger under LEDGER_DIR as it is
created, so that `stop()` — or the next run, when this one crashed — removes
exactly what was made: processes by PID (checked against their start time),
containers through the runtime, network namespaces, links and directories.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from moorage import tlsconfig
from moorage.localcluster import network
from moorage.localcluster.etcd import Etcd, EtcdCluster
from moorage.localcluster.procs import Daemon, free_port_pair, port_open, wait_for
from moorage.tlsconfig import ClientTLS
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
    """Force-remove every container an agent left in ``state_dir``, its cgroup parent and the network pins.

    A pin is the last holder of a container's namespace: dropping it removes the
    namespace and its veth; NAT rules and routes go with the host's namespace.
    """
    from agent.network.links import remove_netns
    from agent.network.records import Records
    from agent.runtime.containers.containers import Runtime
    from agent.runtime.images.store import ImageStore

    if (state_dir / "containers").exists():
        Runtime(state_dir, ImageStore(state_dir / "images")).release()
    if (state_dir / "network").exists():
        for attachment in Records(state_dir / "network").all():
            if attachment.netns:
                remove_netns(Path(attachment.netns))


def reap_stale() -> None:
    """Clean up after earlier runs whose owner died without cleaning (never a persistent demo)."""
    if not LEDGER_DIR.exists():
        return
    for path in LEDGER_DIR.glob("*.json"):
        ledger = Ledger.load(path)
        if not ledger.persistent and not ledger.owner_alive():
            ledger.clean()


_counter = 0


def processes_of_netns(ns_name: str) -> set[int]:
    """Every live process in network namespace ``ns_name``, and all their descendants."""
    target = os.stat(f"/run/netns/{ns_name}").st_ino
    parents: dict[int, int] = {}
    inside: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if stat[0] == "Z":
                continue
            parents[pid] = int(stat[1])
            if os.stat(entry / "ns" / "net").st_ino == target:
                inside.add(pid)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    found = set(inside)
    grew = True
    while grew:
        children = {pid for pid, parent in parents.items() if parent in found} - found
        found |= children
        grew = bool(children)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"  # this machine's PID 1 leaves orphans' zombies


@dataclass
class AgentHost:
    name: str
    host: network.Host
    state_dir: Path
    daemon: Daemon | None = None


@dataclass
class ControllerProc:
    name: str
    address: str
    daemon: Daemon


class LocalCluster:
    """etcd (one member or ``etcd_members``), ``controllers`` controllers and
    ``hosts`` agents, each agent in its own network namespace."""

    def __init__(
        self,
        base: Path,
        hosts: int = 2,
        *,
        name: str | None = None,
        extra_listen: tuple[str, ...] = (),
        persistent: bool = False,
        image_sources: dict[str, Path] | None = None,
        controllers: int = 1,
        etcd_members: int = 1,
        node_ttl: float | None = None,
        node_cert_ttl: float | None = None,
        insecure: bool = False,
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
        self.etcd_cluster = EtcdCluster(base / "etcd-cluster", etcd_members) if etcd_members > 1 else None
        self.net: network.TestNetwork | None = None
        self.controller_count = controllers
        self.node_ttl = node_ttl
        self.node_cert_ttl = node_cert_ttl
        self.insecure = insecure  # plaintext, no certificates (`--insecure`): only to measure what TLS costs
        self.controllers: list[ControllerProc] = []
        self.agents: list[AgentHost] = []
        self._channels: dict[str, grpc.Channel] = {}
        self.admin: ClientTLS | None = None  # the admin credentials `moor cluster init` would give (set at start)
        self.worker_token = ""

    # -- addresses ---------------------------------------------------------------
    @property
    def etcd_endpoints(self) -> list[str]:
        return self.etcd_cluster.endpoints if self.etcd_cluster is not None else [self.etcd.endpoint]

    @property
    def etcd_daemons(self) -> list[Daemon]:
        members = self.etcd_cluster.members if self.etcd_cluster is not None else [self.etcd]
        return [m.daemon for m in members if m.daemon is not None]

    @property
    def controller_address(self) -> str:
        """The first controller's address (with several: ``controller_addresses``)."""
        return self.controllers[0].address

    @property
    def controller_addresses(self) -> list[str]:
        return [c.address for c in self.controllers]

    @property
    def config_path(self) -> Path:
        """The admin's `moor` config for this cluster (controllers, CA, certificate, key)."""
        return self.base / "moor" / "config.yaml"

    def cli_env(self) -> dict[str, str]:
        env = {**os.environ, "MOOR_CONTROLLER": ",".join(self.controller_addresses), "MOOR_CONFIG": str(self.config_path)}
        return {**env, "MOOR_INSECURE": "1"} if self.insecure else env

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
            if self.etcd_cluster is not None:
                self.etcd_cluster.start()
            else:
                self.etcd.start()
            for daemon in self.etcd_daemons:
                self._track(daemon)
            self.net = network.TestNetwork(f"moorb{self.id}", network.free_subnet())
            self.ledger.links.append(self.net.bridge)
            self.ledger.save()
            self.net.create()
            if not self.insecure:
                self._init_identity()
            for index in range(1, self.controller_count + 1):
                self._start_controller(index, timeout)
            if not self.insecure:
                self._write_config()
            for index in range(1, self.host_count + 1):
                self.add_host(index)
            self.wait_nodes_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _init_identity(self) -> None:
        """What `moor cluster init` does: the cluster CA in etcd, an admin certificate, the worker token."""
        import asyncio

        from controller.identity import bootstrap
        from controller.store import Store

        async def run() -> None:
            store = await Store.connect(self.etcd_endpoints)
            try:
                made = await bootstrap(store, cluster_id=f"moorage-{self.id}")
            finally:
                await store.close()
            self.admin = ClientTLS(made.ca, made.admin_cert, made.admin_key)
            self.worker_token = made.worker_token

        asyncio.run(run())

    def _write_config(self) -> None:
        from moorage.cli.config import write

        assert self.admin is not None and self.admin.cert is not None and self.admin.key is not None
        write(self.config_path, self.controller_addresses, self.admin.ca, self.admin.cert, self.admin.key, name="admin")

    def _start_controller(self, index: int, timeout: float) -> None:
        assert self.net is not None
        gateway = self.net.gateway
        port = free_port_pair(gateway)
        listen = [f"{gateway}:{port}", *(self.extra_listen if index == 1 else ())]
        argv = [MOOR, "controller", "--id", f"c{index}"]
        for endpoint in self.etcd_endpoints:
            argv += ["--etcd", endpoint]
        for address in listen:
            argv += ["--listen", address]
        if self.node_ttl is not None:
            argv += ["--node-ttl", str(self.node_ttl)]
        if self.node_cert_ttl is not None:
            argv += ["--node-cert-ttl", str(self.node_cert_ttl)]
        if self.insecure:
            argv.append("--insecure")
        log_path = self.base / ("controller.log" if index == 1 else f"controller{index}.log")
        daemon = self._track(Daemon(f"controller-c{index}", argv, log_path).start())
        self.controllers.append(ControllerProc(f"c{index}", listen[0], daemon))

        def ready() -> bool:
            daemon.check_alive()
            return port_open(gateway, port)

        wait_for(ready, timeout, f"controller c{index} to listen")

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

    def agent(self, name: str) -> AgentHost:
        """The agent host whose node is called ``name`` (h1, h2, ...)."""
        return next(a for a in self.agents if a.name == name)

    def start_agent(self, agent: AgentHost) -> None:
        token_file = agent.state_dir.parent / "join-token"
        token_file.write_text(self.worker_token)
        token_file.chmod(0o600)
        argv = [
            NSENTER, f"--net=/run/netns/{agent.host.name}", "--",
            MOOR, "agent",
            "--controller", ",".join(self.controller_addresses),
            "--state-dir", str(agent.state_dir),
            "--node-id", agent.name,
            "--address", agent.host.address,
            *(["--insecure"] if self.insecure else ["--join-token-file", str(token_file)]),
        ]  # fmt: skip
        agent.daemon = self._track(Daemon(f"agent-{agent.name}", argv, agent.state_dir.parent / "agent.log").start())

    def stop_agent(self, agent: AgentHost, sig: int = signal.SIGTERM) -> None:
        if agent.daemon is not None:
            agent.daemon.stop(sig)

    # -- faults -------------------------------------------------------------------
    def kill_agent(self, agent: AgentHost) -> None:
        """kill -9 the agent process only: its containers' shims keep running."""
        assert agent.daemon is not None
        agent.daemon.kill()

    def kill_host(self, agent: AgentHost) -> set[int]:
        """kill -9 every process of the host: its agent, its shims and their
        containers (as a power cut would). Returns the PIDs killed."""
        victims = processes_of_netns(agent.host.name)
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if agent.daemon is not None:
            agent.daemon.kill()  # reaps it
        wait_for(lambda: not any(alive(pid) for pid in victims), 10, f"host {agent.name}'s processes to die")
        return victims

    def partition(self, agent: AgentHost) -> None:
        """Cut the host off the test network (its veth goes down); its processes keep running."""
        network.set_link_up(agent.host.veth, False)

    def heal(self, agent: AgentHost) -> None:
        network.set_link_up(agent.host.veth, True)

    def kill_controller(self, controller: ControllerProc) -> None:
        controller.daemon.kill()

    def live_controllers(self) -> list[ControllerProc]:
        return [c for c in self.controllers if c.daemon.alive()]

    def leader(self, timeout: float = 15.0) -> ControllerProc:
        """The controller that says it leads (waiting for one to)."""
        found: list[ControllerProc] = []

        def elected() -> bool:
            for controller in self.live_controllers():
                try:
                    version = self.control(controller).GetVersion(control_pb2.GetVersionRequest(), timeout=2)
                except grpc.RpcError:
                    continue
                if version.leader:
                    found[:] = [controller]
                    return True
            return False

        wait_for(elected, timeout, "a controller to lead", interval=0.05)
        return found[0]

    def wait_nodes_ready(self, timeout: float = 30.0) -> None:
        wanted = {agent.name for agent in self.agents}

        def ready() -> bool:
            for agent in self.agents:
                if agent.daemon is not None:
                    agent.daemon.check_alive()
            nodes = self.control().ListNodes(control_pb2.ListNodesRequest(), timeout=5).nodes
            return wanted <= {n.id for n in nodes if n.state == types_pb2.NODE_STATE_READY}

        wait_for(ready, timeout, f"nodes {sorted(wanted)} to be ready", interval=0.05)

    def control(self, controller: ControllerProc | None = None) -> control_pb2_grpc.ControlStub:
        """A stub of ``controller``, by default of the first one still running."""
        if controller is None:
            controller = next(iter(self.live_controllers()), self.controllers[0])
        channel = self._channels.get(controller.address)
        if channel is None:
            if self.admin is None:  # insecure
                channel = grpc.insecure_channel(controller.address)
            else:
                channel = tlsconfig.secure_channel(controller.address, self.admin)
            self._channels[controller.address] = channel
        return control_pb2_grpc.ControlStub(channel)

    def stop(self) -> None:
        """End every process, container, namespace and link this cluster made."""
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()
        for agent in self.agents:
            self.stop_agent(agent)
        for controller in self.controllers:
            controller.daemon.stop()
        if self.etcd_cluster is not None:
            self.etcd_cluster.stop()
        self.etcd.stop()
        self.ledger.clean()

    def logs(self) -> str:
        """Every daemon's last log lines, for a failing test's report."""
        parts = []
        for daemon in [*self.etcd_daemons, *(c.daemon for c in self.controllers), *(a.daemon for a in self.agents)]:
            if daemon is not None:
                parts.append(f"--- {daemon.name} ---\n{daemon.tail(40)}")
        return "\n".join(parts)


def import_image(state_dir: Path, source: Path, reference: str) -> None:
    from agent.runtime.images.store import ImageStore

    ImageStore(state_dir / "images").import_rootfs(source, reference)


