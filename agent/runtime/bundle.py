"""A container's directory on disk: what to run (written once) and what happened (rewritten atomically).

    <root>/containers/<id>/container.json   the Bundle: process, hostname, layers, stop policy
    <root>/containers/<id>/state.json       the Record: recorded status, pids, times, exit code
    <root>/containers/<id>/container.log    JSON-lines log written by the shim
    <root>/containers/<id>/shim.log         the shim's own diagnostics
    <root>/containers/<id>/upper/, work/    the overlayfs read/write layer and its work dir
    <root>/containers/<id>/rootfs/          mount point of the overlay (inside the container's
                                            mount namespace only: empty as seen from the host)

Both JSON files are written with temp + fsync + rename, so another process may read them at
any time.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from agent.runtime.fsutil import atomic_write_json
from agent.runtime.lifecycle import ContainerStatus


@dataclass(frozen=True)
class Bundle:
    id: str
    name: str
    image: str
    image_digest: str
    created_at: datetime
    args: tuple[str, ...]
    env: tuple[str, ...]
    cwd: str
    hostname: str
    lower_dirs: tuple[str, ...]  # lowest first
    stop_signal: int
    stop_grace_period: float
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Record:
    status: ContainerStatus
    pid: int = 0  # host PID of the container's PID 1
    pid_started: int = 0  # its start time (see procinfo), to recognise it later
    shim_pid: int = 0
    shim_started: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int | None = None
    error: str = ""  # why the start failed, if it did


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value


def _decode(cls: type[Any], raw: dict[str, Any]) -> Any:
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in raw:
            continue
        value = raw[f.name]
        kind = str(f.type)
        if "datetime" in kind and value is not None:
            value = datetime.fromisoformat(value)
        elif kind.startswith("tuple"):
            value = tuple(value)
        elif kind == "ContainerStatus":
            value = ContainerStatus(value)
        values[f.name] = value
    return cls(**values)


class ContainerDir:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.bundle_file = path / "container.json"
        self.state_file = path / "state.json"
        self.log_file = path / "container.log"
        self.shim_log = path / "shim.log"
        self.rootfs = path / "rootfs"
        self.upper = path / "upper"
        self.work = path / "work"

    def make(self, bundle: Bundle) -> None:
        """Fill the freshly made directory; the bundle file goes last, as it marks the container as existing."""
        for d in (self.rootfs, self.upper, self.work):
            d.mkdir()
        self.log_file.touch()
        self.write_record(Record(ContainerStatus.CREATED))
        atomic_write_json(self.bundle_file, {f.name: _encode(getattr(bundle, f.name)) for f in dataclasses.fields(bundle)})

    def read_bundle(self) -> Bundle:
        bundle: Bundle = _decode(Bundle, json.loads(self.bundle_file.read_bytes()))
        return bundle

    def write_record(self, record: Record) -> None:
        atomic_write_json(self.state_file, {f.name: _encode(getattr(record, f.name)) for f in dataclasses.fields(record)})

    def read_record(self) -> Record:
        record: Record = _decode(Record, json.loads(self.state_file.read_bytes()))
        return record
