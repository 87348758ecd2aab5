"""The same OCI bundles under runc and under Moorage's executor: what a process can observe must match.

Moorage mounts the overlay itself (annotations); for runc the test mounts the same layers on
the bundle's rootfs first, as containerd would. Compared: exit code, stdout of an
introspection script (hostname, env, ids, working dir, capabilities, no_new_privs, rlimits,
masked paths, /dev, the mount table's points, types and ro/rw), limits by their effect
(an OOM kill, a refused fork), and what the seccomp filter and the device rules let through
(the calls of probe.c and busybox's unshare, mount, mknod, device writes).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from agent.runtime import Limits, MountSpec, Runtime
from agent.runtime.containers import oci
from agent.runtime.containers import syscalls as sc
from tests.agent.runtime.support import lines, sh

RUNC = shutil.which("runc")
INTROSPECT = """hostname; env | sort; id; pwd
grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs):' /proc/self/status
ulimit -n; ulimit -Hn; wc -c < /proc/keys; ls /sys/firmware | wc -l; ls /dev | tr '\\n' ' '; echo
awk '{split($4, o, ","); print $2, $3, o[1]}' /proc/self/mounts
echo rofs-test > /probe 2>/dev/null || echo read-only-root
"""

pytestmark = pytest.mark.skipif(RUNC is None, reason="runc is not installed (make deps)")


def moorage(runtime: Runtime, container_id: str) -> tuple[int | None, list[str]]:
    runtime.start(container_id)
    state = runtime.wait(container_id, 30)
    return state.exit_code, lines(runtime, container_id, "stdout")


def runc(bundle_source: Path, work: Path, container_id: str) -> tuple[int, list[str]]:
    config = json.loads((bundle_source / "config.json").read_text())
    notes = config.pop("annotations")
    config["linux"]["cgroupsPath"] = f"moorage-test-runc-{container_id}"  # no shared parent: runc delete removes it all
    bundle = work / container_id
    for name in ("rootfs", "upper", "work"):
        (bundle / name).mkdir(parents=True)
    (bundle / "config.json").write_text(json.dumps(config))
    sc.mount("overlay", bundle / "rootfs", "overlay", 0,
             f"lowerdir={notes[oci.LOWER]},upperdir={bundle / 'upper'},workdir={bundle / 'work'}")
    try:
        done = subprocess.run([str(RUNC), "--root", str(work / "runc-state"), "run", "--bundle", str(bundle), container_id],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    finally:
        sc.umount2(bundle / "rootfs", sc.MNT_DETACH)
    return done.returncode, done.stdout.splitlines()


BUNDLES = {
    "defaults": sh("box", INTROSPECT + "exit 3", env={"GREETING": "hi"}),
    "user-workdir-caps-rlimits": dataclasses.replace(
        sh("box", INTROSPECT), user="65534:65534", working_dir="/tmp", cap_add=("NET_ADMIN",), cap_drop=("CHOWN", "KILL"),
        rlimits={"RLIMIT_NOFILE": 1024, "RLIMIT_NPROC": 512}),
    "read-only-root-and-mounts": dataclasses.replace(
        sh("box", INTROSPECT), read_only_rootfs=True, mounts=(MountSpec("/scratch", "tmpfs"),)),
    "oom": dataclasses.replace(sh("box", "head -c 100m /dev/zero | tail"), limits=Limits(memory_bytes=16 * 1024 * 1024)),
    "pids": dataclasses.replace(sh("box", "for i in $(seq 20); do sleep 30 & done 2>/dev/null; wait"),
                                limits=Limits(pids=8)),
}


@pytest.mark.parametrize("name", sorted(BUNDLES))
def test_same_bundle_same_observations(runtime: Runtime, tmp_path: Path, name: str) -> None:
    runtime.create("c1", BUNDLES[name])
    theirs = runc(runtime.bundle_dir("c1"), tmp_path / "runc", f"moorage-test-{name}")
    ours = moorage(runtime, "c1")
    assert ours == theirs


PROBED = ("keyctl", "add_key", "clone_newuser", "clone3_newuser", "clone_plain", "unshare_newns", "personality_query",
          "personality_linux32", "personality_no_randomize", "open_by_handle_at", "own_filter_then_keyctl",
          "ptrace_child", "int80_getpid", "int80_keyctl", "int80_unshare_newuser", "unknown_syscall")
SECCOMP_AND_DEVICES = f"""grep Seccomp: /proc/self/status
/probe/probe {' '.join(PROBED)}
unshare -U true 2>/dev/null && echo unshare-U ok || echo unshare-U refused
mount -t tmpfs none /tmp 2>/dev/null && echo mount ok || echo mount refused
echo x > /host-kmsg 2>/dev/null && echo kmsg written || echo kmsg refused
head -c 1 /dev/zero > /dev/null && echo zero ok; echo x > /dev/null && echo null ok
mknod /tmp/k c 1 11 2>/dev/null && echo mknod made || echo mknod refused
"""


@pytest.mark.parametrize("cap_add", [(), ("SYS_ADMIN",)])
def test_same_seccomp_and_device_outcomes(runtime: Runtime, tmp_path: Path, probe_dir: Path,
                                          cap_add: tuple[str, ...]) -> None:
    """Docker's profile (resolved for the capabilities) and the device rules, both from config.json,
    give the same answers under runc — but for mknod: runc always adds ``c *:* m`` to the device
    rules (its AllowedDevices), so under runc the node can be made, though not opened."""
    spec = dataclasses.replace(
        sh("box", SECCOMP_AND_DEVICES), cap_add=cap_add,
        mounts=(MountSpec("/probe", "bind", str(probe_dir), read_only=True), MountSpec("/host-kmsg", "bind", "/dev/kmsg")))
    runtime.create("c1", spec)
    code, theirs = runc(runtime.bundle_dir("c1"), tmp_path / "runc", f"moorage-test-seccomp-{len(cap_add)}")
    ours = moorage(runtime, "c1")
    assert theirs[-1] == "mknod made" and ours[1][-1] == "mknod refused"
    assert ours == (code, [*theirs[:-1], "mknod refused"])
    assert "Seccomp:\t2" in theirs and "kmsg refused" in theirs
    assert ("unshare-U ok" in theirs) == bool(cap_add)  # the capability-conditional part applies in both
