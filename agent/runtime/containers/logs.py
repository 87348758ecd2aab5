"""The container log: JSON lines ``{"time", "stream", "log"}``, written by the shim, read here.

Times are RFC 3339 in UTC with nanoseconds (``2024-05-01T12:00:00.123456789Z``); parsed
records keep microseconds, which is what ``datetime`` holds.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

MAX_LINE = 16 * 1024  # a longer line is cut into records of this size, as Docker does
FOLLOW_POLL = 0.05

_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z$")


@dataclass(frozen=True)
class LogRecord:
    time: datetime
    stream: str  # "stdout" | "stderr"
    line: str


def format_time(time_ns: int) -> str:
    seconds, nanos = divmod(time_ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"


def parse_time(text: str) -> datetime:
    match = _TIME.match(text)
    if match is None:
        raise ValueError(f"not an RFC 3339 UTC time: {text!r}")
    base = datetime.strptime(match[1], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    fraction = (match[2] or "").ljust(9, "0")
    return base.replace(microsecond=int(fraction) // 1000)


def format_record(stream: str, line: bytes, time_ns: int) -> bytes:
    record = {"time": format_time(time_ns), "stream": stream, "log": line.decode(errors="replace")}
    # ensure_ascii (the default) keeps the file ASCII: a reader never meets half a character.
    return json.dumps(record).encode() + b"\n"


def parse_record(raw: str) -> LogRecord:
    obj = json.loads(raw)
    return LogRecord(time=parse_time(obj["time"]), stream=obj["stream"], line=obj["log"])


class LineSplitter:
    """Cuts a byte stream into lines (without the newline), holding back an unfinished tail."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        data = self._pending + chunk
        *lines, self._pending = data.split(b"\n")
        while len(self._pending) >= MAX_LINE:
            lines.append(self._pending[:MAX_LINE])
            self._pending = self._pending[MAX_LINE:]
        return [piece for line in lines for piece in _cut(line)]

    def flush(self) -> list[bytes]:
        """The unfinished tail at end of stream, if any."""
        rest, self._pending = self._pending, b""
        return _cut(rest) if rest else []


def _cut(line: bytes) -> list[bytes]:
    return [line[i : i + MAX_LINE] for i in range(0, len(line), MAX_LINE)] or [b""]


class LogWriter:
    """Appends records to the log, rotating it past ``max_bytes``: log -> log.1 -> log.2 ... (oldest dropped)."""

    def __init__(self, path: Path, max_bytes: int = 0, max_files: int = 1) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.max_files = max(1, max_files)
        self._fd = self._open()
        self._size = os.fstat(self._fd).st_size

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)

    def write(self, records: list[bytes]) -> None:
        """Append whole records, one write per file they land in."""
        batch: list[bytes] = []
        for record in records:
            if self.max_bytes and self._size and self._size + len(record) > self.max_bytes:
                self._flush(batch)
                self._rotate()
            batch.append(record)
            self._size += len(record)
        self._flush(batch)

    def _flush(self, batch: list[bytes]) -> None:
        if batch:
            os.write(self._fd, b"".join(batch))
            batch.clear()

    def _rotate(self) -> None:
        os.close(self._fd)
        self._size = 0
        for n in range(self.max_files, 0, -1):
            older = rotated(self.path, n - 1)
            if older.exists():
                os.replace(older, rotated(self.path, n))
        self._fd = self._open()

    def close(self) -> None:
        os.close(self._fd)


def rotated(path: Path, n: int) -> Path:
    """The n-th rotated file of ``path`` (n=0: the current one)."""
    return path if n == 0 else path.with_name(f"{path.name}.{n}")


def log_files(path: Path) -> list[Path]:
    """The log's files, oldest first."""
    older = []
    n = 1
    while rotated(path, n).exists():
        older.append(rotated(path, n))
        n += 1
    return [*reversed(older), path]


def read_log(
    path: Path,
    *,
    tail: int,
    follow: bool,
    finished: Callable[[], bool],
    since: datetime | None = None,
) -> Iterator[LogRecord]:
    """Records of the log at ``path`` and its rotated files: those at or after ``since``, the last
    ``tail`` of them (all when 0), then, with ``follow``, new ones as they come until
    ``finished()`` holds and the file is drained (following the file across rotations)."""
    keep: Callable[[LogRecord], bool] = (lambda r: True) if since is None else (lambda r: r.time >= since)
    backlog: list[LogRecord] = []
    for older in log_files(path)[:-1]:
        try:
            backlog += [r for raw in older.read_text(encoding="ascii").splitlines() if raw and keep(r := parse_record(raw))]
        except FileNotFoundError:
            continue  # rotated away while we listed
    try:
        f = open(path, encoding="ascii")
    except FileNotFoundError:  # the container has not started: nothing yet
        yield from backlog
        return
    try:
        *complete, partial = f.read().split("\n")  # a trailing partial record is taken on the next read
        backlog += [r for raw in complete if keep(r := parse_record(raw))]
        yield from backlog[-tail:] if tail > 0 else backlog
        while follow:
            done = finished()  # checked before reading, so nothing written before the exit is missed
            chunk = f.read()
            if chunk:
                *complete, partial = (partial + chunk).split("\n")
                for raw in complete:
                    if keep(record := parse_record(raw)):
                        yield record
            elif _replaced(path, f.fileno()):
                f.close()
                f = open(path, encoding="ascii")
                partial = ""
            elif done:
                return
            else:
                time.sleep(FOLLOW_POLL)
    finally:
        f.close()


def _replaced(path: Path, fd: int) -> bool:
    try:
        return os.stat(path).st_ino != os.fstat(fd).st_ino
    except FileNotFoundError:
        return False
