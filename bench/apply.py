"""`moor apply` → all replicas running, on a real one-machine cluster.

Workload (DESIGN.md §6): 10 services × 3 replicas on 3 agent hosts. Reported:
the wall time from ApplyServices to every task RUNNING in etcd, and per task the
time from apply to its container's start (Task.started_at, stamped by the
agent). Anchor, in the same run: `runc run -d` of the same number of containers
from the same busybox root filesystem, one after another (no scheduling, no
network hop: the floor of starting that many containers with the reference
runtime here).

Where the time goes: each task's way is cut into stages from the timestamps the
daemons already log (the controller's "task placed", the agent's status
reports and "container started") and the task's own stamps (created_at,
started_at), and the bench's arrival of the task's "started" event. The
completion is awaited on the WatchEvents stream, not by polling ListTasks: a
poll every few milliseconds would load the controller and etcd it measures.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import grpc

from moorage.localcluster import busybox
from moorage.localcluster.cluster import LocalCluster
from moorage.v1 import control_pb2, types_pb2

SERVICES = 10
REPLICAS = 3
HOSTS = 3
COMMAND = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
DEADLINE = 120.0
BACKSTOP = 0.5  # seconds between ListTasks checks, should an event be missed
ROUNDS = 3  # of each of mTLS and --insecure, alternating
PREPARING, STARTING = types_pb2.TASK_STATE_PREPARING, types_pb2.TASK_STATE_STARTING
# (stage, the mark it starts from, the mark it ends at), marks in seconds after the apply
STAGES = [
    ("apply -> task created (reconcile)", "apply", "created"),
    ("created -> placed (placement commit)", "created", "placed"),
    ("placed -> agent has it (watch, session)", "placed", "preparing"),
    ("agent: image + network", "preparing", "starting"),
    ("agent: create + start", "starting", "started"),
    ("started -> RUNNING seen (report, etcd)", "started", "running"),
]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


@dataclass
class Run:
    wall: float
    marks: dict[str, dict[str, float]] = field(default_factory=dict)  # task id -> mark -> seconds after apply

    def started(self) -> list[float]:
        return [m["started"] for m in self.marks.values()]


class RunningWatch:
    """Collects the arrival time of each task's "started" event from WatchEvents."""

    def __init__(self, control: object) -> None:
        self._call = control.WatchEvents(control_pb2.WatchEventsRequest(kinds=["task"]))  # type: ignore[attr-defined]
        self.seen: dict[str, float] = {}
        self.changed = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for event in self._call:
                if event.action == "started":
                    self.seen.setdefault(event.id, time.time())
                    self.changed.set()
        except grpc.RpcError:
            pass  # cancelled at the end

    def close(self) -> None:
        self._call.cancel()
        self._thread.join(5)


def _stamp(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def log_marks(paths: Iterable[Path]) -> dict[str, dict[str, float]]:
    """Per task, the first time the daemons' JSON logs show it placed, PREPARING and STARTING."""
    marks: dict[str, dict[str, float]] = {}
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            task, event = entry.get("task"), entry.get("event")
            if not isinstance(task, str) or "timestamp" not in entry:
                continue
            mark = (
                "placed" if event == "task placed"
                else "preparing" if event == "task status" and entry.get("state") == PREPARING
                else "starting" if event == "task status" and entry.get("state") == STARTING
                else None
            )  # fmt: skip
            if mark is not None:
                marks.setdefault(task, {}).setdefault(mark, _stamp(entry["timestamp"]))
    return marks


def moorage_apply(rootfs: Path, work: Path, *, insecure: bool = False, name: str = "moorage-bench-apply") -> Run:
    cluster = LocalCluster(work / name, HOSTS, image_sources={"busybox": rootfs}, insecure=insecure).start()
    try:
        specs = [
            types_pb2.ServiceSpec(name=f"svc{i}", image="busybox", args=COMMAND, replicas=REPLICAS, stop_grace_period=1)
            for i in range(SERVICES)
        ]
        control = cluster.control()
        watch = RunningWatch(control)
        time.sleep(0.5)  # the stream is subscribed on the controller before anything can start
        try:
            started = time.time()
            control.ApplyServices(control_pb2.ApplyServicesRequest(services=specs), timeout=30)
            finished = wait_running(control, watch, started + DEADLINE)
        finally:
            watch.close()
        tasks = control.ListTasks(control_pb2.ListTasksRequest(), timeout=5).tasks
        logs = [cluster.base / "controller.log", *(agent.state_dir.parent / "agent.log" for agent in cluster.agents)]
        from_logs = log_marks(logs)
        run = Run(finished - started)
        for task in tasks:
            marks = {
                "apply": started,
                "created": task.created_at.ToDatetime().timestamp(),
                **from_logs.get(task.id, {}),
                "started": task.started_at.ToDatetime().timestamp(),
                "running": watch.seen.get(task.id, finished),
            }
            run.marks[task.id] = {name: moment - started for name, moment in marks.items()}
        return run
    finally:
        cluster.stop()


def wait_running(control: object, watch: RunningWatch, deadline: float) -> float:
    """The time every task is RUNNING: when its last "started" event came, confirmed by ListTasks."""
    count = SERVICES * REPLICAS
    while time.time() < deadline:
        fired = watch.changed.wait(BACKSTOP)
        watch.changed.clear()
        if fired and len(watch.seen) < count:
            continue
        found = control.ListTasks(control_pb2.ListTasksRequest(), timeout=5).tasks  # type: ignore[attr-defined]
        live = [t for t in found if t.desired_state == types_pb2.TASK_STATE_RUNNING]
        if len(live) == count and all(t.observed_state == types_pb2.TASK_STATE_RUNNING for t in live):
            missed = any(t.id not in watch.seen for t in live)
            return time.time() if missed else max(watch.seen[t.id] for t in live)
    raise TimeoutError(f"not every replica was running within {DEADLINE:.0f} s")


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


def print_stages(run: Run) -> None:
    print(f"\nwhere the time goes, per task (s){'p50':>16}{'p99':>10}")
    for name, start, end in STAGES:
        spans = [m[end] - m[start] for m in run.marks.values() if start in m and end in m]
        if spans:
            print(f"{name:<46}{statistics.median(spans):>10.3f}{percentile(spans, 0.99):>10.3f}")


def main(argv: list[str]) -> None:
    work = Path(tempfile.mkdtemp(prefix="moorage-bench-"))
    try:
        rootfs = busybox.make_rootfs(work / "rootfs")
        # mTLS (the default) and --insecure alternate, so that load on this machine hits both alike.
        runs = {"tls": [], "plaintext": []}
        for round_ in range(ROUNDS):
            for mode in runs:
                runs[mode].append(moorage_apply(rootfs, work, insecure=mode == "plaintext", name=f"moorage-bench-apply-{mode}{round_}"))
        run = runs["tls"][0]
        anchor = runc_anchor(rootfs, work, SERVICES * REPLICAS) if shutil.which("runc") else float("nan")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    count = SERVICES * REPLICAS
    per_task = run.started()
    print(f"{SERVICES} services x {REPLICAS} replicas on {HOSTS} hosts ({count} containers)")
    print(f"{'figure':<46}{'moorage':>10}{'anchor':>12}")
    print(f"{'apply -> all running, wall (s)':<46}{run.wall:>10.3f}{anchor:>12.3f}  (runc run -d x{count}, sequential)")
    print(f"{'apply -> task started, p50 (s)':<46}{statistics.median(per_task):>10.3f}")
    print(f"{'apply -> task started, p99 (s)':<46}{percentile(per_task, 0.99):>10.3f}  (target p99 < 1 s)")
    print_stages(run)
    print(f"\nmTLS beside --insecure, {ROUNDS} alternating rounds each{'tls':>10}{'plaintext':>12}")
    for label, figure in (("wall (s), median of rounds", lambda r: r.wall), ("task started p99 (s), median", lambda r: percentile(r.started(), 0.99))):
        tls, plain = (statistics.median(figure(r) for r in runs[m]) for m in ("tls", "plaintext"))
        print(f"{label:<46}{tls:>10.3f}{plain:>12.3f}  ({(tls / plain - 1) * 100:+.0f} %)")
