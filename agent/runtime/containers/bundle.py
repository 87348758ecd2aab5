"""A container's directory on disk: an OCI bundle, Moorage's facts about it, and what happened.

    <root>/containers/<id>/config.json      the OCI runtime spec (see oci.py): what to run, how
    <root>/containers/<id>/container.json   the Bundle: name, image, labels, stop/restart/log policy
    <root>/containers/<id>/state.json       the Record: recorded status, pids, times, exit code, OOM
    <root>/containers/<id>/container.log    JSON-lines log written by the shim (+ .1, .2 ... rotated)
    <root>/containers/<id>/shim.log         the shim's own diagnostics
    <root>/containers/<id>/upper/, work/    the overlayfs read/write layer and its work dir
    <root>/containers/<id>/rootfs/          mount point of the overlay (inside the container's
                                            mount namespace only: empty as seen from the host)

JSON files are replaced atomically (temp + rename), so another process may read them at any
time. None is fsync'd: they are on the path of every create and start, where an fsync costs
more here (2-3 ms on this VM's disk) than all the rest of the work. What that risks is bounded:
state.json describes processes, which do not survive a crash of the machine either; a bundle
torn by a crash reads as no container (``ContainerNotFound``; ``Runtime.list`` skips it), and
the agent re-creates its tasks' containers from its assignments.
A container without state.json has not been started: it is CREATED.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from agent.runtime.fsutil import atomic_write_json, canonical_json
from agent.runtime.containers.lifecycle import ContainerStatus
from agent.runtime.containers.restart import RestartPolicy


@dataclass(frozen=True)
class Bundle:
    id: str
    name: str
    image: str
    image_digest: str
    created_at: datetime
    stop_signal: int
    stop_grace_period: float
    labels: dict[str, str] = field(default_factory=dict)
    restart: RestartPolicy = RestartPolicy()
    volumes: tuple[str, ...] = ()  # names of the volumes this container holds
    log_max_bytes: int = 0  # rotate container.log past this size; 0 = never
    log_max_files: int = 1  # rotated files kept besides container.log


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
    oom_killed: bool = False
    restarts: int = 0  # restarts done by the shim's restart policy
    error: str = ""  # why the start failed, if it did


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
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
        elif kind == "RestartPolicy":
            value = RestartPolicy(**value)
        values[f.name] = value
    return cls(**values)


def _plain(obj: Any) -> dict[str, Any]:
    return {f.name: _encode(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


class ContainerDir:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.config_file = path / "config.json"
        self.bundle_file = path / "container.json"
        self.state_file = path / "state.json"
        self.log_file = path / "container.log"
        self.shim_log = path / "shim.log"
        self.rootfs = path / "rootfs"
        self.upper = path / "upper"
        self.work = path / "work"

    def make(self, bundle: Bundle, config: dict[str, Any]) -> None:
        """Fill the freshly made directory; container.json goes last, as it marks the container as existing."""
        for d in (self.rootfs, self.upper, self.work):
            d.mkdir()
        self.config_file.write_bytes(canonical_json(config))  # nobody reads it before container.json exists
        atomic_write_json(self.bundle_file, _plain(bundle), durable=False)

    def read_bundle(self) -> Bundle:
        bundle: Bundle = _decode(Bundle, json.loads(self.bundle_file.read_bytes()))
        return bundle

    def read_config(self) -> dict[str, Any]:
        config: dict[str, Any] = json.loads(self.config_file.read_bytes())
        return config

    def write_record(self, record: Record) -> None:
        atomic_write_json(self.state_file, _plain(record), durable=False)

    def read_record(self) -> Record:
        try:
            raw = self.state_file.read_bytes()
        except FileNotFoundError:
            if not self.bundle_file.exists():
                raise
            return Record(ContainerStatus.CREATED)
        record: Record = _decode(Record, json.loads(raw))
        return record
