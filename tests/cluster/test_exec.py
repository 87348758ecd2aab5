"""Control.Exec over grpc (no `moor`): a command in a task's container on an agent host, its
output and exit code relayed through the controller and the agent session; a TTY; errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from moorage.v1 import control_pb2
from tests.cluster.conftest import ClusterFactory
from tests.cluster.harness import moor, running, wait_tasks

SERVICE = """\
name: target
image: busybox
replicas: 1
env: {FROM_SPEC: spec-value}
command: ["sh", "-c", "echo made-by-pid1 > /marker; trap 'exit 0' TERM; while true; do sleep 0.2; done"]
stop_grace_period: 2s
"""


def call(stub: object, inputs: list[control_pb2.ExecInput]) -> tuple[bytes, bytes, int | None]:
    out, err, code = b"", b"", None
    for message in stub.Exec(iter(inputs), timeout=30):  # type: ignore[attr-defined]
        kind = message.WhichOneof("body")
        if kind == "stdout":
            out += message.stdout
        elif kind == "stderr":
            err += message.stderr
        else:
            code = message.exit_code
    return out, err, code


def start(task_id: str, *command: str, tty: bool = False) -> control_pb2.ExecInput:
    size = control_pb2.TerminalSize(rows=40, cols=120)
    return control_pb2.ExecInput(start=control_pb2.ExecStart(task_id=task_id, command=list(command), tty=tty,
                                                             env={"EXTRA": "x"}, size=size))


@pytest.fixture
def target(cluster_factory: ClusterFactory, tmp_path: Path) -> Iterator[tuple[object, str]]:
    cluster = cluster_factory(hosts=2)
    manifest = tmp_path / "target.yaml"
    manifest.write_text(SERVICE)
    moor(cluster, "apply", "-f", str(manifest))
    (task,) = wait_tasks(cluster, "target", running(1), "the target task running")
    yield cluster.control(), task.id


def test_exec_output_and_exit_code_come_back(target: tuple[object, str]) -> None:
    stub, task_id = target
    script = 'cat /marker; echo "$FROM_SPEC $EXTRA"; hostname; read line; echo "got $line"; echo oops >&2; exit 6'
    out, err, code = call(stub, [start(task_id, "sh", "-c", script), control_pb2.ExecInput(stdin=b"typed\n")])
    assert out.decode().splitlines()[:2] == ["made-by-pid1", "spec-value x"]
    assert out.decode().splitlines()[-1] == "got typed"
    assert (err, code) == (b"oops\n", 6)


def test_exec_with_a_tty(target: tuple[object, str]) -> None:
    stub, task_id = target
    inputs = [start(task_id, "sh", tty=True), control_pb2.ExecInput(stdin=b"test -t 0 && echo tty-yes; stty size; exit 2\n")]
    out, err, code = call(stub, inputs)
    assert b"tty-yes" in out and b"40 120" in out and err == b"" and code == 2


def test_exec_errors_are_named(target: tuple[object, str]) -> None:
    stub, task_id = target
    with pytest.raises(grpc.RpcError) as missing:
        call(stub, [start("no-such-task", "true")])
    assert missing.value.code() is grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
    with pytest.raises(grpc.RpcError) as not_found:
        call(stub, [start(task_id, "/no/such/binary")])
    assert not_found.value.code() is grpc.StatusCode.FAILED_PRECONDITION  # type: ignore[attr-defined]
    assert "No such file or directory" in not_found.value.details()  # type: ignore[attr-defined]
