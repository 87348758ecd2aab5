"""Lifecycle beyond the basics: restart policy with back-off, stop signal of the image, log
rotation, since and retention, state re-derived from the kernel."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
from pathlib import Path

import pytest

from agent.runtime import ContainerSpec, ContainerStatus, ImageConfig, ImageStore, RestartPolicy, Runtime
from moorage.localcluster.procs import wait_for
from tests.agent.runtime.support import gone, lines, sh

FAST = {"delay": 0.05, "max_delay": 0.2, "window": 5.0}


def test_on_failure_restarts_up_to_the_limit_with_back_off(runtime: Runtime) -> None:
    spec = dataclasses.replace(sh("flaky", "echo run; exit 3"), restart=RestartPolicy.parse("on-failure:2", **FAST))
    runtime.run("c1", spec)
    wait_for(lambda: runtime.state("c1").restarts == 2 and len(lines(runtime, "c1")) == 3, 10, "two restarts")
    shim_pid = json.loads((runtime.bundle_dir("c1") / "state.json").read_text())["shim_pid"]
    wait_for(lambda: gone(shim_pid), 10, "the shim to give up")
    state = runtime.state("c1")
    assert (state.status, state.exit_code, state.restarts) == (ContainerStatus.EXITED, 3, 2)
    records = list(runtime.read_logs("c1"))
    gaps = [(b.time - a.time).total_seconds() for a, b in zip(records, records[1:])]
    policy = spec.restart
    assert gaps[0] >= policy.backoff(1) and gaps[1] >= policy.backoff(2) > policy.backoff(1)  # lower bounds: the waits


def test_no_restart_after_success_with_on_failure_but_with_always(runtime: Runtime) -> None:
    runtime.run("ok", dataclasses.replace(sh("ok", "echo once"), restart=RestartPolicy.parse("on-failure", **FAST)))
    assert runtime.wait("ok", 10).exit_code == 0
    runtime.run("always", dataclasses.replace(sh("always", "echo again"), restart=RestartPolicy.parse("always", **FAST)))
    wait_for(lambda: runtime.state("always").restarts >= 2, 10, "restarts of a successful command")
    assert lines(runtime, "ok") == ["once"]
    state = runtime.stop("always", timeout=1)  # stop cancels any further restart
    restarts = state.restarts
    assert state.status is ContainerStatus.EXITED
    assert runtime.wait("always", 0.5).status is ContainerStatus.EXITED and runtime.state("always").restarts == restarts


def test_restarts_keep_the_rw_layer_and_a_new_pid(runtime: Runtime) -> None:
    script = "cat /count 2>/dev/null; echo x >> /count; sleep 0.3; exit 1"
    runtime.run("c1", dataclasses.replace(sh("layer", script), restart=RestartPolicy.parse("on-failure:1", **FAST)))
    first = runtime.state("c1").pid
    wait_for(lambda: runtime.state("c1").restarts == 1 and runtime.state("c1").pid not in (0, first), 10, "the restart")
    assert runtime.wait("c1", 10).exit_code == 1
    assert lines(runtime, "c1") == ["x"]  # the second run saw the first run's write


@pytest.fixture(scope="module")
def usr1_image(images: ImageStore, busybox_rootfs: Path) -> str:
    images.import_rootfs(busybox_rootfs, "busybox-usr1", ImageConfig(cmd=("sh",), stop_signal="SIGUSR1"))
    return "busybox-usr1"


def test_the_images_stop_signal_unless_the_spec_names_one(runtime: Runtime, usr1_image: str) -> None:
    script = ("trap 'echo got-usr1; exit 10' USR1; trap 'echo got-term; exit 15' TERM; echo ready; "
              "while true; do sleep 0.05; done")
    for cid, stop_signal, expected in (("img", None, 10), ("spec", signal.SIGTERM, 15)):
        spec = ContainerSpec(name=cid, image=usr1_image, args=("sh", "-c", script), stop_signal=stop_signal)
        runtime.run(cid, spec)
        wait_for(lambda cid=cid: "ready" in lines(runtime, cid), 15, "the traps")
        assert runtime.stop(cid, timeout=10).exit_code == expected


def test_logs_rotate_by_size_and_stay_until_remove(runtime: Runtime) -> None:
    spec = dataclasses.replace(sh("chatty", "for i in $(seq 300); do echo line-$i; done"),
                               log_max_bytes=4096, log_max_files=2)
    runtime.run("c1", spec)
    assert runtime.wait("c1", 10).exit_code == 0
    files = runtime.log_files("c1")
    assert [f.name for f in files] == ["container.log.2", "container.log.1", "container.log"]
    assert all(f.stat().st_size <= 4096 for f in files)
    kept = lines(runtime, "c1")
    assert kept[-1] == "line-300" and kept == [f"line-{i}" for i in range(301 - len(kept), 301)]
    since = list(runtime.read_logs("c1"))[-5].time
    assert [r.line for r in runtime.read_logs("c1", since=since)][-1] == "line-300"
    assert all(r.time >= since for r in runtime.read_logs("c1", since=since))
    container_dir = runtime.bundle_dir("c1")
    runtime.remove("c1")
    assert not container_dir.exists()


def test_state_is_derived_from_the_kernel_when_the_shim_is_gone(runtime: Runtime) -> None:
    state = runtime.run("c1", sh("orphan", "sleep 1000"))
    record = json.loads((runtime.bundle_dir("c1") / "state.json").read_text())
    os.kill(record["shim_pid"], signal.SIGKILL)  # nobody will record the exit now
    wait_for(lambda: gone(record["shim_pid"]), 15, "the shim to die")
    assert runtime.state("c1").status is ContainerStatus.RUNNING  # PID 1 lives on
    os.kill(state.pid, signal.SIGKILL)
    wait_for(lambda: runtime.state("c1").status is ContainerStatus.EXITED, 15, "the exit to be derived")
    assert runtime.state("c1").exit_code is None  # unknown: nobody saw it; the state says exited all the same
