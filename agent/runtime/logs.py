"""The container log: JSON lines ``{"time", "stream", "log"}``, written by the shim, read here.

Times are RFC 3339 in UTC with nanoseconds (``2024-05-01T12:00:00.123456789Z``); parsed
records keep microseconds, which is what ``datetime`` holds.
"""

from __future__ import annotations

import json
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


def read_log(path: Path, *, tail: int, follow: bool, finished: Callable[[], bool]) -> Iterator[LogRecord]:
    """Records of the log at ``path``: the last ``tail`` (all when 0), then, with ``follow``,
    new ones as they come until ``finished()`` holds and the file is drained."""
    with open(path, encoding="ascii") as f:
        *complete, partial = f.read().split("\n")  # a trailing partial record is taken on the next read
        for raw in complete[-tail:] if tail > 0 else complete:
            yield parse_record(raw)
        while follow:
            done = finished()  # checked before reading, so nothing written before the exit is missed
            chunk = f.read()
            if chunk:
                *complete, partial = (partial + chunk).split("\n")
                for raw in complete:
                    yield parse_record(raw)
            elif done:
                return
            else:
                time.sleep(FOLLOW_POLL)
