"""Containers: create, start, stop, remove, inspect and read logs — synchronous and blocking.

Every method re-reads the container's directory and asks the kernel, so several Runtime
objects (in one process or several) can act on the same root; calls on one container are
serialised within a Runtime. Each running container has a shim (see shim.py) that owns its
stdio, log and exit record, so containers outlive the process that started them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from agent.runtime import lifecycle, process
from agent.runtime.bundle import Bundle, ContainerDir, Record
from agent.runtime.errors import ContainerExists, ContainerNotFound, StartFailed
from agent.runtime.images import ImageStore
from agent.runtime.lifecycle import Action, ContainerStatus
from agent.runtime.logs import LogRecord, read_log
from agent.runtime.procinfo import ProcessRef

__all__ = ["ContainerSpec", "ContainerState", "ContainerStatus", "LogRecord", "Runtime"]

KILL_WAIT = 10.0  # after SIGKILL, how long PID 1 may take to go (a process in D state)
SHIM_WAIT = 10.0  # after PID 1 is gone, how long the shim may take to drain the log and record the exit

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the directory holding the `agent` package
_SHIM_READY_FD = 3

_shims_lock = threading.Lock()
_shims: set[int] = set()  # shims this process spawned and has not reaped yet (any Runtime object)


def _reap_shims() -> None:
    """Collect the exit status of our shims that have ended, so none lingers as a zombie."""
    with _shims_lock:
        for pid in list(_shims):
            try:
                ended = os.waitpid(pid, os.WNOHANG)[0] == pid
            except ChildProcessError:
                ended = True
            if ended:
                _shims.discard(pid)


@dataclass(frozen=True)
class ContainerSpec:
    name: str  # also the hostname
    image: str
    entrypoint: tuple[str, ...] | None = None
    args: tuple[str, ...] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    stop_signal: int = signal.SIGTERM
    stop_grace_period: float = 10.0
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ContainerState:
    id: str
    name: str
    status: ContainerStatus
    pid: int  # host PID of the container's PID 1, 0 when not running
    exit_code: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    labels: Mapping[str, str]
    image: str
    upper_dir: Path
    error: str = ""  # why the last start failed, if it did


class Runtime:
    def __init__(self, root: Path, images: ImageStore) -> None:
        self.root = root
        self._containers = root / "containers"
        self._containers.mkdir(parents=True, exist_ok=True)
        self._images = images
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    # --- lifecycle ------------------------------------------------------------------------

    def create(self, container_id: str, spec: ContainerSpec) -> ContainerState:
        if not _ID.match(container_id):
            raise ValueError(f"invalid container id {container_id!r}: want [A-Za-z0-9][A-Za-z0-9_.-]{{0,127}}")
        image = self._images.get(spec.image)
        config = image.config
        bundle = Bundle(
            id=container_id,
            name=spec.name,
            image=image.reference,
            image_digest=image.digest,
            created_at=datetime.now(UTC),
            args=process.command(spec.entrypoint, spec.args, config.entrypoint, config.cmd),
            env=process.environment(config.env, spec.env, spec.name),
            cwd=config.working_dir or "/",
            hostname=spec.name,
            lower_dirs=tuple(str(d) for d in image.layer_dirs),
            stop_signal=int(spec.stop_signal),
            stop_grace_period=spec.stop_grace_period,
            labels=dict(spec.labels),
        )
        with self._locked(container_id):
            path = self._containers / container_id
            try:
                path.mkdir()
            except FileExistsError:
                raise ContainerExists(container_id) from None
            try:
                ContainerDir(path).make(bundle)
            except BaseException:
                shutil.rmtree(path, ignore_errors=True)
                raise
            return self._derive(container_id)

    def start(self, container_id: str) -> ContainerState:
        """Return once the user command has been exec'd; StartFailed with the reason otherwise."""
        with self._locked(container_id):
            state = self._derive(container_id)
            lifecycle.check(container_id, state.status, Action.START)
            cdir = self._dir(container_id)
            if not cdir.read_bundle().args:
                raise StartFailed(container_id, "no command: neither the spec nor the image gives an entrypoint or cmd")
            message = self._launch_shim(cdir)
            if "error" in message:
                raise StartFailed(container_id, str(message["error"]))
            return self._derive(container_id)

    def run(self, container_id: str, spec: ContainerSpec) -> ContainerState:
        self.create(container_id, spec)
        return self.start(container_id)

    def stop(self, container_id: str, timeout: float | None = None) -> ContainerState:
        """Stop signal to PID 1, SIGKILL after the grace period; return the exited state."""
        with self._locked(container_id):
            state = self._derive(container_id)
            lifecycle.check(container_id, state.status, Action.STOP)
            if state.status is ContainerStatus.RUNNING:
                bundle = self._dir(container_id).read_bundle()
                grace = bundle.stop_grace_period if timeout is None else timeout
                self._terminate(container_id, bundle.stop_signal, grace)
            return self._derive(container_id)

    def remove(self, container_id: str, force: bool = False) -> None:
        """Delete the container and its rw layer; ``force`` kills a running one first."""
        with self._locked(container_id):
            state = self._derive(container_id)
            lifecycle.check(container_id, state.status, Action.FORCE_REMOVE if force else Action.REMOVE)
            if state.status is ContainerStatus.RUNNING:
                self._terminate(container_id, signal.SIGKILL, 0.0)
            shutil.rmtree(self._dir(container_id).path)
        with self._guard:
            self._locks.pop(container_id, None)

    def wait(self, container_id: str, timeout: float | None = None) -> ContainerState:
        """Block until the container is no longer running (or ``timeout`` passes); return its state."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (state := self._derive(container_id)).status is ContainerStatus.RUNNING:
            remaining = 3600.0 if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                break
            record = self._dir(container_id).read_record()
            shim, init = self._supervisor(record), ProcessRef(record.pid, record.pid_started)
            (shim if shim.alive() else init).wait(remaining)
        return state

    # --- inspection -----------------------------------------------------------------------

    def state(self, container_id: str) -> ContainerState:
        return self._derive(container_id)

    def list(self) -> list[ContainerState]:
        states = []
        for path in sorted(self._containers.iterdir()):
            try:
                states.append(self._derive(path.name))
            except ContainerNotFound:
                continue  # being created or removed right now
        return states

    def read_logs(self, container_id: str, *, tail: int = 0, follow: bool = False) -> Iterator[LogRecord]:
        """Log records, oldest first: the last ``tail`` (all when 0); with ``follow``, then new ones
        until the container is not running and the log is drained."""
        cdir = self._dir(container_id)
        self._derive(container_id)  # ContainerNotFound now, not at the first next()

        def finished() -> bool:
            try:
                return self._derive(container_id).status is not ContainerStatus.RUNNING
            except ContainerNotFound:
                return True

        return read_log(cdir.log_file, tail=tail, follow=follow, finished=finished)

    # --- internals ------------------------------------------------------------------------

    def _dir(self, container_id: str) -> ContainerDir:
        return ContainerDir(self._containers / container_id)

    @contextmanager
    def _locked(self, container_id: str) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault(container_id, threading.Lock())
        with lock:
            yield

    def _derive(self, container_id: str) -> ContainerState:
        """The true state: the recorded one checked against the kernel (are shim and PID 1 alive?)."""
        cdir = self._dir(container_id)
        try:
            bundle = cdir.read_bundle()
            record = cdir.read_record()
        except (FileNotFoundError, NotADirectoryError):
            raise ContainerNotFound(container_id) from None
        _reap_shims()
        init = ProcessRef(record.pid, record.pid_started)
        status = lifecycle.derive_status(record.status, self._supervisor(record).alive(), init.alive())
        if status is not record.status:
            record = cdir.read_record()  # the shim may have recorded the exit since we read
        return ContainerState(
            id=bundle.id,
            name=bundle.name,
            status=status,
            pid=record.pid if status is ContainerStatus.RUNNING and init.alive() else 0,
            exit_code=record.exit_code if status is ContainerStatus.EXITED else None,
            created_at=bundle.created_at,
            started_at=record.started_at,
            finished_at=record.finished_at,
            labels=bundle.labels,
            image=bundle.image,
            upper_dir=cdir.upper,
            error=record.error,
        )

    @staticmethod
    def _supervisor(record: Record) -> ProcessRef:
        return ProcessRef(record.shim_pid, record.shim_started)

    def _launch_shim(self, cdir: ContainerDir) -> dict[str, object]:
        """Start the shim and read its one-line report: {"pid": N} or {"error": reason}.

        posix_spawn rather than Popen: the shim is meant to outlive this object (and this
        process), so there is no Popen to keep; its pid is reaped by ``_reap_shims``. The ready
        pipe stays CLOEXEC here and reaches the shim only as its fd 3, so shims spawned by other
        threads at the same moment do not inherit it.
        """
        ready_r, ready_w = os.pipe()
        pythonpath = os.pathsep.join(filter(None, (str(_PACKAGE_ROOT), os.environ.get("PYTHONPATH"))))
        try:
            pid = os.posix_spawn(
                sys.executable,
                [sys.executable, "-S", "-m", "agent.runtime.shim", str(cdir.path), str(_SHIM_READY_FD)],
                dict(os.environ, PYTHONPATH=pythonpath),
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_OPEN, 1, str(cdir.shim_log), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640),
                    (os.POSIX_SPAWN_DUP2, 1, 2),
                    (os.POSIX_SPAWN_DUP2, ready_w, _SHIM_READY_FD),
                ],
                setsid=True,  # its own session: the agent's end (or its terminal's) does not reach it
            )
        finally:
            os.close(ready_w)
        with _shims_lock:
            _shims.add(pid)
        with os.fdopen(ready_r, "rb") as ready:
            raw = ready.read()
        if not raw:
            tail = cdir.shim_log.read_text(errors="replace").strip().splitlines()[-5:]
            return {"error": "shim exited without reporting: " + " | ".join(tail)}
        message: dict[str, object] = json.loads(raw)
        return message

    def _terminate(self, container_id: str, sig: int, grace: float) -> None:
        """Signal PID 1, SIGKILL it if still there after ``grace``, then wait for the shim to record the exit."""
        record = self._dir(container_id).read_record()
        init = ProcessRef(record.pid, record.pid_started)
        init.signal(sig)
        if not init.wait(grace):
            # PID 1 of a PID namespace ignores signals it has no handler for; SIGKILL from outside it is not.
            init.signal(signal.SIGKILL)
            init.wait(KILL_WAIT)
        self._supervisor(record).wait(SHIM_WAIT)
        _reap_shims()
