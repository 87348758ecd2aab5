"""`make demo` / `make demo-down`: a one-machine cluster running examples/.

``up`` starts etcd, a controller (also on 127.0.0.1:7420, the CLI's default
address, so plain `moor get tasks` works afterwards) and two agent hosts in
network namespaces, imports the busybox image on both, applies
examples/hello.yaml and shows the tasks and their logs. ``down`` removes all
of it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from moorage.localcluster import busybox
from moorage.localcluster.cluster import LEDGER_DIR, MOOR, Ledger, LocalCluster

DEMO_NAME = "demo"
CLI_ADDRESS = "127.0.0.1:7420"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def down() -> None:
    """Remove the demo cluster wherever it lives: its ledger records its directory."""
    ledger = LEDGER_DIR / f"{DEMO_NAME}.json"
    if ledger.exists():
        Ledger.load(ledger).clean()
        print("demo cluster removed")
    else:
        print("no demo cluster is running")


def say(text: str) -> None:
    print(f"\n\033[1m==> {text}\033[0m", flush=True)


def moor(*args: str) -> None:
    print(f"$ moor {' '.join(args)}", flush=True)
    subprocess.run([MOOR, *args], check=True)


def up(base: Path) -> None:
    down()
    say("building the busybox image and starting etcd, a controller and two agent hosts")
    rootfs = busybox.make_rootfs(base / "image" / "rootfs")
    cluster = LocalCluster(
        base,
        hosts=2,
        name=DEMO_NAME,
        extra_listen=(CLI_ADDRESS,),
        persistent=True,
        image_sources={"busybox": rootfs},
    )
    cluster.start()
    for agent in cluster.agents:
        print(f"  host {agent.name}: network namespace {agent.host.name}, address {agent.host.address}")
    print(f"  controller: {cluster.controller_address} and {CLI_ADDRESS}; etcd: {cluster.etcd.endpoint}")
    moor("get", "nodes")

    say("applying examples/hello.yaml")
    started = time.monotonic()
    moor("apply", "-f", str(EXAMPLES / "hello.yaml"), "--wait")
    print(f"  apply to all replicas running: {time.monotonic() - started:.2f}s")
    moor("get", "tasks")
    say("their logs")
    moor("logs", "hello")
    say("the demo cluster is up")
    print("  try:   .venv/bin/moor get tasks   .venv/bin/moor logs hello   .venv/bin/moor get nodes")
    print("  stop:  make demo-down")


def main() -> None:
    parser = argparse.ArgumentParser(prog="moorage.demo")
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("--dir", type=Path, default=Path("/run/moorage-demo"))
    args = parser.parse_args()
    try:
        if args.action == "up":
            up(args.dir)
        else:
            down()
    except subprocess.CalledProcessError as err:
        sys.exit(f"demo: {' '.join(map(str, err.cmd))} failed with exit code {err.returncode}")


if __name__ == "__main__":
    main()
