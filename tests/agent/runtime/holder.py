"""A stand-in for the agent process: ``python -m tests.agent.runtime.holder ROOT IMAGES SIGNAL_DIR``.

Runs two busybox containers with a Runtime of its own (and so a fork server of its own),
prints one JSON line with what it started, then waits to be killed.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from agent.runtime import ContainerSpec, ImageStore, MountSpec, Runtime
from agent.runtime.containers import forkserver


def main(root: str, images: str, signal_dir: str) -> None:
    runtime = Runtime(Path(root), ImageStore(Path(images)))
    ticker = runtime.run("ticker", ContainerSpec(
        name="ticker", image="busybox", args=("sh", "-c", "i=0; while true; do i=$((i+1)); echo tick-$i; sleep 0.05; done")))
    # Exits only when told to (a file appears in SIGNAL_DIR), so its exit happens while no holder runs.
    quitter = runtime.run("quitter", ContainerSpec(
        name="quitter", image="busybox", mounts=(MountSpec("/signal", "bind", signal_dir),),
        args=("sh", "-c", "while ! test -e /signal/go; do sleep 0.05; done; echo bye; exit 7")))
    assert forkserver._server is not None
    print(json.dumps({"ticker": ticker.pid, "quitter": quitter.pid, "forkserver": forkserver._server.pid}), flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main(*sys.argv[1:])
