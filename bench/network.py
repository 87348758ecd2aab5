"""Host networking: setup time per container, and TCP throughput across hosts.

Setup: ``NodeNetwork.attach`` (address lease on disk, pinned namespace, veth pair into
the bridge, eth0 address, lo, default route) followed by ``detach``, in a namespace
host of its own. Anchor in the same run: the same steps with iproute2 commands
(``ip netns add``, ``ip link add ... veth``, ``ip addr``, ...), as a shell CNI plugin
takes them. Also: what one published port adds (an nftables map element), beside
starting a userspace proxy listener for it.

Throughput: two namespace hosts on a bridge, as in the test harness. A container on
host 1 sends to a container on host 2 (host-gateway routes, two bridges, the test
bridge); anchor: the same transfer between the two hosts' namespaces directly (the
physical limit here). Then host 1 → a port published on host 2 through kernel NAT,
beside the same through a userspace proxy (a thread per connection copying with
recv/sendall) on host 2. Sender and receiver are the same Python code everywhere, and
the four paths take turns in every round. The CPU column is this process's CPU time:
sender and receiver everywhere, plus the proxy's copying on the proxy path.
"""

from __future__ import annotations

import ipaddress
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from agent.network import BRIDGE_MODE, NodeNetwork, PortMapping
from agent.network.links import BRIDGE, inside
from moorage.localcluster import network as testnet

SETUPS = 200
TRANSFER = 1 << 30  # bytes per throughput run
RUNS = 5
CHUNK = 1 << 20
CLUSTER = "10.244.0.0/16"
SERVER_PORT = 5201


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def timed(step: Callable[[], object]) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def ms(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1e3:6.2f} ms, p99 {percentile(values, 0.99) * 1e3:6.2f} ms"


# -- setup -------------------------------------------------------------------------------


def iproute2_setup(index: int, subnet: ipaddress.IPv4Network) -> None:
    name, veth = f"moorbench{index}", f"moorbv{index}"
    address = f"{subnet.network_address + 100 + index % 100}/{subnet.prefixlen}"
    gateway = str(subnet.network_address + 1)
    for argv in (
        ["ip", "netns", "add", name],
        ["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", name],
        ["ip", "link", "set", veth, "master", BRIDGE, "up"],
        ["ip", "-n", name, "addr", "add", address, "dev", "eth0"],
        ["ip", "-n", name, "link", "set", "eth0", "up"],
        ["ip", "-n", name, "link", "set", "lo", "up"],
        ["ip", "-n", name, "route", "add", "default", "via", gateway],
    ):
        subprocess.run(argv, check=True)


def iproute2_teardown(index: int) -> None:
    subprocess.run(["ip", "link", "del", f"moorbv{index}"], check=True)
    subprocess.run(["ip", "netns", "del", f"moorbench{index}"], check=True)


def bench_setup(host: testnet.Host, work: Path) -> None:
    subnet = ipaddress.IPv4Network("10.244.1.0/24")
    ns = Path("/run/netns") / host.name
    with inside(ns):
        node = NodeNetwork(work / "moorage-setup", host.address)
        node.configure(str(subnet), CLUSTER, masquerade=True)
        for label, ports in (("no port", ()), ("1 published port", (PortMapping(8080, 80),))):
            attach, detach = [], []
            for i in range(SETUPS):
                attach.append(timed(lambda i=i, ports=ports: node.attach(f"c{i}", BRIDGE_MODE, ports)))
                detach.append(timed(lambda i=i: node.detach(f"c{i}")))
            print(f"moorage attach, {label:17}: {ms(attach)}   (detach: {ms(detach)})")
        anchor_up, anchor_down = [], []
        for i in range(SETUPS // 4):
            anchor_up.append(timed(lambda i=i: iproute2_setup(i, subnet)))
            anchor_down.append(timed(lambda i=i: iproute2_teardown(i)))
        print(f"anchor: iproute2 commands    : {ms(anchor_up)}   (teardown: {ms(anchor_down)})")
        listeners = []
        for _ in range(SETUPS):
            ready = threading.Event()
            start = time.perf_counter()
            server = proxy(ns, (host.address, 0), (host.address, 1), ready)
            ready.wait(10)
            listeners.append(time.perf_counter() - start)
            server.close()
        print(f"a userspace proxy instead    : {ms(listeners)}   (listening socket + accept thread, per port)")
        node.cleanup()


# -- throughput --------------------------------------------------------------------------


def transfer(client_ns: Path, server_ns: Path, listen: str, target: tuple[str, int]) -> float:
    """Gbit/s of TRANSFER bytes sent from client_ns to ``target`` and read to EOF in server_ns on
    listen:SERVER_PORT (timed from connect until the reader saw EOF)."""
    ready, ended = threading.Event(), []

    def sink() -> None:
        with inside(server_ns):
            server = socket.create_server((listen, SERVER_PORT))
        ready.set()
        buffer = bytearray(CHUNK)
        with server:
            conn, _ = server.accept()
            with conn:
                while conn.recv_into(buffer):
                    pass
        ended.append(time.perf_counter())

    reader = threading.Thread(target=sink)
    reader.start()
    if not ready.wait(10):
        raise TimeoutError("the receiver did not start")
    payload = bytes(CHUNK)
    with inside(client_ns):
        sock = socket.create_connection(target, timeout=30)
    start = time.perf_counter()
    with sock:
        for _ in range(TRANSFER // CHUNK):
            sock.sendall(payload)
    reader.join()
    return TRANSFER * 8 / (ended[0] - start) / 1e9


def proxy(netns: Path, listen: tuple[str, int], target: tuple[str, int], ready: threading.Event) -> socket.socket:
    """A userspace TCP proxy: for each connection, copy bytes client → target (enough for a one-way bench)."""
    with inside(netns):
        server = socket.create_server(listen)

    def pump(client: socket.socket) -> None:
        with inside(netns):
            upstream = socket.create_connection(target)
        buffer = bytearray(CHUNK)
        with client, upstream:
            while n := client.recv_into(buffer):
                upstream.sendall(memoryview(buffer)[:n])

    def accept() -> None:
        ready.set()
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=pump, args=(client,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return server


def bench_throughput(net: testnet.TestNetwork, work: Path) -> None:
    h1, h2 = net.hosts
    ns1, ns2 = (Path("/run/netns") / h.name for h in (h1, h2))
    nodes = []
    for index, (host, ns) in enumerate(((h1, ns1), (h2, ns2)), start=1):
        with inside(ns):
            node = NodeNetwork(work / f"moorage-node{index}", host.address)
            node.configure(f"10.244.{index}.0/24", CLUSTER, masquerade=True)
            nodes.append(node)
    with inside(ns1):
        nodes[0].set_peers({"10.244.2.0/24": h2.address})
        a = nodes[0].attach("a", BRIDGE_MODE)
    with inside(ns2):
        nodes[1].set_peers({"10.244.1.0/24": h1.address})
        b = nodes[1].attach("b", BRIDGE_MODE, [PortMapping(8080, SERVER_PORT)])
    ready = threading.Event()
    server = proxy(ns2, (h2.address, 9090), (b.address, SERVER_PORT), ready)
    ready.wait(10)
    pin_a, pin_b = Path(a.netns), Path(b.netns)
    paths = {
        "anchor: host 1 → host 2 namespaces directly   ": (ns1, ns2, h2.address, (h2.address, SERVER_PORT)),
        "container on host 1 → container on host 2     ": (pin_a, pin_b, b.address, (b.address, SERVER_PORT)),
        "host 1 → published port on host 2 (NAT)       ": (ns1, pin_b, "0.0.0.0", (h2.address, 8080)),
        "host 1 → userspace proxy on host 2 → container": (ns1, pin_b, "0.0.0.0", (h2.address, 9090)),
    }
    rates: dict[str, list[float]] = {label: [] for label in paths}
    cpu: dict[str, float] = dict.fromkeys(paths, 0.0)
    try:
        for _ in range(RUNS):  # round-robin, so a change in the machine's load hits every path alike
            for label, args in paths.items():
                before = time.process_time()
                rates[label].append(transfer(*args))
                cpu[label] += time.process_time() - before
        direct = statistics.median(next(iter(rates.values())))
        for label, found in rates.items():
            rate = statistics.median(found)
            print(f"{label}: {rate:6.2f} Gbit/s ({rate / direct:4.0%} of direct), "
                  f"{cpu[label] / RUNS:.2f} s CPU per GiB in this process")
    finally:
        server.close()
        for node, ns in zip(nodes, (ns1, ns2)):
            with inside(ns):
                node.collect(())
                node.cleanup()


def main(argv: list[str]) -> None:
    net = testnet.TestNetwork("moorbnet", testnet.free_subnet()).create()
    try:
        hosts = [net.add_host(f"moor-bench-h{i}", f"moorvbench{i}") for i in (1, 2)]
        with tempfile.TemporaryDirectory(prefix="moorage-bench-network-") as tmp:
            work = Path(tmp)
            print(f"setup, {SETUPS} containers one after another:")
            bench_setup(hosts[0], work)
            print(f"TCP throughput, {TRANSFER >> 20} MiB per run, median of {RUNS} rounds, {CHUNK >> 10} KiB writes:")
            bench_throughput(net, work)
    finally:
        net.destroy()


if __name__ == "__main__":
    main([])
