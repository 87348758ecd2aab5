"""exec: a command inside a running container — its namespaces, root, env, user and cgroup."""

from __future__ import annotations

import dataclasses
import os
import select

import pytest

from agent.runtime import ExecFailed, InvalidState, Limits, Runtime
from agent.runtime.containers.cgroups import Cgroup
from tests.agent.runtime.support import sh


def read_until(fd: int, wanted: bytes, timeout: float = 10.0) -> bytes:
    seen = b""
    while wanted not in seen:
        ready, _, _ = select.select([fd], [], [], timeout)
        assert ready, f"no {wanted!r} within {timeout} s; got {seen!r}"
        seen += os.read(fd, 4096)
    return seen


def test_exec_output_exit_code_env_and_root(runtime: Runtime) -> None:
    spec = dataclasses.replace(sh("target", "echo data > /made-by-pid1; sleep 1000", env={"FROM_SPEC": "yes"}),
                               working_dir="/tmp")
    state = runtime.run("c1", spec)
    code, out, err = runtime.exec_run("c1", ["sh", "-c", 'hostname; cat /made-by-pid1; echo "$FROM_SPEC $EXTRA"; pwd; '
                                                         "echo oops >&2; exit 5"])
    assert code == 5 and err == b"oops\n"
    assert out.decode().splitlines() == ["target", "data", "yes ", "/tmp"]
    process = runtime.exec("c1", ["sh", "-c", "echo $EXTRA; pwd"], env={"EXTRA": "more"}, cwd="/")
    assert process.communicate() == (0, b"more\n/\n", b"")
    assert state.pid in Cgroup.locate(f"{runtime.cgroup_parent}/c1").pids()


def test_exec_joins_the_namespaces_and_cgroup_and_keeps_the_containers_privileges(runtime: Runtime) -> None:
    spec = dataclasses.replace(sh("target", "sleep 1000"), limits=Limits(pids=64), cap_drop=("CHOWN",))
    state = runtime.run("c1", spec)
    group = Cgroup.locate(f"{runtime.cgroup_parent}/c1")
    process = runtime.exec("c1", ["sleep", "1000"])
    try:
        assert process.pid in group.pids()
        for ns in ("mnt", "pid", "net", "ipc", "uts"):
            assert os.readlink(f"/proc/{process.pid}/ns/{ns}") == os.readlink(f"/proc/{state.pid}/ns/{ns}")
    finally:
        os.kill(process.pid, 9)
        assert process.wait() == 137
    code, out, _ = runtime.exec_run("c1", ["sh", "-c", "chown 1 /tmp || echo denied; grep NoNewPrivs /proc/self/status"])
    assert out.decode().split("\n")[-2:] == ["NoNewPrivs:\t1", ""] and b"denied" in out


def test_exec_stdin_reaches_the_command(runtime: Runtime) -> None:
    runtime.run("c1", sh("target", "sleep 1000"))
    process = runtime.exec("c1", ["sh", "-c", "read line; echo got $line"])
    os.write(process.stdin, b"hello\n")
    assert process.communicate() == (0, b"got hello\n", b"")


def test_exec_with_a_tty(runtime: Runtime) -> None:
    runtime.run("c1", sh("target", "sleep 1000"))
    process = runtime.exec("c1", ["sh"], tty=True, size=(30, 100))
    try:
        os.write(process.stdin, b"test -t 0 && echo is-a-tty; stty size; exit 4\n")
        seen = read_until(process.stdout, b"30 100")
        assert b"is-a-tty" in seen
    finally:
        code = process.wait()
        process.close()
    assert code == 4


def test_exec_failures_name_the_reason(runtime: Runtime) -> None:
    runtime.create("c1", sh("idle", "sleep 1000"))
    with pytest.raises(InvalidState, match="cannot exec in container c1: it is created"):
        runtime.exec("c1", ["true"])
    runtime.start("c1")
    with pytest.raises(ExecFailed, match="exec: /no/such: No such file or directory"):
        runtime.exec("c1", ["/no/such"])
