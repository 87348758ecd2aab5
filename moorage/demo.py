"""`make demo` / `make demo-down`: a one-machine cluster running examples/.

``up`` starts etcd, a controller (also on 127.0.0.1:7420, the CLI's default
address) and two agent hosts in network namespaces, all over mutual TLS with the
cluster CA, imports the busybox image on both, applies examples/hello.yaml and
shows the tasks and their logs. It writes an admin config where `moor` looks by
default ($MOOR_CONFIG or ~/.config/moorage/config.yaml), so plain `moor get tasks`
works afterwards. ``down`` removes all of it, that config included.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from moorage.cli import config
from moorage.localcluster import busybox
from moorage.localcluster.cluster import LEDGER_DIR, MOOR, Ledger, LocalCluster

DEMO_NAME = "demo"
CLI_ADDRESS = "127.0.0.1:7420"
ADMIN = "demo-admin"  # the name of the demo's admin certificate, beside its config
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def down() -> None:
    """Remove the demo cluster wherever it lives: its ledger records its directory."""
    ledger = LEDGER_DIR / f"{DEMO_NAME}.json"
    if ledger.exists():
        Ledger.load(ledger).clean()
        print("demo cluster removed")
    else:
        print("no demo cluster is running")
    path = config.config_path()
    if path.exists() and f"cert: {ADMIN}.crt" in path.read_text(errors="replace"):
        for name in (path, path.parent / f"{ADMIN}.crt", path.parent / f"{ADMIN}.key", path.parent / "ca.crt"):
            name.unlink(missing_ok=True)
        print(f"demo admin config {path} removed")


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
    admin = cluster.admin
    assert admin is not None and admin.cert is not None and admin.key is not None
    written = config.write(config.config_path(), [CLI_ADDRESS], admin.ca, admin.cert, admin.key, name=ADMIN)
    print(f"  admin config for moor: {written}")
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
