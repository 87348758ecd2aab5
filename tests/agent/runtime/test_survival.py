"""Containers outlive the process that started them (the agent) and its fork server; a new
Runtime re-adopts them: same PIDs, logs that go on, and exits recorded while nobody ran."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.runtime import ContainerStatus, ImageStore, Runtime
from agent.runtime.containers import forkserver
from moorage.localcluster.procs import wait_for
from tests.agent.runtime.support import gone, lines, sh

PACKAGE_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def holder(tmp_path: Path, images: ImageStore) -> Iterator[tuple[subprocess.Popen[str], dict[str, int], Path]]:
    root = tmp_path / "moorage-runtime"
    (tmp_path / "signal").mkdir()
    process = subprocess.Popen([sys.executable, "-m", "tests.agent.runtime.holder", str(root), str(images.root),
                                str(tmp_path / "signal")],
                               cwd=PACKAGE_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        started = json.loads(process.stdout.readline())
        yield process, started, root
    finally:
        process.kill()
        process.wait()
        process.stdout.close()  # type: ignore[union-attr]
        leftover = Runtime(root, images)
        leftover.release()


def test_containers_survive_the_agent_and_are_readopted(
    holder: tuple[subprocess.Popen[str], dict[str, int], Path], images: ImageStore
) -> None:
    process, started, root = holder
    process.send_signal(signal.SIGKILL)
    process.wait()
    wait_for(lambda: gone(started["forkserver"]), 10, "the fork server to follow its owner")
    fresh = Runtime(root, images)
    ticker = fresh.state("ticker")
    assert (ticker.status, ticker.pid) == (ContainerStatus.RUNNING, started["ticker"])
    seen = len(lines(fresh, "ticker"))
    wait_for(lambda: len(lines(fresh, "ticker")) > seen + 5, 10, "the log to go on without the agent")
    # The quitter exits now, with no agent and no fork server alive: its shim records it.
    (root.parent / "signal" / "go").touch()
    wait_for(lambda: gone(started["quitter"]), 10, "the quitter to exit")
    wait_for(lambda: fresh.state("quitter").exit_code == 7, 10, "the shim to record the exit")
    assert lines(fresh, "quitter") == ["bye"]
    assert fresh.stop("ticker", timeout=5).status is ContainerStatus.EXITED
    assert lines(fresh, "ticker")[-1].startswith("tick-")


def test_a_stopped_fork_server_is_replaced_at_the_next_start(runtime: Runtime) -> None:
    """forkserver.stop(): for a process that moves to another mount namespace (bench/runtime.py)."""
    old = forkserver.start().pid
    forkserver.stop()
    wait_for(lambda: gone(old), 10, "the stopped fork server to exit")
    runtime.run("after", sh("after", "echo started"))
    assert runtime.wait("after", 30).exit_code == 0 and lines(runtime, "after") == ["started"]
    assert forkserver.start().pid != old
