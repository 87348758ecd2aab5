"""Pure pieces of the isolation, cgroup, restart and log code: no kernel needed."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from agent.runtime.containers import caps
from agent.runtime.containers import devices
from agent.runtime.containers import oci
from agent.runtime.containers import users
from agent.runtime.containers import syscalls as sc
from agent.runtime.containers.cgroups import Limits, hierarchies, oom_kills, own_cgroups, shares_to_weight, v1_files, v2_files
from agent.runtime.containers.logs import LogWriter, format_record, log_files, read_log, parse_time
from agent.runtime.containers.process import parse_signal
from agent.runtime.containers.restart import RestartPolicy

PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n"
GROUP = "root:x:0:\napp:x:1000:\nwheel:x:10:app,other\ndocker:x:999:app\nnogroup:x:65534:\n"


def test_docker_default_capabilities_with_add_and_drop() -> None:
    default = caps.resolve()
    assert len(default) == 14 and "CAP_NET_RAW" in default and "CAP_SYS_ADMIN" not in default
    assert caps.mask(default) == 0xA80425FB  # what `docker run busybox grep CapEff /proc/self/status` shows
    changed = caps.resolve(cap_add=["net_admin"], cap_drop=["CAP_CHOWN", "mknod"])
    assert "CAP_NET_ADMIN" in changed and "CAP_CHOWN" not in changed and "CAP_MKNOD" not in changed
    assert caps.resolve(cap_drop=["ALL"], cap_add=["KILL"]) == ("CAP_KILL",)
    assert len(caps.resolve(cap_add=["all"])) == len(caps.NAMES)
    with pytest.raises(ValueError, match="unknown capability 'CAP_FLY'"):
        caps.resolve(cap_add=["CAP_FLY"])


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("", users.User(0, 0, (), "/root")),
        ("app", users.User(1000, 1000, (10, 999), "/home/app")),
        ("1000", users.User(1000, 1000, (10, 999), "/home/app")),
        ("app:wheel", users.User(1000, 10, (999,), "/home/app")),
        ("4242:4343", users.User(4242, 4343, (), "/")),  # numeric ids need no entry
        ("nobody", users.User(65534, 65534, (), "/")),
    ],
)
def test_user_resolution(spec: str, expected: users.User) -> None:
    assert users.resolve(spec, PASSWD, GROUP) == expected


def test_unknown_user_or_group_is_named() -> None:
    with pytest.raises(ValueError, match="user 'ghost' not found"):
        users.resolve("ghost", PASSWD, GROUP)
    with pytest.raises(ValueError, match="group 'ghosts' not found"):
        users.resolve("app:ghosts", PASSWD, GROUP)


def test_mount_options() -> None:
    parsed = oci.parse_options(["nosuid", "noexec", "ro", "rprivate", "mode=755", "size=65536k"])
    assert parsed.flags == sc.MS_NOSUID | sc.MS_NOEXEC | sc.MS_RDONLY
    assert parsed.propagation == sc.MS_PRIVATE | sc.MS_REC
    assert parsed.data == "mode=755,size=65536k"
    assert oci.parse_options(["ro", "rw"]).flags == 0  # the last word wins
    assert oci.parse_options(["rbind"]).flags == sc.MS_BIND | sc.MS_REC


def test_config_has_runc_defaults_and_what_was_asked() -> None:
    config = oci.build(oci.ConfigInput(
        args=("sh",), env=("A=1",), cwd="/srv", hostname="h", user=users.User(5, 6, (7,)),
        capabilities=caps.resolve(), rlimits={"RLIMIT_NOFILE": 1 << 20}, host_hard_limits={"RLIMIT_NOFILE": 20000},
        read_only=True, mounts=(oci.Mount("/data", "/host/data", read_only=True), oci.Mount("/tmp", "tmpfs", "tmpfs")),
        limits=Limits(memory_bytes=1 << 26, cpu_shares=512, cpu_quota_us=50000, pids=64), cgroups_path="p/c",
        overlay=oci.Overlay(("/l0", "/l1"), "/u", "/w"), init=True, network_path="/run/netns/x",
    ))
    process = config["process"]
    assert process["user"] == {"uid": 5, "gid": 6, "additionalGids": [7]}
    assert process["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": 20000, "soft": 20000}]
    assert process["noNewPrivileges"] is True and process["capabilities"]["inheritable"] == []
    assert config["root"] == {"path": "rootfs", "readonly": True}
    assert "/proc/kcore" in config["linux"]["maskedPaths"] and "/proc/sys" in config["linux"]["readonlyPaths"]
    assert config["mounts"][-2:] == [
        {"destination": "/data", "type": "bind", "source": "/host/data", "options": ["rbind", "ro"]},
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777"]},
    ]
    assert {"type": "network", "path": "/run/netns/x"} in config["linux"]["namespaces"]
    assert config["linux"]["resources"] == {"memory": {"limit": 1 << 26}, "cpu": {"shares": 512, "quota": 50000,
                                            "period": 100000}, "pids": {"limit": 64},
                                            "devices": [r.to_oci() for r in devices.DEFAULT_RULES]}
    assert oci.limits_of(config) == Limits(memory_bytes=1 << 26, cpu_shares=512, cpu_quota_us=50000, pids=64)
    assert config["annotations"] == {oci.LOWER: "/l1:/l0", oci.UPPER: "/u", oci.WORK: "/w", oci.INIT: "true"}
    host = oci.build(oci.ConfigInput(args=("sh",), env=(), cwd="/", hostname="h", host_network=True))
    assert "network" not in {ns["type"] for ns in host["linux"]["namespaces"]}


def test_cgroup_v1_and_v2_files() -> None:
    limits = Limits(memory_bytes=1 << 26, cpu_shares=1024, cpu_quota_us=50000, pids=64)
    assert v1_files(limits) == {
        ("memory", "memory.limit_in_bytes"): str(1 << 26), ("cpu", "cpu.shares"): "1024",
        ("cpu", "cpu.cfs_period_us"): "100000", ("cpu", "cpu.cfs_quota_us"): "50000", ("pids", "pids.max"): "64",
    }
    assert v2_files(limits) == {
        ("memory", "memory.max"): str(1 << 26), ("memory", "memory.swap.max"): "0", ("cpu", "cpu.weight"): "39",
        ("cpu", "cpu.max"): "50000 100000", ("pids", "pids.max"): "64",
    }
    assert v1_files(Limits()) == v2_files(Limits()) == {}
    assert (shares_to_weight(2), shares_to_weight(1024), shares_to_weight(262144)) == (1, 39, 10000)
    assert Limits.from_millicores(500).cpu_quota_us == 50000


def test_oom_counter_of_v1_and_v2() -> None:
    assert oom_kills("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n") == 2  # v1 memory.oom_control
    assert oom_kills("low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\noom_group_kill 0\n") == 1  # v2 memory.events
    assert oom_kills("oom_kill_disable 0\n") == 0


def test_cgroup_layout_of_hybrid_and_unified_hosts() -> None:
    hybrid = ("cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0\n"
              "cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0\n"
              "cgroup /sys/fs/cgroup/pids cgroup rw,pids 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n")
    assert hierarchies(hybrid) == {"memory": Path("/sys/fs/cgroup/memory"), "cpu": Path("/sys/fs/cgroup/cpu"),
                                   "pids": Path("/sys/fs/cgroup/pids"), "": Path("/sys/fs/cgroup/unified")}
    assert hierarchies("cgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate 0 0\n") == {"": Path("/sys/fs/cgroup")}
    assert own_cgroups("4:memory:/a/b\n1:cpu,cpuacct:/\n0::/user.slice\n") == {
        "memory": "/a/b", "cpu": "/", "cpuacct": "/", "": "/user.slice"}


def test_restart_policy_and_back_off() -> None:
    assert RestartPolicy.parse("on-failure:3") == RestartPolicy("on-failure", 3)
    failing = RestartPolicy.parse("on-failure:2")
    assert [failing.should_restart(1, n) for n in range(3)] == [True, True, False]
    assert not failing.should_restart(0, 0)
    assert RestartPolicy.parse("always").should_restart(0, 100)
    assert not RestartPolicy.parse("no").should_restart(1, 0)
    policy = RestartPolicy(delay=0.1, max_delay=1.0)
    assert [policy.backoff(n) for n in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    for bad in ("sometimes", "always:3", "on-failure:x"):
        with pytest.raises(ValueError, match="invalid restart policy"):
            RestartPolicy.parse(bad)


def test_signal_names() -> None:
    assert parse_signal("SIGTERM") == parse_signal("term") == parse_signal("15") == signal.SIGTERM
    with pytest.raises(ValueError, match="unknown signal 'SIGNOPE'"):
        parse_signal("SIGNOPE")


def test_log_rotation_keeps_the_newest_files_and_reads_across_them(tmp_path: Path) -> None:
    path = tmp_path / "container.log"
    writer = LogWriter(path, max_bytes=200, max_files=2)
    for n in range(30):
        writer.write([format_record("stdout", f"line {n}".encode(), 1_700_000_000_000_000_000 + n * 1000)])
    writer.close()
    assert [p.name for p in log_files(path)] == ["container.log.2", "container.log.1", "container.log"]
    assert all(p.stat().st_size <= 200 for p in log_files(path))
    lines = [r.line for r in read_log(path, tail=0, follow=False, finished=lambda: True)]
    assert lines == [f"line {n}" for n in range(30 - len(lines), 30)] and 3 < len(lines) < 30
    assert [r.line for r in read_log(path, tail=2, follow=False, finished=lambda: True)] == ["line 28", "line 29"]
    since = parse_time("2023-11-14T22:13:20.000027Z")  # the 28th record's time
    assert [r.line for r in read_log(path, tail=0, follow=False, finished=lambda: True, since=since)] == [
        "line 27", "line 28", "line 29"]


def test_a_service_specs_container_options_map_to_the_runtime() -> None:
    from agent.converge import runtime_fields
    from agent.runtime import DeviceSpec, MountSpec
    from moorage.v1 import types_pb2

    spec = types_pb2.ServiceSpec(
        name="web", image="busybox", user="nobody", working_dir="/srv", read_only_rootfs=True, init=True,
        stop_signal="SIGQUIT", cap_add=["NET_ADMIN"], cap_drop=["CHOWN"], volumes_from=["db"],
        mounts=[types_pb2.Mount(type=types_pb2.Mount.TYPE_BIND, source="/x", target="/y", read_only=True),
                types_pb2.Mount(type=types_pb2.Mount.TYPE_VOLUME, source="data", target="/data"),
                types_pb2.Mount(type=types_pb2.Mount.TYPE_TMPFS, target="/tmp")],
        resources=types_pb2.ResourceRequirements(limits=types_pb2.Resources(cpu_millis=500, memory_bytes=1 << 26),
                                                 reservations=types_pb2.Resources(cpu_millis=250), pids_limit=50))
    assert runtime_fields(spec) == {
        "limits": Limits(memory_bytes=1 << 26, cpu_shares=256, cpu_quota_us=50_000, pids=50),
        "mounts": (MountSpec("/y", "bind", "/x", True), MountSpec("/data", "volume", "data"), MountSpec("/tmp", "tmpfs")),
        "volumes_from": ("label:moorage.service=db",), "user": "nobody", "working_dir": "/srv",
        "read_only_rootfs": True, "cap_add": ("NET_ADMIN",), "cap_drop": ("CHOWN",), "init": True,
        "seccomp": "default", "devices": (), "stop_signal": "SIGQUIT",
    }
    assert runtime_fields(types_pb2.ServiceSpec())["limits"] == Limits()
    loose = types_pb2.ServiceSpec(seccomp=types_pb2.SECCOMP_PROFILE_UNCONFINED, devices=[
        types_pb2.Device(host_path="/dev/fuse"), types_pb2.Device(host_path="/dev/sdb", container_path="/dev/xvdb",
                                                                  permissions="r")])
    assert (runtime_fields(loose)["seccomp"], runtime_fields(loose)["devices"]) == (
        "unconfined", (DeviceSpec("/dev/fuse", "", "rwm"), DeviceSpec("/dev/sdb", "/dev/xvdb", "r")))
