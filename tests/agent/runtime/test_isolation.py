"""Isolation on the real kernel: namespaces, masked and read-only paths, /dev, capabilities,
no_new_privs, rlimits, read-only root, user and working dir, the minimal init."""

from __future__ import annotations

import dataclasses
import os
import resource
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.runtime import ContainerSpec, ImageConfig, ImageStore, InvalidSpec, MountSpec, Runtime
from agent.runtime.containers import caps
from moorage.localcluster.procs import wait_for
from tests.agent.runtime.support import lines, sh


def output(runtime: Runtime, spec: ContainerSpec, container_id: str = "c1",
           stream: str | None = None) -> tuple[int | None, list[str]]:
    """Exit code and log lines (of one ``stream``: the order between stdout and stderr lines is
    the order the shim read its two pipes in, not the order they were written)."""
    runtime.run(container_id, spec)
    state = runtime.wait(container_id, 10)
    return state.exit_code, lines(runtime, container_id, stream)


def status_field(text: list[str], name: str) -> str:
    return next(line.split(":", 1)[1].strip() for line in text if line.startswith(f"{name}:"))


def test_every_namespace_is_new(runtime: Runtime) -> None:
    state = runtime.run("c1", sh("ns", "sleep 1000"))
    for ns in ("mnt", "pid", "net", "ipc", "uts"):
        assert os.readlink(f"/proc/{state.pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}"), ns


def test_kernel_paths_are_masked_or_read_only(runtime: Runtime) -> None:
    # stderr is dropped: its lines interleave with stdout's in the log in any order.
    script = """wc -c < /proc/keys; wc -c < /proc/timer_list; ls /sys/firmware | wc -l
        echo 1 2>/dev/null > /proc/sys/kernel/panic_on_oops || echo sys-ro
        echo h 2>/dev/null > /proc/sysrq-trigger || echo sysrq-ro
        touch /sys/x 2>/dev/null || echo sysfs-ro
        grep -c '^proc /proc/sys proc ro' /proc/self/mounts"""
    code, out = output(runtime, sh("paths", script), stream="stdout")
    assert out[:3] == ["0", "0", "0"]
    assert {"sys-ro", "sysrq-ro", "sysfs-ro"} <= set(out)
    assert out[-1] == "1"


def test_dev_has_the_standard_nodes_pts_and_shm(runtime: Runtime) -> None:
    script = """for n in null zero full random urandom tty; do test -c /dev/$n && echo $n; done
        echo x > /dev/shm/file && cat /dev/shm/file
        awk '$2 ~ "^/dev" {print $2, $3}' /proc/self/mounts | sort
        readlink /dev/fd; readlink /dev/ptmx"""
    code, out = output(runtime, sh("dev", script))
    assert out == ["null", "zero", "full", "random", "urandom", "tty", "x", "/dev tmpfs", "/dev/mqueue mqueue",
                   "/dev/pts devpts", "/dev/shm tmpfs", "/proc/self/fd", "pts/ptmx"]


def test_capabilities_are_dockers_with_add_and_drop_and_no_new_privs(runtime: Runtime) -> None:
    script = "grep -E '^(CapEff|CapBnd|CapPrm|NoNewPrivs):' /proc/self/status"
    _, default = output(runtime, sh("caps", script), "c1")
    expected = f"{caps.mask(caps.resolve()):016x}"
    assert [status_field(default, f) for f in ("CapEff", "CapBnd", "CapPrm", "NoNewPrivs")] == [expected] * 3 + ["1"]
    spec = dataclasses.replace(sh("caps", script + "; ip link set lo mtu 1280 && echo netadmin"),
                               cap_add=("NET_ADMIN",), cap_drop=("CHOWN",))
    _, changed = output(runtime, spec, "c2")
    assert status_field(changed, "CapEff") == f"{caps.mask(caps.resolve(['NET_ADMIN'], ['CHOWN'])):016x}"
    assert "netadmin" in changed  # the added capability works (in the container's own netns)
    _, plain = output(runtime, sh("caps", "chown 1 /tmp && echo chowned"), "c3")
    _, dropped = output(runtime, dataclasses.replace(sh("caps", "chown 1 /tmp || echo denied"), cap_drop=("CHOWN",)), "c4")
    assert plain == ["chowned"] and "denied" in dropped


def test_rlimits_are_set_within_the_hosts_hard_limit(runtime: Runtime) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    spec = dataclasses.replace(sh("limits", "ulimit -n; ulimit -Hn; ulimit -c"),
                               rlimits={"RLIMIT_NOFILE": hard * 4, "RLIMIT_CORE": 0})
    assert output(runtime, spec)[1] == [str(hard), str(hard), "0"]
    with pytest.raises(InvalidSpec, match="unknown rlimit 'RLIMIT_NOPE'"):
        runtime.create("c2", dataclasses.replace(spec, rlimits={"RLIMIT_NOPE": 1}))


def test_read_only_root_with_a_writable_tmpfs(runtime: Runtime) -> None:
    spec = dataclasses.replace(sh("ro", "touch /file || echo root-ro; touch /tmp/file && echo tmp-rw"),
                               read_only_rootfs=True, mounts=(MountSpec("/tmp", "tmpfs"),))
    code, out = output(runtime, spec)
    assert "root-ro" in out and "tmp-rw" in out
    assert not (runtime.state("c1").upper_dir / "file").exists()


@pytest.fixture(scope="module")
def user_image(images: ImageStore, busybox_rootfs: Path) -> str:
    images.import_rootfs(busybox_rootfs, "busybox-nobody",
                         ImageConfig(cmd=("sh", "-c", "id -u; id -g; pwd"), user="nobody", working_dir="/srv/app"))
    return "busybox-nobody"


def test_user_and_working_dir_come_from_the_image_or_the_spec(runtime: Runtime, user_image: str) -> None:
    assert output(runtime, ContainerSpec(name="img", image=user_image), "c1")[1] == ["65534", "65534", "/srv/app"]
    spec = ContainerSpec(name="spec", image=user_image, user="1000:2000", working_dir="/tmp")
    assert output(runtime, spec, "c2")[1] == ["1000", "2000", "/tmp"]
    _, unprivileged = output(runtime, ContainerSpec(name="caps", image=user_image,
                                                    args=("grep", "CapEff", "/proc/self/status")), "c3")
    assert unprivileged == ["CapEff:\t0000000000000000"]  # as with Docker: a non-root user keeps no capability
    with pytest.raises(InvalidSpec, match="user 'ghost' not found"):
        runtime.create("c4", ContainerSpec(name="ghost", image=user_image, user="ghost"))


def test_init_is_pid_1_reaps_orphans_and_forwards_signals(runtime: Runtime) -> None:
    spec = dataclasses.replace(sh("init", "(sleep 0.2 &); trap 'exit 3' TERM; echo $$; while true; do sleep 0.1; done"),
                               init=True)
    state = runtime.run("c1", spec)
    wait_for(lambda: lines(runtime, "c1") == ["2"], 15, "the command to run as PID 2")
    # The orphaned `sleep 0.2` is reparented to PID 1 when its subshell ends; unreaped, it would
    # stay in ps as a zombie (stat Z) after it exits.
    def processes() -> list[list[str]]:
        code, ps, _ = runtime.exec_run("c1", ["ps", "-o", "stat,args"])
        assert code == 0
        return [line.split(None, 1) for line in ps.decode().splitlines()[1:]]

    wait_for(lambda: not any(args == "sleep 0.2" or stat.startswith("Z") for stat, args in processes()), 15,
             "the orphan to end and be reaped")
    assert runtime.stop("c1", timeout=10).exit_code == 3  # SIGTERM went through init to the trap
    assert state.pid and not Path(f"/proc/{state.pid}").exists()


def test_without_init_a_pid_1_without_handler_needs_sigkill(runtime: Runtime) -> None:
    runtime.run("c1", ContainerSpec(name="bare", image="busybox", args=("sleep", "1000"), stop_grace_period=0.2))
    assert runtime.stop("c1").exit_code == 128 + signal.SIGKILL
    runtime.run("c2", ContainerSpec(name="init", image="busybox", args=("sleep", "1000"), init=True))
    assert runtime.stop("c2", timeout=10).exit_code == 128 + signal.SIGTERM


@pytest.fixture
def traversable_runtime(busybox_rootfs: Path) -> Iterator[Runtime]:
    """A Runtime whose root and images the mapped root of a user namespace can reach (0711 dirs),
    as runc and podman need for their user namespaces too."""
    base = Path(tempfile.mkdtemp(prefix="moorage-userns-"))
    base.chmod(0o711)
    images = ImageStore(base / "images")
    images.import_rootfs(busybox_rootfs, "busybox", ImageConfig(cmd=("sh",)))
    rt = Runtime(base / "runtime", images)
    try:
        yield rt
    finally:
        rt.release()
        shutil.rmtree(base)


def test_user_namespace_maps_root_to_an_unprivileged_host_id(traversable_runtime: Runtime) -> None:
    rt = traversable_runtime
    spec = dataclasses.replace(sh("userns", "id -u; cat /proc/self/uid_map; echo x > /written; sleep 1000"),
                               userns=(100000, 65536))
    state = rt.run("c1", spec)
    wait_for(lambda: len(lines(rt, "c1")) >= 2, 10, "the ids")
    assert [line.split() for line in lines(rt, "c1")] == [["0"], ["0", "100000", "65536"]]
    host_ids = next(line for line in Path(f"/proc/{state.pid}/status").read_text().splitlines() if line.startswith("Uid:"))
    assert host_ids.split()[1:] == ["100000"] * 4
    assert os.readlink(f"/proc/{state.pid}/ns/user") != os.readlink("/proc/self/ns/user")
    wait_for(lambda: (state.upper_dir / "written").exists(), 15, "the write")
    assert (state.upper_dir / "written").stat().st_uid == 100000
    code, out, _ = rt.exec_run("c1", ["id", "-u"])
    assert (code, out) == (0, b"0\n")
