"""`moor apply` → all replicas running, on a real one-machine cluster.

Workload (DESIGN.md §6): 10 services × 3 replicas on 3 agent hosts. Reported:
the wall time from ApplyServices to every task RUNNING, and per task the time
from apply to its container's start (Task.started_at, stamped by the agent).
Anchor, in the same run: `runc run -d` of the same number of containers from the
same busybox root filesystem, one after another (no scheduling, no network hop:
the floor of starting that many containers with the reference runtime here).
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from moorage import busybox
from moorage.localcluster.cluster import LocalCluster
from moorage.localcluster.procs import wait_for
from moorage.v1 import control_pb2, types_pb2

SERVICES = 10
REPLICAS = 3
HOSTS = 3
COMMAND = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def moorage_apply(rootfs: Path, work: Path) -> tuple[float, list[float]]:
    cluster = LocalCluster(work / "moorage-bench-apply", HOSTS, image_sources={"busybox": rootfs}).start()
    try:
        specs = [
            types_pb2.ServiceSpec(name=f"svc{i}", image="busybox", args=COMMAND, replicas=REPLICAS, stop_grace_period=1)
            for i in range(SERVICES)
        ]
        control = cluster.control()
        started = time.time()
        control.ApplyServices(control_pb2.ApplyServicesRequest(services=specs), timeout=30)

        def all_running() -> bool:
            found = control.ListTasks(control_pb2.ListTasksRequest(), timeout=5).tasks
            live = [t for t in found if t.desired_state == types_pb2.TASK_STATE_RUNNING]
            return len(live) == SERVICES * REPLICAS and all(
                t.observed_state == types_pb2.TASK_STATE_RUNNING for t in live
            )

        wait_for(all_running, 120, "all replicas running", interval=0.01)
        wall = time.time() - started
        tasks = control.ListTasks(control_pb2.ListTasksRequest(), timeout=5).tasks
        per_task = [t.started_at.ToDatetime().timestamp() - started for t in tasks]
        return wall, per_task
    finally:
        cluster.stop()


def runc_anchor(rootfs: Path, work: Path, count: int) -> float:
    bundle = work / "runc-bundle"
    bundle.mkdir()
    subprocess.run(["runc", "spec"], cwd=bundle, check=True)
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["terminal"] = False
    config["process"]["args"] = COMMAND
    config["root"] = {"path": str(rootfs), "readonly": True}
    (bundle / "config.json").write_text(json.dumps(config))
    names = [f"moorage-bench-{i}" for i in range(count)]
    started = time.monotonic()
    try:
        for name in names:
            subprocess.run(
                ["runc", "run", "-d", "--bundle", str(bundle), name],
                check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        return time.monotonic() - started
    finally:
        for name in names:
            subprocess.run(["runc", "delete", "--force", name], capture_output=True)


def main(argv: list[str]) -> None:
    work = Path(tempfile.mkdtemp(prefix="moorage-bench-"))
    try:
        rootfs = busybox.make_rootfs(work / "rootfs")
        wall, per_task = moorage_apply(rootfs, work)
        anchor = runc_anchor(rootfs, work, SERVICES * REPLICAS) if shutil.which("runc") else float("nan")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    count = SERVICES * REPLICAS
    print(f"{SERVICES} services x {REPLICAS} replicas on {HOSTS} hosts ({count} containers)")
    print(f"{'figure':<46}{'moorage':>10}{'anchor':>12}")
    print(f"{'apply -> all running, wall (s)':<46}{wall:>10.3f}{anchor:>12.3f}  (runc run -d x{count}, sequential)")
    print(f"{'apply -> task started, p50 (s)':<46}{statistics.median(per_task):>10.3f}")
    print(f"{'apply -> task started, p99 (s)':<46}{percentile(per_task, 0.99):>10.3f}  (target p99 < 1 s)")
