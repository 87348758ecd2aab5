"""Identify a live process by (pid, start time) so a recycled PID is never mistaken for it."""

from __future__ import annotations

import os
import select
import signal
from dataclasses import dataclass


def read_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks since boot) from /proc/<pid>/stat, or None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(b")") + 2 :].split()
    return fields[0].decode(), int(fields[19])


def start_time(pid: int) -> int | None:
    """The start time that, with the pid, names this process for as long as it exists (zombie included)."""
    stat = read_stat(pid)
    return None if stat is None else stat[1]


@dataclass(frozen=True)
class ProcessRef:
    """A process known by pid and start time."""

    pid: int
    started: int

    def alive(self) -> bool:
        """Running (not a zombie) and the same process as recorded, not a recycled PID."""
        stat = read_stat(self.pid) if self.pid > 0 else None
        return stat is not None and stat[0] not in ("Z", "X") and stat[1] == self.started

    def open(self) -> int | None:
        """A pidfd for exactly this process, or None if it has ended.

        The pidfd is opened first and the start time checked after: if it still matches, the
        pidfd refers to our process and signals through it cannot hit a recycled PID.
        """
        if self.pid <= 0:
            return None
        try:
            fd = os.pidfd_open(self.pid)
        except ProcessLookupError:
            return None
        if start_time(self.pid) != self.started:
            os.close(fd)
            return None
        return fd

    def signal(self, sig: int) -> bool:
        """Send ``sig``; False if the process had already ended."""
        fd = self.open()
        if fd is None:
            return False
        try:
            signal.pidfd_send_signal(fd, sig)
            return True
        except ProcessLookupError:
            return False
        finally:
            os.close(fd)

    def wait(self, timeout: float) -> bool:
        """Block until the process ends or ``timeout`` passes; True if it ended."""
        fd = self.open()
        if fd is None:
            return True
        try:
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            return bool(poller.poll(max(0.0, timeout) * 1000))
        finally:
            os.close(fd)
