"""Container create+start → the user command running, beside `runc run -d` and `crun run -d`.

The same OCI bundle for all three: the config.json Moorage writes for a busybox container
(`sleep 60`, full isolation: pid/mount/uts/ipc/net namespaces, masked and read-only paths,
Docker's capabilities, no_new_privs, rlimits, Docker's seccomp profile, the device allowlist,
a cgroup with memory/cpu/pids limits), so all three load the same seccomp filter. Moorage
mounts the overlay itself in the container's mount namespace; runc and crun get the same
overlay mounted on rootfs/ beforehand (they take a ready root), and their annotation-free copy
of the config. Each round runs the three executors one after the other, so load on this
shared machine hits them alike. Timed: Moorage's Runtime.create + Runtime.start (the latter
returns once the command is exec'd); `runc/crun run -d` from spawn to exit (it returns once
the container's process has been started). Removal is not timed. A row more gives Moorage's
figure for the same container with ``seccomp: unconfined`` (devices still confined): what
the filter costs, in the same run.

crun cannot run here with the v2 mount at /sys/fs/cgroup/unified beside the v1 controllers,
so the whole benchmark runs in a private mount namespace with that mount detached.

    python -m bench runtime            # 200 rounds
    python -m bench.runtime 50         # fewer
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.runtime import ContainerSpec, ImageConfig, ImageStore, Limits, Runtime
from agent.runtime.containers import forkserver
from agent.runtime.containers import oci
from agent.runtime.containers import syscalls as sc
from moorage.localcluster import busybox

ROUNDS = 200
COMMAND = ("sleep", "60")
LIMITS = Limits(memory_bytes=256 * 1024 * 1024, cpu_shares=512, cpu_quota_us=50_000, pids=256)
UNIFIED = Path("/sys/fs/cgroup/unified")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def private_mount_namespace() -> None:
    sc.unshare(sc.CLONE_NEWNS)
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
    forkserver.stop()  # one an earlier topic of this process started forks in the old namespace
    if UNIFIED.is_mount():  # not when an earlier topic of this process detached it already
        sc.umount2(UNIFIED, sc.MNT_DETACH)


def oci_config(runtime: Runtime, spec: ContainerSpec) -> tuple[dict[str, Any], str]:
    """The config.json Moorage writes for ``spec``, without its annotations; and its overlay's lowerdir."""
    runtime.create("template", spec)
    try:
        config = json.loads((runtime.bundle_dir("template") / "config.json").read_text())
    finally:
        runtime.remove("template")
    notes = config.pop("annotations")
    config["linux"]["cgroupsPath"] = "moorage-bench-oci/ctr"  # replaced per run
    return config, notes[oci.LOWER]


def mount_rootfs(bundle: Path, lower: str) -> None:
    """``bundle``/rootfs: an overlay of ``lower`` with a new rw layer in ``bundle`` (upper/, work/)."""
    (bundle / "rootfs").mkdir(parents=True)
    for name in ("upper", "work"):
        (bundle / name).mkdir()
    sc.mount("overlay", bundle / "rootfs", "overlay", 0,
             f"lowerdir={lower},upperdir={bundle / 'upper'},workdir={bundle / 'work'}")


def oci_bundle(runtime: Runtime, work: Path, spec: ContainerSpec) -> Path:
    """A runc/crun bundle from a Moorage container's: same config, overlay mounted, no annotations."""
    config, lower = oci_config(runtime, spec)
    bundle = work / "bundle"
    mount_rootfs(bundle, lower)
    (bundle / "config.json").write_text(json.dumps(config))
    return bundle


def oci_runner(binary: str, bundle: Path, state: Path) -> tuple[Callable[[int], float], Callable[[int], None]]:
    config = json.loads((bundle / "config.json").read_text())

    def start(n: int) -> float:
        config["linux"]["cgroupsPath"] = f"moorage-bench-{binary}-c{n}"  # no shared parent left behind
        (bundle / "config.json").write_text(json.dumps(config))
        began = time.perf_counter()
        subprocess.run([binary, "--root", str(state), "run", "-d", "--bundle", str(bundle), f"c{n}"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True)
        return time.perf_counter() - began

    def remove(n: int) -> None:
        subprocess.run([binary, "--root", str(state), "delete", "-f", f"c{n}"], check=True)

    return start, remove


def main(argv: list[str]) -> None:
    rounds = int(argv[0]) if argv else ROUNDS
    private_mount_namespace()
    work = Path(tempfile.mkdtemp(prefix="moorage-bench-runtime-"))
    runtime: Runtime | None = None
    try:
        images = ImageStore(work / "images")
        images.import_rootfs(busybox.make_rootfs(work / "rootfs"), "busybox", ImageConfig(cmd=COMMAND))
        runtime = Runtime(work / "moorage", images)
        spec = ContainerSpec(name="bench", image="busybox", limits=LIMITS, stop_grace_period=0)
        bundle = oci_bundle(runtime, work, spec)

        phases: dict[str, list[float]] = {"  of which create": [], "  of which start": []}

        def moorage_start(n: int) -> float:
            began = time.perf_counter()
            runtime.create(f"c{n}", spec)
            created = time.perf_counter()
            runtime.start(f"c{n}")
            ended = time.perf_counter()
            phases["  of which create"].append(created - began)
            phases["  of which start"].append(ended - created)
            return ended - began

        unconfined = dataclasses.replace(spec, seccomp="unconfined")

        def moorage_unconfined(n: int) -> float:
            began = time.perf_counter()
            runtime.create(f"u{n}", unconfined)
            runtime.start(f"u{n}")
            return time.perf_counter() - began

        executors: dict[str, tuple[Callable[[int], float], Callable[[int], None]]] = {
            "moorage create+start": (moorage_start, lambda n: runtime.remove(f"c{n}", force=True)),
            "  the same, unconfined": (moorage_unconfined, lambda n: runtime.remove(f"u{n}", force=True)),
            "runc run -d": oci_runner("runc", bundle, work / "runc-state"),
            "crun run -d": oci_runner("crun", bundle, work / "crun-state"),
        }
        for start, remove in executors.values():  # warm-up: fork server, page cache, binaries
            start(-1)
            remove(-1)
        for values in phases.values():
            values.clear()
        times: dict[str, list[float]] = {name: [] for name in executors}
        for n in range(rounds):
            for name, (start, remove) in executors.items():
                times[name].append(start(n))
                remove(n)
        anchor = statistics.median(times["crun run -d"])
        print(f"{rounds} rounds, busybox `{' '.join(COMMAND)}`, same bundle; ms")
        print(f"{'executor':24} {'median':>8} {'p99':>8} {'median/crun':>12}")
        rows = {"moorage create+start": times.pop("moorage create+start"), **phases,
                "  the same, unconfined": times.pop("  the same, unconfined"), **times}
        for name, values in rows.items():
            median = statistics.median(values)
            print(f"{name:24} {median * 1000:8.2f} {percentile(values, 0.99) * 1000:8.2f} {median / anchor:12.2f}")
    finally:
        if runtime is not None:
            runtime.release()
        if (work / "bundle" / "rootfs").is_mount():
            sc.umount2(work / "bundle" / "rootfs", sc.MNT_DETACH)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
