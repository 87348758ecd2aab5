"""What a person waits for at the `moor` prompt, beside a Go CLI doing the same here.

- startup: `moor version --client` and `moor --help` beside `etcdctl version` and
  `etcdctl --help`, and beside the floor of any Typer CLI: `python -c "import typer"`;
- a read against a live one-host cluster: `moor get nodes` (CLI → controller →
  etcd) beside `etcdctl get --prefix /moorage/nodes/` (CLI → etcd directly);
- validation: loading a file of 200 services through the manifest model beside
  PyYAML's own parse of the same file (the floor: reading the YAML at all).
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml

from moorage.localcluster import busybox
from moorage.localcluster.cluster import MOOR, LocalCluster
from moorage.manifest import load_paths

RUNS = 15
SERVICES = 200
ETCDCTL = shutil.which("etcdctl") or "/usr/bin/etcdctl"


Samples = tuple[list[float], list[float]]


def _cpu() -> float:
    """CPU seconds (user + system) of this process and its finished children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(action: Callable[[], object], runs: int = RUNS) -> Samples:
    """Wall and CPU seconds of each run (CPU time is steadier on a busy machine)."""
    wall, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), _cpu()
        action()
        wall.append(time.perf_counter() - start)
        cpu.append(_cpu() - start_cpu)
    return wall, cpu


def run(argv: Sequence[str], env: dict[str, str] | None = None) -> Callable[[], object]:
    def action() -> object:
        return subprocess.run(argv, env=env, check=True, capture_output=True)

    return action


def row(what: str, samples: Samples, anchor_what: str, anchor: Samples) -> str:
    (wall, cpu), (anchor_wall, anchor_cpu) = ((statistics.median(w), statistics.median(c)) for w, c in (samples, anchor))
    return (
        f"| {what} | {wall * 1000:.0f} ms / {cpu * 1000:.0f} ms | {anchor_what} "
        f"| {anchor_wall * 1000:.0f} ms / {anchor_cpu * 1000:.0f} ms | {wall / anchor_wall:.1f}x / {cpu / anchor_cpu:.1f}x |"
    )


def manifest_file(directory: Path) -> Path:
    path = directory / "many.yaml"
    documents = [
        f"name: svc{i}\nimage: busybox\nreplicas: 3\nenv: {{A: '1', B: two}}\ncommand: [sh, -c, 'sleep 1000']\n"
        f"stop_grace_period: 2s\nlabels: {{tier: t{i % 5}}}\nrestart: on-failure\n"
        f"placement: {{constraints: ['node.labels.zone == a'], max_per_node: 2}}\n"
        for i in range(SERVICES)
    ]
    path.write_text("---\n".join(documents))
    return path


def main(argv: list[str]) -> None:
    rows = [
        "| what | moorage (wall / CPU) | anchor | anchor (wall / CPU) | ratio (wall / CPU) |",
        "|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory(prefix="moorage-bench-cli-") as tmp:
        work = Path(tmp)
        version = timed(run([MOOR, "version", "--client"]))
        rows.append(row("`moor version --client` (startup)", version,
                        "`etcdctl version`", timed(run([ETCDCTL, "version"]))))  # fmt: skip
        rows.append(row("`moor --help`", timed(run([MOOR, "--help"])),
                        "`etcdctl --help`", timed(run([ETCDCTL, "--help"]))))  # fmt: skip
        rows.append(row("`moor version --client`", version,
                        '`python -c "import typer"` (floor)', timed(run([sys.executable, "-c", "import typer"]))))  # fmt: skip

        path = manifest_file(work)
        text = path.read_text()
        rows.append(row(f"validate {SERVICES} services (load_paths)", timed(lambda: load_paths([path])),
                        "`yaml.safe_load_all` of the file", timed(lambda: list(yaml.safe_load_all(text)))))  # fmt: skip

        rootfs = busybox.make_rootfs(work / "rootfs")
        cluster = LocalCluster(work / "moorage-bench-cli", 1, image_sources={"busybox": rootfs}).start()
        try:
            env = cluster.cli_env()
            etcd_env = {**os.environ, "ETCDCTL_API": "3"}
            etcd_get = [ETCDCTL, f"--endpoints={cluster.etcd.endpoint}", "get", "--prefix", "/moorage/nodes/"]
            rows.append(row("`moor get nodes` (CLI → controller → etcd)", timed(run([MOOR, "get", "nodes"], env)),
                            "`etcdctl get --prefix /moorage/nodes/`", timed(run(etcd_get, etcd_env))))  # fmt: skip
        finally:
            cluster.stop()
    print(f"medians of {RUNS} runs each, measured side by side in one run; load average {os.getloadavg()[0]:.1f}")
    print("\n".join(rows))


if __name__ == "__main__":
    main([])
