"""The caller's side of an exec: the process's stdio (pipes, or a pty) and its status pipe."""

from __future__ import annotations

import fcntl
import json
import os
import select
import struct
import termios
import time
from dataclasses import dataclass
from typing import Any

from agent.runtime.containers import forkserver
from agent.runtime.errors import RuntimeFailure


class ExecFailed(RuntimeFailure):
    """The command could not be started in the container; the message says why."""


@dataclass
class ExecProcess:
    """A command running in a container.

    ``stdin`` is written by the caller (closed for EOF); ``stdout``/``stderr`` are read until
    EOF. With a TTY, ``stdin`` and ``stdout`` are the same pty master and ``stderr`` is None.
    """

    container_id: str
    pid: int  # host PID
    stdin: int
    stdout: int
    stderr: int | None
    tty: bool
    _status: Any  # file object of the status pipe

    @classmethod
    def start(cls, container_id: str, request: dict[str, Any], tty: bool, size: tuple[int, int]) -> ExecProcess:
        if tty:
            master, slave = os.openpty()
            set_size(master, *size)
            ours, theirs = (master, master, None), [slave, slave, slave]
        else:
            in_r, in_w = os.pipe()
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            ours, theirs = (in_w, out_r, err_r), [in_r, out_w, err_w]
        status_r, status_w = os.pipe()
        try:
            forkserver.request(request, [*theirs, status_w])
        finally:
            for fd in {*theirs, status_w}:
                os.close(fd)
        status = os.fdopen(status_r, "rb")
        first = json.loads(status.readline() or b'{"error": "exec helper ended without reporting"}')
        if "error" in first:
            status.close()
            for fd in {fd for fd in ours if fd is not None}:
                os.close(fd)
            raise ExecFailed(f"exec in container {container_id} failed: {first['error']}")
        return cls(container_id, int(first["pid"]), ours[0], ours[1], ours[2], tty, status)

    def resize(self, rows: int, cols: int) -> None:
        if self.tty:
            set_size(self.stdout, rows, cols)

    def wait(self) -> int:
        """The exit code (128+N after signal N); closes the status pipe."""
        line = self._status.readline()
        self._status.close()
        return int(json.loads(line)["exit_code"]) if line else -1

    def close(self) -> None:
        for fd in {self.stdin, self.stdout, self.stderr} - {None}:
            try:
                os.close(fd)  # type: ignore[arg-type]
            except OSError:
                pass

    def communicate(self, timeout: float = 30.0) -> tuple[int, bytes, bytes]:
        """Close stdin (not a TTY's), read all output, wait: (exit code, stdout, stderr)."""
        if not self.tty:
            os.close(self.stdin)
        outputs = {self.stdout: bytearray(), **({self.stderr: bytearray()} if self.stderr is not None else {})}
        open_fds = set(outputs)
        deadline = time.monotonic() + timeout
        while open_fds:
            ready, _, _ = select.select(list(open_fds), [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError(f"exec in {self.container_id} did not finish within {timeout} s")
            for fd in ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:  # EIO: the pty's other side is closed
                    chunk = b""
                if chunk:
                    outputs[fd] += chunk
                else:
                    open_fds.discard(fd)
                    os.close(fd)
        code = self.wait()
        return code, bytes(outputs[self.stdout]), bytes(outputs.get(self.stderr or -1, b""))


def set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
