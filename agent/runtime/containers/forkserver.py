"""The fork server: one long-lived, single-threaded Python process that forks shims and exec helpers.

Starting a shim as a new Python process costs ~100 ms (interpreter start + imports) on every
container start; forking it from a process that has already imported everything costs well
under a millisecond, and keeps the fork out of the agent's threaded, asyncio process.

    Runtime ──sendmsg(JSON request + fds)──► standby ══ becomes ══► shim ──fork──► PID 1
             (SOCK_SEQPACKET socketpair)        ▲                    (see shim.py) or exec helper
             ◄── the request's own pipe ────────┼────────────── report / exit status
                                      fork server: forks the next standby when one is taken,
                                      reaps its children, exits when its owner is gone

The fork server keeps one child forked in advance (the standby): already in a session of its
own, with a container PID 1 forked in advance too (its PID, mount, UTS, IPC and network
namespaces made: see shim.prepare), blocked on the request socket. The request wakes it, it
tells the fork server, and it carries the request out; the fork server forks the next standby
meanwhile. A start so pays for a wake-up, not for two forks, new namespaces and the
scheduling of new processes. Children close the
server's fds, so they outlive the fork server and the agent; the fork server and an idle
standby end with the process that started them (the lifeline pipe reaches EOF). Requests
carry their own reply fds (the shim's ready pipe, exec's stdio and status pipe), so
concurrent callers never read each other's answers.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import sys
import threading
import traceback
from pathlib import Path
from typing import Any, NoReturn

from agent.runtime.containers import caps
from agent.runtime.containers import cgroups
from agent.runtime.containers import nsexec
from agent.runtime.containers import seccomp
from agent.runtime.containers import seccomp_profile
from agent.runtime.containers import shim

MAX_REQUEST = 1 << 16
MAX_FDS = 8
_SOCK_FD, _LIFELINE_FD = 3, 4
_PACKAGE_ROOT = Path(__file__).resolve().parents[3]  # the directory holding the `agent` package
_CHECK_EVERY = 1.0  # seconds between checks that the standby still lives


# --- the server side ------------------------------------------------------------------------


_reaped: set[int] = set()


def _reap(*_: object) -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _reaped.add(pid)


def _carry_out(request: dict[str, Any], fds: list[int], prepared: shim.Prepared | None) -> int:
    if request["op"] == "shim":
        log = os.open(Path(request["dir"]) / "shim.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        return shim.run(request["dir"], fds[0], prepared)
    if prepared is not None:
        prepared.discard()
    return nsexec.run(request, fds)


def _standby(sock: socket.socket, lifeline_fd: int, taken_w: int) -> NoReturn:
    """In a forked child: wait for one request, say so on ``taken_w``, carry it out, exit."""
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.setsid()  # a session of its own: the agent's end (or its terminal's) does not reach it
        try:
            prepared: shim.Prepared | None = shim.prepare(close=(sock.fileno(), lifeline_fd, taken_w))
        except OSError:
            prepared = None  # the start makes its PID 1 then
        with selectors.DefaultSelector() as sel:
            sel.register(sock, selectors.EVENT_READ)
            sel.register(lifeline_fd, selectors.EVENT_READ)
            if any(key.fd == lifeline_fd for key, _ in sel.select()):
                os._exit(0)  # the owner is gone before it asked for anything
        message, fds, _, _ = socket.recv_fds(sock, MAX_REQUEST, MAX_FDS)
        os.write(taken_w, b"1")
        for fd in (taken_w, sock.fileno(), lifeline_fd):
            os.close(fd)
        if not message:
            os._exit(0)
        for fd in fds:  # received fds are inheritable: no container may keep a reply pipe open
            os.set_inheritable(fd, False)
        code = _carry_out(json.loads(message), fds, prepared)
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(code)


def serve(sock_fd: int, lifeline_fd: int) -> None:
    sock = socket.socket(fileno=sock_fd)
    signal.signal(signal.SIGCHLD, _reap)
    taken_r, taken_w = os.pipe()

    def fork_standby() -> int:
        pid = os.fork()
        if pid == 0:
            os.close(taken_r)
            _standby(sock, lifeline_fd, taken_w)
        return pid

    standby = fork_standby()
    with selectors.DefaultSelector() as sel:
        sel.register(taken_r, selectors.EVENT_READ)
        sel.register(lifeline_fd, selectors.EVENT_READ)
        while True:
            events = sel.select(_CHECK_EVERY)
            if any(key.fd == lifeline_fd for key, _ in events):
                return  # our owner is gone (an idle standby sees it too)
            if events:
                os.read(taken_r, 1)
                cgroups.warm_migration()  # a shim will move PID 1 into a cgroup soon: start the grace period now
                standby = fork_standby()
            elif standby in _reaped:  # died without taking a request
                standby = fork_standby()


def warm_seccomp() -> None:
    """Compile Docker's seccomp profile for the default capabilities once, here: every container
    forked from us with that section (most of them) finds the filter ready (see seccomp.py)."""
    try:
        seccomp.remember(seccomp_profile.default_section(caps.resolve()))
    except (OSError, ValueError):
        pass  # each start that needs it reports why


# --- the client side ------------------------------------------------------------------------


class ForkServer:
    """A handle on a fork server process owned by this process."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        lifeline_r, self._lifeline = os.pipe()
        pythonpath = os.pathsep.join(filter(None, (str(_PACKAGE_ROOT), os.environ.get("PYTHONPATH"))))
        try:
            self.pid = os.posix_spawn(
                sys.executable,
                [sys.executable, "-S", "-m", "agent.runtime.containers.forkserver", str(_SOCK_FD), str(_LIFELINE_FD)],
                dict(os.environ, PYTHONPATH=pythonpath),
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                    (os.POSIX_SPAWN_DUP2, theirs.fileno(), _SOCK_FD),
                    (os.POSIX_SPAWN_DUP2, lifeline_r, _LIFELINE_FD),
                ],
            )
        finally:
            theirs.close()
            os.close(lifeline_r)
        self._sock = ours

    def request(self, message: dict[str, Any], fds: list[int]) -> None:
        """Have the server fork a child for ``message``; ``fds`` reach the child (ours stay open)."""
        socket.send_fds(self._sock, [json.dumps(message).encode()], fds)

    def alive(self) -> bool:
        try:
            return os.waitpid(self.pid, os.WNOHANG)[0] == 0
        except ChildProcessError:
            return False

    def close(self) -> None:
        """Close our ends: the server sees EOF and exits (children it forked live on)."""
        self._sock.close()
        os.close(self._lifeline)
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass


_lock = threading.Lock()
_server: ForkServer | None = None


def start() -> ForkServer:
    """This process's fork server, started (or restarted) if need be. A daemon calls it at its own
    start, so that its first container does not wait for an interpreter and the first standby."""
    global _server
    with _lock:
        if _server is not None and not _server.alive():
            _server.close()
            _server = None
        if _server is None:
            _server = ForkServer()
        return _server


def stop() -> None:
    """Stop this process's fork server, if it runs (the next request starts another). For a
    process that moved to another mount namespace: the server forks from the one it began in."""
    global _server
    with _lock:
        if _server is not None:
            _server.close()
            _server = None


def request(message: dict[str, Any], fds: list[int]) -> None:
    """Send ``message`` to this process's fork server, starting (or restarting) it as needed."""
    start().request(message, fds)


if __name__ == "__main__":
    # posix_spawn has no close_fds: drop whatever inheritable fds the owner had, so that no
    # shim or container holds them.
    os.closerange(max(_SOCK_FD, _LIFELINE_FD) + 1, os.sysconf("SC_OPEN_MAX"))
    cgroups.layout()  # once here rather than in every shim
    warm_seccomp()
    serve(int(sys.argv[1]), int(sys.argv[2]))
