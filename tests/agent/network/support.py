"""Running test code inside a throwaway network namespace (a "host"), and talking TCP from namespaces."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pyroute2 import IPRoute, netns

from agent.network.links import inside

HOST_ADDRESS = "192.0.2.10"  # TEST-NET-1: on an interface of the throwaway host only

_made = 0


@contextmanager
def entered(path: str | Path) -> Iterator[None]:
    """The calling thread in the network namespace at ``path``, and back afterwards."""
    with inside(path):
        yield


@contextmanager
def throwaway_host() -> Iterator[Path]:
    """A new namespace with lo and an interface carrying HOST_ADDRESS; the thread runs in it."""
    global _made
    _made += 1
    name = f"moor-t{os.getpid()}-{_made}"
    netns.create(name)
    path = Path("/run/netns") / name
    try:
        with entered(path):
            with IPRoute() as ipr:
                ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
                ipr.link("add", ifname="moortd0", kind="veth", peer="moortd1")  # no dummy module here
                ipr.link("set", index=ipr.link_lookup(ifname="moortd1")[0], state="up")
                index = ipr.link_lookup(ifname="moortd0")[0]
                ipr.addr("add", index=index, address=HOST_ADDRESS, prefixlen=24)
                ipr.link("set", index=index, state="up")
            yield path
    finally:
        netns.remove(name)


class Responder:
    """A TCP server in a namespace that answers every connection with ``reply`` and closes it."""

    def __init__(self, netns_path: str | Path, address: str, port: int, reply: bytes) -> None:
        self.reply = reply
        self.peers: list[str] = []
        self._ready = threading.Event()
        self._stop = False
        self._sock: socket.socket | None = None
        self._thread = threading.Thread(target=self._serve, args=(netns_path, address, port), daemon=True)

    def __enter__(self) -> Responder:
        self._thread.start()
        if not self._ready.wait(10):
            raise TimeoutError("responder did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop = True
        assert self._sock is not None
        self._sock.close()
        self._thread.join(10)

    def _serve(self, netns_path: str | Path, address: str, port: int) -> None:
        with entered(netns_path):
            self._sock = socket.create_server((address, port))
        self._sock.settimeout(0.2)
        self._ready.set()
        while not self._stop:
            try:
                conn, peer = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                self.peers.append(peer[0])
                conn.sendall(self.reply)


def ask(address: str, port: int, netns_path: str | Path | None = None) -> bytes:
    """Connect (from ``netns_path``, else from where the thread is) and read until the server closes."""
    if netns_path is not None:
        with entered(netns_path):
            sock = socket.create_connection((address, port), timeout=5)
    else:
        sock = socket.create_connection((address, port), timeout=5)
    with sock:
        chunks = []
        while chunk := sock.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks)
