"""What mutual TLS costs the API: handshakes per second and `moor get services`, beside plaintext.

One controller (real etcd) on loopback, served twice in the same run: with the cluster CA
(mTLS, the default) and with --insecure. Measured:

- new connections per second: a fresh channel per call (TLS handshake with client
  certificate + one GetVersion), from 4 threads, for a few seconds;
- the same call on a kept channel (what a long-lived client pays per call);
- `moor get services` as a user runs it (a new process, a new connection), median of runs.

    python -m bench identity
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc

from moorage import tlsconfig
from moorage.localcluster.etcd import Etcd
from moorage.localcluster.procs import Daemon, free_port_pair, port_open, wait_for
from moorage.tlsconfig import ClientTLS
from moorage.v1 import control_pb2, control_pb2_grpc

MOOR = str(Path(sys.executable).parent / "moor")
SECONDS = 4.0
THREADS = 4
CLI_RUNS = 15


def start_controller(etcd: Etcd, work: Path, insecure: bool) -> tuple[Daemon, str]:
    port = free_port_pair()
    address = f"127.0.0.1:{port}"
    argv = [MOOR, "controller", "--etcd", etcd.endpoint, "--listen", address, *(["--insecure"] if insecure else [])]
    daemon = Daemon(f"controller-{'plain' if insecure else 'tls'}", argv, work / f"controller-{insecure}.log").start()
    wait_for(lambda: daemon.check_alive() is None and port_open("127.0.0.1", port), 30, "the controller")
    return daemon, address


def channel(address: str, tls: ClientTLS | None) -> grpc.Channel:
    return grpc.insecure_channel(address) if tls is None else tlsconfig.secure_channel(address, tls)


def connections_per_second(address: str, tls: ClientTLS | None) -> float:
    count = [0] * THREADS
    deadline = time.monotonic() + SECONDS

    def work(index: int) -> None:
        while time.monotonic() < deadline:
            with channel(address, tls) as fresh:
                control_pb2_grpc.ControlStub(fresh).GetVersion(control_pb2.GetVersionRequest(), timeout=5)
            count[index] += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(count) / SECONDS


def call_latency(address: str, tls: ClientTLS | None, calls: int = 2000) -> float:
    with channel(address, tls) as kept:
        stub = control_pb2_grpc.ControlStub(kept)
        stub.GetVersion(control_pb2.GetVersionRequest(), timeout=5)
        started = time.perf_counter()
        for _ in range(calls):
            stub.GetVersion(control_pb2.GetVersionRequest(), timeout=5)
        return (time.perf_counter() - started) / calls


def cli_latency(env: dict[str, str]) -> float:
    times = []
    for _ in range(CLI_RUNS):
        started = time.perf_counter()
        subprocess.run([MOOR, "get", "services"], env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(argv: list[str]) -> None:
    from controller.identity import bootstrap
    from controller.store import Store
    from moorage.cli.config import write

    work = Path(tempfile.mkdtemp(prefix="moorage-bench-identity-"))
    etcd = Etcd(work / "etcd").start()
    daemons: list[Daemon] = []
    try:
        async def init() -> ClientTLS:
            store = await Store.connect([etcd.endpoint])
            try:
                made = await bootstrap(store)
            finally:
                await store.close()
            return ClientTLS(made.ca, made.admin_cert, made.admin_key)

        admin = asyncio.run(init())
        tls_daemon, tls_address = start_controller(etcd, work, insecure=False)
        plain_daemon, plain_address = start_controller(etcd, work, insecure=True)
        daemons += [tls_daemon, plain_daemon]
        assert admin.cert is not None and admin.key is not None
        config = write(work / "moor" / "config.yaml", [tls_address], admin.ca, admin.cert, admin.key, name="admin")
        base = {k: v for k, v in os.environ.items() if k not in ("MOOR_CONFIG", "MOOR_INSECURE", "MOOR_CONTROLLER")}
        rows = [
            ("new connections / s (handshake + 1 call)", connections_per_second(tls_address, admin), connections_per_second(plain_address, None), "{:.0f}"),
            ("call on a kept channel (ms)", call_latency(tls_address, admin) * 1e3, call_latency(plain_address, None) * 1e3, "{:.3f}"),
            ("moor get services, a process each (ms)",
             cli_latency({**base, "MOOR_CONFIG": str(config)}) * 1e3,
             cli_latency({**base, "MOOR_INSECURE": "1", "MOOR_CONTROLLER": plain_address}) * 1e3, "{:.0f}"),
        ]  # fmt: skip
        print(f"{'figure':<46}{'mTLS':>10}{'plaintext':>12}")
        for label, tls, plain, fmt in rows:
            print(f"{label:<46}{fmt.format(tls):>10}{fmt.format(plain):>12}  ({(tls / plain - 1) * 100:+.0f} %)")
        print(f"(certificates: ECDSA P-256; {THREADS} client threads; the controller in one process)")
    finally:
        for daemon in daemons:
            daemon.stop()
        etcd.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
