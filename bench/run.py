"""End-to-end run of one short container, as a user experiences `docker run --rm busybox true`.

One run: the image already local → create → start → `true` runs and exits → its exit code is
collected → the container is removed (rw layer unmounted and deleted, network withdrawn).
Each variant is timed from the request to the removal; every round runs all of them one after
the other, so the load of this shared machine hits them alike.

- **moorage**: the agent's path through the public API — ``NodeNetwork.attach`` (mode none,
  or a namespace plugged into the node's bridge), ``Runtime.create``, the /etc files written
  into the rw layer, ``Runtime.start``, ``Runtime.wait``, ``Runtime.remove``,
  ``NodeNetwork.detach`` — in this process, with its phases printed below it.
- **runc / crun**: ``run`` in the foreground (it deletes the container once its process has
  exited: no ``delete`` left to do), on the config.json Moorage writes for the same container
  (a new, empty network namespace), with a new rw layer mounted as an overlay of the same
  unpacked layers before and removed after (what an engine does around them).
- **podman run --rm** (anchor): rootful, its own storage and state under the work directory,
  cgroupfs, no events; the same image loaded from our OCI layout (skopeo → docker-archive).
- **docker run --rm** (the anchor of DESIGN.md §6): a dockerd of the bench's own (data root,
  exec root, pidfile, socket under the work directory, overlay2, its own containerd), started
  here and stopped at the end; the client of the docker.io package. Skipped, with the reason,
  when it cannot run.

`--network none` and a bridge for each (Moorage: the agent's bridge moorbr0 with NAT; podman:
netavark's default network; docker: docker0). Everything runs in a network namespace and a
private mount namespace the bench makes (crun needs /sys/fs/cgroup/unified detached), so no
bridge, firewall rule or mount reaches the host's; the network namespace goes with the last
process in it (this one and its fork server).

    python -m bench run               # 100 rounds
    python -m bench.run 20            # fewer
"""

from __future__ import annotations

import json
import logging
import os
import resource
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

from agent.network import BRIDGE_MODE, NONE_MODE, NodeNetwork, netns_path
from agent.network.etcfiles import write
from agent.network.links import share_pin_dir
from agent.runtime import ContainerSpec, ImageConfig, ImageStore, Runtime
from agent.runtime.containers import syscalls as sc
from bench.runtime import mount_rootfs, oci_config, percentile, private_mount_namespace
from moorage.localcluster import busybox
from moorage import log as moorage_log
from moorage.localcluster.procs import wait_for

ROUNDS = 100
COMMAND = ("true",)
IMAGE = "docker.io/library/busybox:latest"  # the name podman and docker give the loaded archive
SUBNET, CLUSTER = "10.244.1.0/24", "10.244.0.0/16"  # the node network, inside the bench's own namespace
DOCKER = "/usr/bin/docker"  # the docker.io package's client (another may come first in PATH)
DAEMON_WAIT = 60.0

Runner = Callable[[int], float]


def timed(argv: list[str]) -> float:
    began = time.perf_counter()
    subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - began


def unmount_under(path: Path) -> None:
    """Detach every mount at or below ``path`` (this mount namespace), deepest first."""
    prefix = str(path.resolve())
    points = [
        line.split()[4].encode().decode("unicode_escape")
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
    ]
    for point in sorted((p for p in points if p == prefix or p.startswith(prefix + "/")), reverse=True):
        try:
            sc.umount2(point, sc.MNT_DETACH)
        except OSError:
            pass  # gone with a parent detached before it


# -- Moorage -----------------------------------------------------------------------------


def moorage_runner(runtime: Runtime, node: NodeNetwork, mode: str, phases: dict[str, list[float]]) -> Runner:
    """The agent's start and removal of one container (agent/converge.py), without the control plane."""

    def run(n: int) -> float:
        cid = f"run-{mode}-{n}"
        marks = [time.perf_counter()]
        attachment = node.attach(cid, mode)
        marks.append(time.perf_counter())
        spec = ContainerSpec(name=cid, image="busybox", args=COMMAND, netns_path=netns_path(attachment))
        created = runtime.create(cid, spec)
        write(created.upper_dir, node.etc_files(attachment, spec.name, ()))
        marks.append(time.perf_counter())
        runtime.start(cid)
        marks.append(time.perf_counter())
        state = runtime.wait(cid)
        marks.append(time.perf_counter())
        runtime.remove(cid)
        marks.append(time.perf_counter())
        node.detach(cid)
        marks.append(time.perf_counter())
        if state.exit_code != 0:
            raise RuntimeError(f"{cid}: `true` exited {state.exit_code} ({state.error})")
        for name, (began, ended) in zip(phases, pairwise(marks), strict=True):
            phases[name].append(ended - began)
        return marks[-1] - marks[0]

    return run


# -- runc / crun -------------------------------------------------------------------------


def oci_runner(binary: str, config: dict[str, Any], lower: str, work: Path) -> Runner:
    state = work / f"{binary}-state"

    def run(n: int) -> float:
        bundle = work / f"{binary}-{n}"
        config["linux"]["cgroupsPath"] = f"moorage-bench-{binary}-r{n}"
        began = time.perf_counter()
        mount_rootfs(bundle, lower)
        (bundle / "config.json").write_text(json.dumps(config))
        subprocess.run([binary, "--root", str(state), "run", "--bundle", str(bundle), f"r{n}"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True)
        sc.umount2(bundle / "rootfs", 0)
        shutil.rmtree(bundle)
        return time.perf_counter() - began

    return run


# -- podman and docker -------------------------------------------------------------------


def engine_runner(client: list[str], network: str, extra: tuple[str, ...] = ()) -> Runner:
    argv = [*client, "run", "--rm", "--pull", "never", "--network", network, *extra, IMAGE, *COMMAND]
    return lambda n: timed(argv)


def podman_client(home: Path) -> list[str]:
    return ["podman", "--root", str(home / "root"), "--runroot", str(home / "run"), "--tmpdir", str(home / "tmp"),
            "--network-config-dir", str(home / "networks"), "--storage-driver", "overlay",
            "--cgroup-manager", "cgroupfs", "--events-backend", "none"]


def podman_rlimits() -> tuple[str, ...]:
    """Podman as root asks for NOFILE 1048576 and NPROC 4194304 unless told; without
    CAP_SYS_RESOURCE (this sandbox) crun may not raise them. NOFILE: the host's hard limit, as
    Moorage clamps it; NPROC: within the 32768 podman leaves itself here."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return ("--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", "nproc=4096:4096")


class Dockerd:
    """A dockerd of the bench's own: everything it keeps under ``home``; its PID kept to stop it."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.socket = home / "docker.sock"
        self.log = home / "dockerd.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.client = [DOCKER, "-H", f"unix://{self.socket}"]

    def start(self) -> None:
        self.home.mkdir(parents=True)
        config = self.home / "daemon.json"  # its identity key here too, not in /etc/docker
        config.write_text(json.dumps({"deprecated-key-path": str(self.home / "key.json")}))
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                ["dockerd", "--config-file", str(config), "--data-root", str(self.home / "data"),
                 "--exec-root", str(self.home / "exec"), "--pidfile", str(self.home / "dockerd.pid"),
                 "-H", f"unix://{self.socket}"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )
        process = self.process
        wait_for(lambda: process.poll() is not None or self._answers(), DAEMON_WAIT, "dockerd to answer", 0.1)
        if process.poll() is not None:
            raise RuntimeError(f"dockerd exited with {process.returncode}: {self.log_tail()}")

    def _answers(self) -> bool:
        return self.socket.exists() and subprocess.run(
            [*self.client, "version"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
        ).returncode == 0

    def log_tail(self) -> str:
        return " | ".join(self.log.read_text(errors="replace").strip().splitlines()[-3:])

    def stop(self) -> None:
        """SIGTERM (dockerd stops its containers and its containerd), SIGKILL if it hangs; then
        the containerd it started, should it outlive it."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        containerd = self.home / "exec" / "containerd" / "containerd.pid"
        if containerd.exists():
            try:
                os.kill(int(containerd.read_text()), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass


# -- the benchmark -----------------------------------------------------------------------

Variant = tuple[str, str]  # (who runs it, "none" | "bridge")
ANCHORS = ("docker run --rm", "podman run --rm")


def report(rounds: int, times: dict[Variant, list[float]], phases: dict[Variant, dict[str, list[float]]],
           skipped: dict[str, str]) -> None:
    def ms(values: list[float]) -> str:
        return f"{statistics.median(values) * 1e3:8.2f} {percentile(values, 0.99) * 1e3:8.2f}"

    print(f"{rounds} rounds, busybox `{' '.join(COMMAND)}`: create → runs → exit code → removed; ms")
    print(f"{'variant':32} {'median':>8} {'p99':>8} {'/docker':>8} {'/podman':>8}")
    for (who, network), values in times.items():
        ratios = [
            f"{statistics.median(values) / statistics.median(times[anchor, network]):8.2f}"
            if (anchor, network) in times else f"{'–':>8}"
            for anchor in ANCHORS
        ]
        print(f"{who + ', ' + network:32} {ms(values)} {' '.join(ratios)}")
        for step, spent in phases.get((who, network), {}).items():
            print(f"{'  ' + step:32} {ms(spent)}")
    for who, reason in skipped.items():
        print(f"skipped {who}: {reason}")


def add_podman(runners: dict[Variant, Runner], home: Path, archive: Path) -> list[str]:
    client = podman_client(home)
    subprocess.run([*client, "load", "-q", "-i", str(archive)], stdout=subprocess.DEVNULL, check=True)
    for network in ("none", "bridge"):
        runners["podman run --rm", network] = engine_runner(client, network, podman_rlimits())
    return client


def add_docker(runners: dict[Variant, Runner], dockerd: Dockerd, archive: Path) -> None:
    if not shutil.which("dockerd") or not Path(DOCKER).exists():
        raise RuntimeError("dockerd or its client is not installed (make bench-deps)")
    dockerd.start()
    subprocess.run([*dockerd.client, "load", "-q", "-i", str(archive)], stdout=subprocess.DEVNULL, check=True)
    for network in ("none", "bridge"):
        runners["docker run --rm", network] = engine_runner(dockerd.client, network)


def main(argv: list[str]) -> None:
    rounds = int(argv[0]) if argv else ROUNDS
    moorage_log.configure(json=False, level=logging.WARNING)  # not two lines of the agent's per container
    home_net = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    private_mount_namespace()
    share_pin_dir()  # private_mount_namespace made the host's shared /run/netns private
    sc.unshare(sc.CLONE_NEWNET)  # this thread, and the processes it starts from now on
    work = Path(tempfile.mkdtemp(prefix="moorage-bench-run-"))
    runtime: Runtime | None = None
    node: NodeNetwork | None = None
    dockerd = Dockerd(work / "docker")
    podman: list[str] | None = None
    try:
        images = ImageStore(work / "images")
        images.import_rootfs(busybox.make_rootfs(work / "rootfs"), "busybox", ImageConfig(cmd=("sh",)))
        archive = work / "busybox.tar"
        subprocess.run(["skopeo", "copy", "-q", f"oci:{images.root}:busybox:latest",
                        f"docker-archive:{archive}:{IMAGE}"], check=True)
        runtime = Runtime(work / "moorage", images)
        node = NodeNetwork(work / "agent", "127.0.0.1")
        node.configure(SUBNET, CLUSTER, masquerade=False)
        config, lower = oci_config(runtime, ContainerSpec(name="oci", image="busybox", args=COMMAND))

        steps = ("network attach", "create + /etc files", "start", "wait: runs, exits", "remove", "network detach")
        phases: dict[Variant, dict[str, list[float]]] = {
            ("moorage", network): {step: [] for step in steps} for network in ("none", "bridge")
        }
        runners: dict[Variant, Runner] = {
            ("moorage", "none"): moorage_runner(runtime, node, NONE_MODE, phases["moorage", "none"]),
            ("moorage", "bridge"): moorage_runner(runtime, node, BRIDGE_MODE, phases["moorage", "bridge"]),
            ("runc run", "none"): oci_runner("runc", config, lower, work),
            ("crun run", "none"): oci_runner("crun", config, lower, work),
        }
        skipped: dict[str, str] = {}
        if shutil.which("podman"):
            podman = add_podman(runners, work / "podman", archive)
        else:
            skipped["podman"] = "podman is not installed (make bench-deps)"
        try:
            add_docker(runners, dockerd, archive)
        except (RuntimeError, TimeoutError, subprocess.CalledProcessError) as err:
            skipped["docker"] = f"{err}" + (f" — dockerd log: {dockerd.log_tail()}" if dockerd.log.exists() else "")
            dockerd.stop()

        for run in runners.values():  # warm-up: fork server, page cache, binaries, daemons' caches
            run(-1)
        for spent in (spent for by_step in phases.values() for spent in by_step.values()):
            spent.clear()
        times: dict[Variant, list[float]] = {variant: [] for variant in runners}
        for n in range(rounds):
            for variant, run in runners.items():
                times[variant].append(run(n))
        report(rounds, times, phases, skipped)
    finally:
        dockerd.stop()
        if podman is not None:
            subprocess.run([*podman, "rm", "-a", "-f"], stdout=subprocess.DEVNULL, check=False)
        if runtime is not None:
            runtime.release()
        if node is not None:
            node.collect(())
            node.cleanup()
        unmount_under(work)
        shutil.rmtree(work, ignore_errors=True)
        sc.setns(home_net, sc.CLONE_NEWNET)
        os.close(home_net)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
