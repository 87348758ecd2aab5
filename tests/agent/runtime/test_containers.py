"""Containers on the real kernel: namespaces, overlay, shim, stop, remove, logs."""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest

from agent.runtime import (
    ContainerExists,
    ContainerNotFound,
    ContainerSpec,
    ContainerStatus,
    ImageStore,
    InvalidState,
    Runtime,
    StartFailed,
)
from moorage.localcluster.procs import wait_for
from tests.agent.runtime.support import MARKER, lines, sh


def ns_pid(host_pid: int) -> str:
    """The innermost PID of a host process, from the NSpid line of /proc/<pid>/status."""
    for line in Path(f"/proc/{host_pid}/status").read_text().splitlines():
        if line.startswith("NSpid:"):
            return line.split()[-1]
    raise AssertionError("no NSpid line")


def test_command_is_pid_1_with_own_hostname_and_image_root(runtime: Runtime, tmp_path: Path) -> None:
    host_only = tmp_path / "host-only-file"
    host_only.write_text("host")
    script = f"""echo $$; hostname; cat /{MARKER}
        for p in /work /root/.pyenv {host_only}; do test -e $p && echo "leak $p"; done; sleep 1000"""
    state = runtime.run("c1", sh("box-one", script))
    assert state.status is ContainerStatus.RUNNING
    assert ns_pid(state.pid) == "1"
    wait_for(lambda: len(lines(runtime, "c1")) >= 3, 15, "the container's first lines")
    assert lines(runtime, "c1") == ["1", "box-one", "from-image"]


def test_writes_land_in_the_upper_dir_only(runtime: Runtime, images: ImageStore) -> None:
    runtime.run("writer", sh("writer", "echo data > /written.txt"))
    state = runtime.wait("writer", 5)
    assert state.exit_code == 0
    assert (state.upper_dir / "written.txt").read_text() == "data\n"
    assert not any((layer / "written.txt").exists() for layer in images.get("busybox").layer_dirs)
    runtime.run("reader", sh("reader", "test -e /written.txt"))
    assert runtime.wait("reader", 5).exit_code == 1


def test_env_reaches_the_process_and_logs_carry_stream_and_time(runtime: Runtime) -> None:
    spec = sh("envbox", 'echo "$IMAGE_VAR $OVERRIDE $SPEC_VAR $HOSTNAME"; echo oops >&2; echo three',
              env={"OVERRIDE": "from-spec", "SPEC_VAR": "spec"})
    runtime.run("c1", spec)
    state = runtime.wait("c1", 5)
    assert state.exit_code == 0 and state.started_at is not None and state.finished_at is not None
    records = list(runtime.read_logs("c1"))
    # Two pipes: order is kept within a stream, not across them.
    assert lines(runtime, "c1", "stdout") == ["from-image from-spec spec envbox", "three"]
    assert lines(runtime, "c1", "stderr") == ["oops"]
    slack = timedelta(milliseconds=50)
    assert all(state.started_at - slack <= r.time <= state.finished_at + slack for r in records)
    assert list(runtime.read_logs("c1", tail=2)) == records[-2:]
    assert len(records) == 3


def test_follow_yields_lines_as_they_come_and_ends_at_exit(runtime: Runtime) -> None:
    runtime.run("c1", sh("follow", "for i in 1 2 3; do echo $i; sleep 0.1; done"))
    assert [r.line for r in runtime.read_logs("c1", follow=True)] == ["1", "2", "3"]
    assert runtime.state("c1").status is ContainerStatus.EXITED


def test_stop_kills_a_pid_1_that_ignores_the_stop_signal(runtime: Runtime) -> None:
    runtime.run("c1", ContainerSpec(name="sleeper", image="busybox", args=("sleep", "1000"), stop_grace_period=0.3))
    began = time.monotonic()
    state = runtime.stop("c1")
    assert time.monotonic() - began >= 0.3
    assert state.status is ContainerStatus.EXITED
    assert state.exit_code == 128 + signal.SIGKILL
    assert state.pid == 0 and state.finished_at is not None


def test_stop_signal_reaches_a_handler(runtime: Runtime) -> None:
    runtime.run("c1", sh("trapper", "trap 'exit 3' TERM; echo ready; sleep 1000 & wait"))
    wait_for(lambda: lines(runtime, "c1") == ["ready"], 15, "the trap to be installed")
    began = time.monotonic()
    state = runtime.stop("c1", timeout=10)
    assert time.monotonic() - began < 5
    assert state.exit_code == 3


def test_remove_leaves_no_mount_and_no_directory(runtime: Runtime) -> None:
    state = runtime.run("c1", sh("doomed", "sleep 1000"))
    container_dir = state.upper_dir.parent
    assert str(container_dir) not in Path("/proc/self/mounts").read_text()  # the overlay lives in the container only
    with pytest.raises(InvalidState):
        runtime.remove("c1")
    runtime.remove("c1", force=True)
    assert str(container_dir) not in Path("/proc/self/mounts").read_text()
    assert not container_dir.exists()
    with pytest.raises(ContainerNotFound):
        runtime.state("c1")


def test_start_of_a_missing_binary_fails_with_the_reason(runtime: Runtime) -> None:
    runtime.create("c1", ContainerSpec(name="nope", image="busybox", entrypoint=("/bin/nope",), args=()))
    with pytest.raises(StartFailed) as failure:
        runtime.start("c1")
    assert failure.value.reason == "exec: /bin/nope: No such file or directory"
    state = runtime.state("c1")
    assert state.status is ContainerStatus.EXITED and state.exit_code == 127 and "/bin/nope" in state.error


def test_empty_command_fails_to_start(runtime: Runtime) -> None:
    runtime.create("c1", ContainerSpec(name="empty", image="busybox", args=()))
    with pytest.raises(StartFailed, match="no command"):
        runtime.start("c1")
    assert runtime.state("c1").status is ContainerStatus.CREATED


def test_illegal_transitions_raise(runtime: Runtime) -> None:
    runtime.create("c1", sh("legal", "sleep 1000", grace=0.1))
    with pytest.raises(InvalidState):
        runtime.stop("c1")
    with pytest.raises(ContainerExists):
        runtime.create("c1", sh("legal", "true"))
    runtime.start("c1")
    with pytest.raises(InvalidState):
        runtime.start("c1")
    runtime.stop("c1")
    with pytest.raises(InvalidState):
        runtime.start("c1")
    assert runtime.stop("c1").status is ContainerStatus.EXITED  # stopping a stopped container is a no-op
    with pytest.raises(ContainerNotFound):
        runtime.start("missing")


def test_a_new_runtime_object_sees_the_running_container(runtime: Runtime, images: ImageStore) -> None:
    first = runtime.run("c1", sh("survivor", "sleep 1000", grace=0.1))
    del runtime  # the fixture still holds it for clean-up; this test uses only the new object
    fresh = Runtime(first.upper_dir.parents[2], images)
    seen = fresh.state("c1")
    assert (seen.status, seen.pid, seen.started_at) == (ContainerStatus.RUNNING, first.pid, first.started_at)
    assert [s.id for s in fresh.list()] == ["c1"]
    assert fresh.stop("c1").exit_code == 128 + signal.SIGKILL


def test_concurrent_starts_do_not_wait_for_each_other(runtime: Runtime) -> None:
    """A start must not block on another container holding its ready pipe (an inherited fd)."""
    ids = [f"c{i}" for i in range(4)]
    with ThreadPoolExecutor(len(ids)) as pool:
        futures = [pool.submit(runtime.run, cid, sh(cid, "sleep 1000")) for cid in ids]
        states = [f.result(timeout=10) for f in futures]
    assert all(s.status is ContainerStatus.RUNNING for s in states)
    assert len({s.pid for s in states}) == len(ids)
