"""Containers whose device rules go to cgroup v2: ``python -m tests.agent.runtime.v2_devices IMAGES ROOT``.

This host has a v1 devices controller beside a controller-less v2 mount; in a mount namespace
of its own, with the v1 devices hierarchy detached, the runtime (and the fork server it
starts here) finds no v1 devices controller and attaches its eBPF device program to the
container's directory on the v2 mount instead. Runs one container, prints one JSON line:
where its device rules went, and what the container could do.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from agent.runtime import ContainerSpec, ImageStore, Runtime
from agent.runtime.containers import syscalls as sc
from agent.runtime.containers.cgroups import Cgroup

DEVICES_V1 = Path("/sys/fs/cgroup/devices")
SCRIPT = """echo x > /dev/null && echo null-ok
echo x > /dev/full 2>/dev/null || echo full-full
mknod /tmp/kmsg c 1 11 2>/dev/null && echo mknod-made || echo mknod-refused
grep -c . /proc/self/cgroup > /dev/null && grep '^0::' /proc/self/cgroup"""


def main(images: str, root: str) -> None:
    sc.unshare(sc.CLONE_NEWNS)
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
    sc.umount2(DEVICES_V1, sc.MNT_DETACH)
    runtime = Runtime(Path(root), ImageStore(Path(images)))
    try:
        cgroup = Cgroup.locate(f"{runtime.cgroup_parent}/c1")
        runtime.run("c1", ContainerSpec(name="v2", image="busybox", args=("sh", "-c", SCRIPT)))
        runtime.wait("c1", 30)
        lines = [r.line for r in runtime.read_logs("c1") if r.stream == "stdout"]
        print(json.dumps({"devices": str(cgroup.devices), "v2": cgroup.devices_v2, "out": lines}))
    finally:
        runtime.release()


if __name__ == "__main__":
    main(*sys.argv[1:])
