"""cgroups on this machine's v1 hierarchies for real: limits, OOM, pids, removal, kill-all."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from agent.runtime import ContainerStatus, Limits, Runtime
from agent.runtime.containers.cgroups import Cgroup
from moorage.localcluster.procs import wait_for
from tests.agent.runtime.support import lines, sh

MiB = 1024 * 1024


def cgroup_of(runtime: Runtime, container_id: str) -> Cgroup:
    return Cgroup.locate(f"{runtime.cgroup_parent}/{container_id}")


def test_limits_reach_the_cgroup_files_and_pid_1_is_inside(runtime: Runtime) -> None:
    limits = Limits(memory_bytes=64 * MiB, cpu_shares=512, cpu_quota_us=25_000, pids=32)
    state = runtime.run("c1", dataclasses.replace(sh("limited", "sleep 1000"), limits=limits))
    group = cgroup_of(runtime, "c1")
    assert not group.v2  # this machine: v1 controllers (cgroup v2 formats are unit-tested)
    files = {(c, f): (group.dirs[c] / f).read_text().strip() for c, f in [
        ("memory", "memory.limit_in_bytes"), ("cpu", "cpu.shares"), ("cpu", "cpu.cfs_quota_us"),
        ("cpu", "cpu.cfs_period_us"), ("pids", "pids.max")]}
    assert files == {("memory", "memory.limit_in_bytes"): str(64 * MiB), ("cpu", "cpu.shares"): "512",
                     ("cpu", "cpu.cfs_quota_us"): "25000", ("cpu", "cpu.cfs_period_us"): "100000",
                     ("pids", "pids.max"): "32"}
    assert group.pids() == {state.pid}
    # Under this process's own cgroup (a relative parent), so the agent's own limits still hold.
    own = Path("/proc/self/cgroup").read_text()
    memory_own = next(line.split(":", 2)[2] for line in own.splitlines() if ":memory:" in line)
    assert str(group.dirs["memory"]).endswith(f"{memory_own.rstrip('/')}/{runtime.cgroup_parent}/c1")


def test_an_oom_kill_is_reported_as_such(runtime: Runtime) -> None:
    spec = dataclasses.replace(sh("hog", "head -c 100m /dev/zero | tail"), limits=Limits(memory_bytes=16 * MiB))
    runtime.run("c1", spec)
    state = runtime.wait("c1", 30)
    assert (state.status, state.exit_code, state.oom_killed) == (ContainerStatus.EXITED, 137, True)
    runtime.run("c2", sh("fine", "head -c 1m /dev/zero | tail"))
    assert runtime.wait("c2", 10).oom_killed is False


def test_the_pids_limit_stops_a_fork_bomb(runtime: Runtime) -> None:
    script = "for i in $(seq 20); do sleep 1000 & done; wait"
    runtime.run("c1", dataclasses.replace(sh("bomb", script), limits=Limits(pids=8)))
    state = runtime.wait("c1", 10)  # without the limit, it would wait for 20 sleeps
    assert state.status is ContainerStatus.EXITED and state.exit_code != 0
    assert any("can't fork" in line for line in lines(runtime, "c1", "stderr"))


def test_the_cgroup_goes_with_the_container(runtime: Runtime) -> None:
    runtime.run("c1", sh("short", "true"))
    runtime.wait("c1", 10)
    group = cgroup_of(runtime, "c1")
    wait_for(lambda: not any(d.exists() for d in group.dirs.values()), 10, "the shim to remove the cgroup")
    runtime.run("c2", sh("long", "sleep 1000"))
    runtime.remove("c2", force=True)
    assert not any(d.exists() for d in cgroup_of(runtime, "c2").dirs.values())


def test_kill_everything_empties_the_agents_cgroup(runtime: Runtime) -> None:
    states = [runtime.run(f"c{i}", sh(f"victim{i}", "sleep 1000 & sleep 1000")) for i in range(2)]
    parent = Cgroup.locate(runtime.cgroup_parent)
    wait_for(lambda: len(parent.pids()) == 4, 15, "both shells to fork their background sleep")
    assert {s.pid for s in states} <= parent.pids()
    runtime.kill_everything()
    assert parent.pids() == set()
    assert all(runtime.wait(s.id, 10).status is ContainerStatus.EXITED for s in states)
