"""The device allowlist on the real kernel: a container can use its standard nodes, cannot make or
open any other device (neither by mknod nor through a bind mount of the host's node), in exec
too; a ``devices:`` entry lets exactly that device in with its permissions. The v1 devices
controller holds what the emulator says; the cgroup v2 eBPF program is tried on this machine's
unified mount."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.runtime import DeviceSpec, ImageStore, InvalidSpec, MountSpec, Runtime, StartFailed
from agent.runtime.containers import devices
from agent.runtime.containers.cgroups import V2, Cgroup, Limits, layout
from agent.runtime.containers.devices import Allowlist, DeviceRule
from tests.agent.runtime.support import lines, sh

FUSE = Path("/dev/fuse")  # a device outside the default list, harmless to open
UNIFIED = Path("/sys/fs/cgroup/unified")


def stdout(runtime: Runtime, spec: object, container_id: str = "c1") -> list[str]:
    runtime.run(container_id, spec)  # type: ignore[arg-type]
    runtime.wait(container_id, 30)
    return lines(runtime, container_id, "stdout")


def host_kernel_log() -> str:
    """Every record in the host's kernel log buffer (read as root, non-blocking)."""
    records = []
    fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    try:
        while True:
            try:
                records.append(os.read(fd, 8192).decode(errors="replace"))
            except BlockingIOError:
                return "".join(records)
            except OSError as e:
                if e.errno != errno.EPIPE:  # a record overwritten while we read
                    raise
    finally:
        os.close(fd)


def test_the_standard_nodes_work(runtime: Runtime) -> None:
    script = """echo x > /dev/null && echo null
        head -c 4 /dev/zero | wc -c; head -c 4 /dev/urandom | wc -c; head -c 4 /dev/random | wc -c
        echo x > /dev/full 2>/dev/null || echo full-is-full
        ls /dev/pts/ptmx >/dev/null && echo pts"""
    assert stdout(runtime, sh("std", script)) == ["null", "4", "4", "4", "full-is-full", "pts"]


def test_no_other_device_can_be_made_or_written(runtime: Runtime) -> None:
    """The issue's escape: mknod of /dev/kmsg (1:11) and a write put a line in the host's log.
    Nor the host's console (5:1: it opened, before it left the list), nor a disk."""
    marker = f"moorage-devices-test-{uuid.uuid4()}"
    script = f"""mknod /tmp/kmsg c 1 11 2>/dev/null && echo made || echo mknod-refused
        echo {marker} > /host-kmsg 2>/dev/null && echo written || echo write-refused
        head -c 1 /host-kmsg >/dev/null 2>&1 && echo read || echo read-refused
        mknod /tmp/console c 5 1 2>/dev/null && echo made || echo console-refused
        mknod /tmp/sda b 8 0 2>/dev/null && echo made || echo block-refused"""
    spec = dataclasses.replace(sh("kmsg", script), mounts=(MountSpec("/host-kmsg", "bind", "/dev/kmsg"),))
    for name, profile in (("filtered", "default"), ("unconfined", "unconfined")):  # not seccomp's doing
        out = stdout(runtime, dataclasses.replace(spec, seccomp=profile), name)
        assert out == ["mknod-refused", "write-refused", "read-refused", "console-refused", "block-refused"], name
    assert marker not in host_kernel_log()


def test_exec_has_the_same_device_rules(runtime: Runtime) -> None:
    spec = dataclasses.replace(sh("kmsg", "sleep 100"), mounts=(MountSpec("/host-kmsg", "bind", "/dev/kmsg"),))
    runtime.run("c1", spec)
    script = "mknod /tmp/k c 1 11 2>/dev/null || echo mknod-refused; echo x > /host-kmsg 2>/dev/null || echo write-refused"
    code, out, _ = runtime.exec_run("c1", ["sh", "-c", script])
    assert out.decode().split() == ["mknod-refused", "write-refused"]


@pytest.mark.skipif(not FUSE.exists(), reason="this host has no /dev/fuse to hand to a container")
def test_a_device_entry_lets_in_that_device_with_its_permissions(runtime: Runtime) -> None:
    script = """test -c /dev/fuse && echo node
        { true <> /dev/fuse; } 2>/dev/null && echo rw-open || echo rw-refused
        { true < /dev/fuse; } 2>/dev/null && echo r-open || echo r-refused
        mknod /tmp/other c 10 200 2>/dev/null || echo other-refused"""
    assert stdout(runtime, dataclasses.replace(sh("fuse", script), devices=(DeviceSpec(str(FUSE)),)), "rw") == [
        "node", "rw-open", "r-open", "other-refused"]
    read_only = dataclasses.replace(sh("fuse", script), devices=(DeviceSpec(str(FUSE), "/dev/fuse", "r"),))
    assert stdout(runtime, read_only, "r") == ["node", "rw-refused", "r-open", "other-refused"]
    renamed = dataclasses.replace(sh("fuse", "test -c /dev/sub/f && echo node"),
                                  devices=(DeviceSpec(str(FUSE), "/dev/sub/f"),))
    assert stdout(runtime, renamed, "renamed") == ["node"]
    without = dataclasses.replace(sh("fuse", "{ true <> /fuse; } 2>/dev/null && echo open || echo refused"),
                                  mounts=(MountSpec("/fuse", "bind", str(FUSE)),))
    assert stdout(runtime, without, "bound") == ["refused"]


def test_the_executor_applies_the_rules_config_json_gives(runtime: Runtime) -> None:
    """None at all: nothing is enforced (the cgroup's parent allows all); others: those."""
    script = "mknod /tmp/k c 1 11 2>/dev/null && echo made || echo refused"
    for name, rules in (("none", None), ("own", [{"allow": True, "access": "rwm"},
                                                 {"allow": False, "type": "c", "major": 1, "minor": 11}])):
        runtime.create(name, sh("rules", script))
        config_file = runtime.bundle_dir(name) / "config.json"
        config = json.loads(config_file.read_text())
        if rules is None:
            del config["linux"]["resources"]["devices"]
        else:
            config["linux"]["resources"]["devices"] = rules
        config_file.write_text(json.dumps(config))
        runtime.start(name)
        runtime.wait(name, 30)
        assert lines(runtime, name, "stdout") == ["made" if rules is None else "refused"], name


def test_a_device_entry_must_name_a_device(runtime: Runtime, tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("x")
    for path, reason in ((str(tmp_path / "plain"), "not a character or block device"),
                         (str(tmp_path / "missing"), "No such file"), ("/dev/null", "must be made of r, w and m")):
        spec = dataclasses.replace(sh("d", "true"),
                                   devices=(DeviceSpec(path, "/dev/x", "x" if path == "/dev/null" else "rwm"),))
        with pytest.raises(InvalidSpec, match=reason):
            runtime.create("c1", spec)
    with pytest.raises(InvalidSpec, match="must be under /dev/"):
        runtime.create("c1", dataclasses.replace(sh("d", "true"), devices=(DeviceSpec("/dev/null", "dev/x"),)))


def test_a_device_is_made_under_dev_only(runtime: Runtime, tmp_path: Path) -> None:
    """Elsewhere its node would be written to the image's rw layer, or through a volume to the host's disk."""
    data = tmp_path / "data"
    data.mkdir()
    volume = dataclasses.replace(sh("d", "true"), mounts=(MountSpec("/data", "bind", str(data)),))
    for target in ("/data/null", "/dev/../data/null", "/etc/passwd"):
        with pytest.raises(InvalidSpec, match="its path in the container must be under /dev/"):
            runtime.create("c1", dataclasses.replace(volume, devices=(DeviceSpec("/dev/null", target),)))
    assert list(data.iterdir()) == []


def test_a_device_over_an_existing_node_fails_the_start(runtime: Runtime) -> None:
    """A config.json giving a path that is there already (here: in the image) fails, naming it."""
    runtime.create("c1", sh("d", "true"))
    config_file = runtime.bundle_dir("c1") / "config.json"
    config = json.loads(config_file.read_text())
    config["linux"]["devices"] = [{"path": "/etc/passwd", "type": "c", "major": 1, "minor": 3}]
    config_file.write_text(json.dumps(config))
    with pytest.raises(StartFailed, match="device /etc/passwd: something is at that path"):
        runtime.start("c1")


def test_without_any_device_cgroup_the_start_is_refused(tmp_path: Path) -> None:
    """No v1 devices controller and no cgroup2 mount: no rule can be enforced, so none is pretended."""
    mounts = {c: tmp_path / c for c in ("memory", "cpu", "pids")}
    cgroup = Cgroup.within("box", mounts, {})
    assert cgroup.devices is None
    with pytest.raises(OSError, match="device rules cannot be enforced"):
        cgroup.create(Limits(), devices.DEFAULT_RULES)
    cgroup.create(Limits())  # no rules asked: nothing to enforce


def test_the_device_rules_go_where_the_host_can_enforce_them(tmp_path: Path) -> None:
    v1 = {c: Path(f"/cg/{c}") for c in ("memory", "cpu", "pids", "devices")}
    hybrid = Cgroup.within("box", {**v1, V2: Path("/cg/unified")}, {"devices": "/agent", V2: "/agent2"})
    assert (hybrid.devices, hybrid.devices_v2) == (Path("/cg/devices/agent/box"), False)
    no_v1_devices = Cgroup.within("box", {c: v1[c] for c in ("memory", "cpu", "pids")} | {V2: Path("/cg/unified")},
                                  {V2: "/agent2"})
    assert (no_v1_devices.devices, no_v1_devices.devices_v2) == (Path("/cg/unified/agent2/box"), True)
    pure_v2 = Cgroup.within("/abs/box", {V2: Path("/sys/fs/cgroup")}, {V2: "/agent"})
    assert (pure_v2.devices, pure_v2.devices_v2) == (Path("/sys/fs/cgroup/abs/box"), True)
    assert set(pure_v2.dirs.values()) == {pure_v2.devices}


@pytest.mark.skipif(not ((UNIFIED / "cgroup.procs").exists() and Path("/sys/fs/cgroup/devices").is_mount()),
                    reason="needs a v1 devices hierarchy to detach and a cgroup2 mount at /sys/fs/cgroup/unified")
def test_a_container_confined_by_the_v2_program(tmp_path: Path, images: ImageStore) -> None:
    """End to end: without the v1 devices controller (detached in a mount namespace of a child
    process), a container's device rules are the eBPF program on its v2 directory."""
    done = subprocess.run([sys.executable, "-m", "tests.agent.runtime.v2_devices", str(images.root),
                           str(tmp_path / "moorage-runtime")], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).parents[3])
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.splitlines()[-1])
    assert got["v2"] is True and got["devices"].startswith(str(UNIFIED))
    assert got["out"][:3] == ["null-ok", "full-full", "mknod-refused"]
    assert got["out"][3] == "0::" + got["devices"].removeprefix(str(UNIFIED))  # it ran in that v2 cgroup
    assert not Path(got["devices"]).exists()  # removed with the container


# --- the kernel's two forms -----------------------------------------------------------------


@pytest.fixture
def v1_devices_cgroup() -> Iterator[Path]:
    mounts, own = layout()
    if "devices" not in mounts:
        pytest.skip("no cgroup v1 devices controller on this host")
    path = mounts["devices"] / own.get("devices", "/").lstrip("/") / f"moorage-test-devices-{uuid.uuid4().hex[:8]}"
    try:
        yield path
    finally:
        for child in sorted(path.glob("**/"), key=lambda p: -len(p.parts)):
            child.rmdir()


# few nodes, so that rules often meet on the same node (merges, partial removals, wildcards)
rules_strategy = st.lists(st.builds(
    DeviceRule, allow=st.booleans(), kind=st.sampled_from(["a", "c", "c", "c", "b"]),
    major=st.sampled_from([None, 1, 1]), minor=st.sampled_from([None, 3, 3]),
    access=st.sampled_from(["r", "w", "m", "rw", "rm", "wm", "rwm"])), max_size=10)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rules=rules_strategy)
def test_v1_kernel_holds_what_the_emulator_says(v1_devices_cgroup: Path, rules: list[DeviceRule]) -> None:
    """Rules in any order, with partial access and wildcards: the v1 kernel and Allowlist agree
    (so the v2 program, made from Allowlist, decides as v1 does)."""
    cgroup = v1_devices_cgroup / uuid.uuid4().hex[:8]
    cgroup.mkdir(parents=True)
    try:
        # the parent allows everything; start from an allowlist so that exceptions are visible
        rules = [DeviceRule(False), *rules, DeviceRule(True, "c", 1, 3, "r")]
        for name, line in devices.v1_lines(rules):
            try:
                (cgroup / name).write_text(line)
            except OSError as e:  # e.g. allowing what the parent denies; not the case here
                pytest.fail(f"{name} {line}: {e}")
        kernel = Allowlist.parse((cgroup / "devices.list").read_text())
        assert kernel.listing() == Allowlist.of(rules).listing()
    finally:
        cgroup.rmdir()


def _try_in(cgroup: Cgroup, attempts: list[tuple[str, str, int]], scratch: Path) -> list[str]:
    """In a forked child moved into ``cgroup``: ("open", path, flags) or ("mknod", "c", makedev)."""
    go_r, go_w = os.pipe()
    out_r, out_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(go_w)
            os.read(go_r, 1)
            results = []
            for n, (what, target, number) in enumerate(attempts):
                try:
                    if what == "open":
                        os.close(os.open(target, number))
                    else:
                        os.mknod(scratch / f"node{n}", stat.S_IFCHR | 0o600, number)
                    results.append("ok")
                except OSError as e:
                    results.append(errno.errorcode[e.errno])
            os.write(out_w, " ".join(results).encode())
        finally:
            os._exit(0)
    os.close(go_r)
    os.close(out_w)
    try:
        cgroup.join(pid)
    finally:
        os.write(go_w, b"1")
        os.close(go_w)
    with os.fdopen(out_r) as f:
        got = f.read().split()
    os.waitpid(pid, 0)
    return got


@pytest.mark.skipif(not (UNIFIED / "cgroup.procs").exists(), reason="no cgroup2 hierarchy at /sys/fs/cgroup/unified")
@pytest.mark.parametrize("name", ["allowlist", "denylist"])
def test_the_v2_program_decides_as_the_rules_say(tmp_path: Path, name: str) -> None:
    """The hand-assembled eBPF program, loaded and attached to a real cgroup2 directory."""
    rules = {
        # Docker's list without /dev/full, and with /dev/zero readable only
        "allowlist": [r for r in devices.DEFAULT_RULES if (r.major, r.minor) not in ((1, 7), (1, 5))]
        + [DeviceRule(True, "c", 1, 5, "r")],
        # everything but /dev/full and the making of 1:9 nodes
        "denylist": [DeviceRule(True), DeviceRule(False, "c", 1, 7), DeviceRule(False, "c", 1, 9, "m")],
    }[name]
    directory = UNIFIED / f"moorage-test-devices-{uuid.uuid4().hex[:8]}"
    cgroup = Cgroup({}, v2=True, devices=directory, devices_v2=True)
    try:
        cgroup.create(Limits(), rules)
        got = _try_in(cgroup, [("open", "/dev/null", os.O_RDWR), ("open", "/dev/full", os.O_WRONLY),
                               ("open", "/dev/zero", os.O_RDONLY), ("open", "/dev/zero", os.O_WRONLY),
                               ("mknod", "c", os.makedev(1, 11)), ("mknod", "c", os.makedev(1, 9))], tmp_path)
    finally:
        cgroup.remove()
    expected = {"allowlist": ["ok", "EPERM", "ok", "EPERM", "EPERM", "ok"],
                "denylist": ["ok", "EPERM", "ok", "ok", "ok", "EPERM"]}[name]
    assert got == expected
    allowlist = Allowlist.of(rules)  # the emulator agrees with the kernel running the program
    assert [allowlist.allows("c", 1, m, a) for m, a in ((3, "rw"), (7, "w"), (5, "r"), (5, "w"), (11, "m"), (9, "m"))] \
        == [e == "ok" for e in expected]
