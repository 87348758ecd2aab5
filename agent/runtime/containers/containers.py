"""Containers: create, start, stop, remove, exec, inspect and read logs — synchronous and blocking.

Every method re-reads the container's directory and asks the kernel, so several Runtime
objects (in one process or several) can act on the same root; calls on one container are
serialised within a Runtime. Each running container has a shim (see shim.py), forked by this
process's fork server (see forkserver.py), that owns its stdio, log, exit record and restart
policy, so containers outlive the process that started them.

Create resolves everything once — command, env, user, working dir, capabilities, rlimits,
mounts and volumes, cgroup limits — into the container's OCI bundle (oci.py); start only
asks the fork server for a shim and waits for the exec.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import shutil
import signal
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from agent.runtime.containers import caps
from agent.runtime.containers import forkserver
from agent.runtime.containers import lifecycle
from agent.runtime.containers import oci
from agent.runtime.containers import process
from agent.runtime.containers import users
from agent.runtime.containers.bundle import Bundle, ContainerDir, Record
from agent.runtime.containers.cgroups import Cgroup, Limits
from agent.runtime.containers.devices import DeviceNode
from agent.runtime.errors import ContainerExists, ContainerNotFound, InvalidSpec, StartFailed
from agent.runtime.containers.execproc import ExecProcess
from agent.runtime.images.store import Image, ImageStore, Usage
from agent.runtime.containers.lifecycle import Action, ContainerStatus
from agent.runtime.containers.logs import LogRecord, log_files, read_log
from agent.runtime.containers.procinfo import ProcessRef
from agent.runtime.containers.restart import RestartPolicy
from agent.runtime.containers.volumes import ANONYMOUS_PREFIX, Volume, VolumeInUse, Volumes

__all__ = ["ContainerSpec", "ContainerState", "ContainerStatus", "DeviceSpec", "LogRecord", "MountSpec", "Runtime"]

KILL_WAIT = 10.0  # after SIGKILL, how long PID 1 may take to go (a process in D state)
SHIM_WAIT = 10.0  # after PID 1 is gone, how long the shim may take to drain the log and record the exit
CGROUP_WAIT = 5.0  # how long the last processes of a container may take to leave its cgroup
EXIT_POLL = 0.02

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class MountSpec:
    target: str  # absolute path in the container
    type: str = "volume"  # "volume" (named, or anonymous when source is empty) | "bind" | "tmpfs"
    source: str = ""  # volume name or host path
    read_only: bool = False


@dataclass(frozen=True)
class DeviceSpec:
    """A host device the container may use (``docker run --device``)."""

    host_path: str
    container_path: str = ""  # "" = the host path
    permissions: str = "rwm"  # r, w, m (mknod)


@dataclass(frozen=True)
class ContainerSpec:
    name: str  # also the hostname
    image: str
    entrypoint: tuple[str, ...] | None = None
    args: tuple[str, ...] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    stop_signal: int | str | None = None  # a number or a name ("SIGQUIT"); None: the image's, else SIGTERM
    stop_grace_period: float = 10.0
    labels: Mapping[str, str] = field(default_factory=dict)
    netns_path: str | None = None  # join this network namespace (prepared by agent.network) instead of a new one
    host_network: bool = False
    user: str = ""  # "uid[:gid]" or a name of the image's /etc/passwd; "" = the image's
    working_dir: str = ""  # "" = the image's, else /
    read_only_rootfs: bool = False
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    init: bool = False  # a minimal init as PID 1 (reaps zombies, forwards signals)
    # A user namespace mapping container ids 0..size-1 to host ids first..first+size-1 (uids and gids).
    userns: tuple[int, int] | None = None
    limits: Limits = Limits()
    mounts: tuple[MountSpec, ...] = ()
    # Containers whose mounts to share, each a container id or "label:KEY=VALUE" (the oldest
    # container with that label), optionally suffixed ":ro" or ":rw".
    volumes_from: tuple[str, ...] = ()
    restart: RestartPolicy = RestartPolicy()
    rlimits: Mapping[str, int] = field(default_factory=lambda: dict(oci.DEFAULT_RLIMITS))
    no_new_privileges: bool = True
    seccomp: str = "default"  # Docker's default profile, or "unconfined"
    devices: tuple[DeviceSpec, ...] = ()
    log_max_bytes: int = 10 * 1024 * 1024
    log_max_files: int = 3


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
    oom_killed: bool = False
    restarts: int = 0
    volumes: tuple[str, ...] = ()


class Runtime:
    def __init__(self, root: Path, images: ImageStore, cgroup_parent: str | None = None) -> None:
        """``cgroup_parent``: where containers' cgroups go, relative to this process's own cgroup
        unless absolute; by default one per root, so everything of one agent can be found and killed."""
        self.root = root
        self._containers = root / "containers"
        self._containers.mkdir(parents=True, exist_ok=True)
        self._images = images
        self.volumes = Volumes(root / "volumes")
        self.cgroup_parent = cgroup_parent or "moorage-" + hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:12]
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    # --- lifecycle ------------------------------------------------------------------------

    def create(self, container_id: str, spec: ContainerSpec) -> ContainerState:
        if not _ID.match(container_id):
            raise InvalidSpec(f"invalid container id {container_id!r}: want [A-Za-z0-9][A-Za-z0-9_.-]{{0,127}}")
        image = self._images.get(spec.image)
        with self._locked(container_id):
            path = self._containers / container_id
            try:
                path.mkdir()
            except FileExistsError:
                raise ContainerExists(container_id) from None
            try:
                cdir = ContainerDir(path)
                try:
                    caps.resolve(spec.cap_add, spec.cap_drop)
                except ValueError as e:
                    raise InvalidSpec(str(e)) from e
                mounts, volume_names = self._mounts(spec, image)
                config = self._config(spec, image, cdir, mounts)
                bundle = Bundle(
                    id=container_id,
                    name=spec.name,
                    image=image.reference,
                    image_digest=image.digest,
                    created_at=datetime.now(UTC),
                    stop_signal=_stop_signal(spec, image),
                    stop_grace_period=spec.stop_grace_period,
                    labels=dict(spec.labels),
                    restart=spec.restart,
                    volumes=volume_names,
                    log_max_bytes=spec.log_max_bytes,
                    log_max_files=spec.log_max_files,
                )
                cdir.make(bundle, config)
                if spec.userns is not None:  # the container's root writes its rw layer
                    for d in (cdir.upper, cdir.work):
                        os.chown(d, spec.userns[0], spec.userns[0])
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
            if not cdir.read_config()["process"]["args"]:
                raise StartFailed(container_id, "no command: neither the spec nor the image gives an entrypoint or cmd")
            message = self._launch_shim(cdir)
            if "error" in message:
                raise StartFailed(container_id, str(message["error"]))
            return self._derive(container_id)

    def run(self, container_id: str, spec: ContainerSpec) -> ContainerState:
        self.create(container_id, spec)
        return self.start(container_id)

    def stop(self, container_id: str, timeout: float | None = None) -> ContainerState:
        """No more restarts; the stop signal to PID 1, SIGKILL after the grace period; return the exited state."""
        with self._locked(container_id):
            state = self._derive(container_id)
            lifecycle.check(container_id, state.status, Action.STOP)
            bundle = self._dir(container_id).read_bundle()
            grace = bundle.stop_grace_period if timeout is None else timeout
            self._terminate(container_id, bundle.stop_signal, grace)
            return self._derive(container_id)

    def remove(self, container_id: str, force: bool = False, volumes: bool = False) -> None:
        """Delete the container and its rw layer; ``force`` kills a running one first; ``volumes``
        also removes its anonymous volumes that no other container uses."""
        with self._locked(container_id):
            state = self._derive(container_id)
            lifecycle.check(container_id, state.status, Action.FORCE_REMOVE if force else Action.REMOVE)
            self._terminate(container_id, signal.SIGKILL, 0.0)
            self._cgroup(container_id).remove()
            shutil.rmtree(self._dir(container_id).path)
        with self._guard:
            self._locks.pop(container_id, None)
        if volumes:
            in_use = self.volume_users()
            for name in state.volumes:
                if name.startswith(ANONYMOUS_PREFIX) and not in_use.get(name):
                    self.volumes.remove(name)

    def wait(self, container_id: str, timeout: float | None = None) -> ContainerState:
        """Block until the container is no longer running (or ``timeout`` passes); return its state."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (state := self._derive(container_id)).status is ContainerStatus.RUNNING:
            remaining = 3600.0 if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                break
            record = self._dir(container_id).read_record()
            init = ProcessRef(record.pid, record.pid_started)
            if init.alive():
                init.wait(remaining)
            else:  # the shim is recording the exit (it may live on, to restart the container)
                self._supervisor(record).wait(min(remaining, EXIT_POLL))
        return state

    def exec(
        self,
        container_id: str,
        args: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        tty: bool = False,
        cwd: str = "",
        size: tuple[int, int] = (24, 80),
    ) -> ExecProcess:
        """Start ``args`` inside the running container (its namespaces, root, env, user, cgroup)."""
        state = self._derive(container_id)
        lifecycle.check(container_id, state.status, Action.EXEC)
        if not args:
            raise InvalidSpec("exec needs a command")
        request = {"op": "exec", "dir": str(self._dir(container_id).path), "args": list(args),
                   "env": dict(env or {}), "tty": tty, "cwd": cwd}
        return ExecProcess.start(container_id, request, tty, size)

    def exec_run(self, container_id: str, args: Sequence[str], timeout: float = 30.0) -> tuple[int, bytes, bytes]:
        """Run ``args`` in the container to its end: (exit code, stdout, stderr)."""
        return self.exec(container_id, args).communicate(timeout)

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

    def read_logs(
        self, container_id: str, *, tail: int = 0, follow: bool = False, since: datetime | None = None
    ) -> Iterator[LogRecord]:
        """Log records, oldest first: those at or after ``since``, the last ``tail`` of them (all
        when 0); with ``follow``, then new ones until the container is not running and the log
        is drained. Kept after the container exits, until it is removed."""
        cdir = self._dir(container_id)
        self._derive(container_id)  # ContainerNotFound now, not at the first next()

        def finished() -> bool:
            try:
                return self._derive(container_id).status is not ContainerStatus.RUNNING
            except ContainerNotFound:
                return True

        return read_log(cdir.log_file, tail=tail, follow=follow, finished=finished, since=since)

    def log_files(self, container_id: str) -> list[Path]:
        return log_files(self._dir(container_id).log_file)

    def bundle_dir(self, container_id: str) -> Path:
        """The container's OCI bundle (config.json + rootfs)."""
        self._derive(container_id)
        return self._dir(container_id).path

    # --- volumes and images in use --------------------------------------------------------

    def volume_users(self) -> dict[str, list[str]]:
        """Volume name -> the containers that hold it."""
        users: dict[str, list[str]] = {}
        for state in self.list():
            for name in state.volumes:
                users.setdefault(name, []).append(state.id)
        return users

    def remove_volume(self, name: str, force: bool = False) -> None:
        """Remove a volume; one some container holds only with ``force``."""
        holders = self.volume_users().get(name, [])
        if holders and not force:
            raise VolumeInUse(name, holders)
        self.volumes.remove(name)

    def image_usage(self) -> Usage:
        """The images and layers existing containers hold (for the image store's sweep)."""
        digests, layers = set(), set()
        for path in self._containers.iterdir():
            cdir = ContainerDir(path)
            try:
                digests.add(cdir.read_bundle().image_digest)
                lower = cdir.read_config().get("annotations", {}).get(oci.LOWER, "")
            except (FileNotFoundError, NotADirectoryError):
                continue
            layers |= set(filter(None, lower.split(":")))
        return Usage(frozenset(digests), frozenset(layers))

    # --- the agent's cgroup ---------------------------------------------------------------

    def release(self) -> None:
        """Force-remove every container, then this runtime's cgroup parent: a host's full clean-up."""
        for state in self.list():
            self.remove(state.id, force=True)
        self.kill_everything()
        Cgroup.locate(self.cgroup_parent).remove()

    def kill_everything(self) -> None:
        """SIGKILL every process in this runtime's cgroup parent: the clean-up of last resort."""
        parent = Cgroup.locate(self.cgroup_parent)
        parent.kill_all()
        deadline = time.monotonic() + CGROUP_WAIT
        while parent.pids() and time.monotonic() < deadline:
            time.sleep(0.01)

    # --- internals ------------------------------------------------------------------------

    def _dir(self, container_id: str) -> ContainerDir:
        return ContainerDir(self._containers / container_id)

    def _cgroup(self, container_id: str) -> Cgroup:
        return Cgroup.locate(f"{self.cgroup_parent}/{container_id}")

    @contextmanager
    def _locked(self, container_id: str) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault(container_id, threading.Lock())
        with lock:
            yield

    def _mounts(self, spec: ContainerSpec, image: Image) -> tuple[list[oci.Mount], tuple[str, ...]]:
        """The spec's mounts, the image's VOLUMEs not covered by them (as anonymous volumes), and
        the mounts of ``volumes_from`` containers; with the names of the volumes held."""
        mounts: list[oci.Mount] = []
        held: list[str] = []
        targets: set[str] = set()

        def volume(name: str | None, target: str, read_only: bool) -> None:
            vol: Volume = self.volumes.ensure(name, image.layer_dirs, target)
            mounts.append(oci.Mount(target, str(vol.path), "bind", read_only))
            held.append(vol.name)

        for m in spec.mounts:
            target = _absolute(m.target, "mount target")
            targets.add(target)
            if m.type == "volume":
                volume(m.source or None, target, m.read_only)
            elif m.type == "bind":
                source = Path(m.source)
                if not source.is_absolute() or not source.exists():
                    raise InvalidSpec(f"bind mount source {m.source!r} for {target} must be an existing absolute path")
                mounts.append(oci.Mount(target, str(source), "bind", m.read_only))
            elif m.type == "tmpfs":
                mounts.append(oci.Mount(target, "tmpfs", "tmpfs", m.read_only))
            else:
                raise InvalidSpec(f"unknown mount type {m.type!r} for {target}: want volume, bind or tmpfs")
        for target in getattr(image.config, "volumes", ()):
            if _absolute(target, "image VOLUME") not in targets:
                targets.add(target)
                volume(None, target, False)
        for source in spec.volumes_from:
            selector, mode = (source[:-3], source[-2:]) if source.endswith((":ro", ":rw")) else (source, "")
            other = self._dir(self._select(selector))
            try:
                other_mounts = other.read_config()["mounts"][len(oci.DEFAULT_MOUNTS):]
                other_volumes = other.read_bundle().volumes
            except FileNotFoundError:
                raise ContainerNotFound(selector) from None
            for m in other_mounts:
                if m["destination"] not in targets:
                    targets.add(m["destination"])
                    read_only = mode == "ro" or (mode == "" and "ro" in m["options"])
                    mounts.append(oci.Mount(m["destination"], m["source"], m["type"], read_only))
            held += other_volumes
        return mounts, tuple(dict.fromkeys(held))

    def _select(self, selector: str) -> str:
        """A container id, or the oldest container with the label of ``label:KEY=VALUE``."""
        if not selector.startswith("label:"):
            return selector
        key, _, value = selector.removeprefix("label:").partition("=")
        matching = sorted((c for c in self.list() if c.labels.get(key) == value), key=lambda c: c.created_at)
        if not matching:
            raise InvalidSpec(f"volumes_from {selector!r}: no container on this host has that label")
        return matching[0].id

    def _config(self, spec: ContainerSpec, image: Image, cdir: ContainerDir, mounts: list[oci.Mount]) -> dict[str, object]:
        config = image.config
        try:
            user = users.resolve(spec.user or getattr(config, "user", ""), *users.image_tables(image.layer_dirs))
            nodes = tuple(DeviceNode.of_host(d.host_path, d.container_path, d.permissions) for d in spec.devices)
        except ValueError as e:
            raise InvalidSpec(str(e)) from e
        if spec.seccomp not in oci.SECCOMP_PROFILES:
            raise InvalidSpec(f"seccomp profile {spec.seccomp!r}: want one of {', '.join(oci.SECCOMP_PROFILES)}")
        return oci.build(oci.ConfigInput(
            args=process.command(spec.entrypoint, spec.args, config.entrypoint, config.cmd),
            env=process.environment(config.env, spec.env, spec.name, user.home),
            cwd=_absolute(spec.working_dir or config.working_dir or "/", "working dir"),
            hostname=spec.name,
            user=user,
            capabilities=caps.resolve(spec.cap_add, spec.cap_drop),
            no_new_privileges=spec.no_new_privileges,
            rlimits=dict(spec.rlimits),
            host_hard_limits={name: _hard_limit(name) for name in spec.rlimits},
            read_only=spec.read_only_rootfs,
            mounts=tuple(mounts),
            limits=spec.limits,
            cgroups_path=f"{self.cgroup_parent}/{cdir.path.name}",
            overlay=oci.Overlay(tuple(str(d) for d in image.layer_dirs), str(cdir.upper), str(cdir.work)),
            init=spec.init,
            uid_map=() if spec.userns is None else ((0, *spec.userns),),
            gid_map=() if spec.userns is None else ((0, *spec.userns),),
            network_path=spec.netns_path or "",
            host_network=spec.host_network,
            seccomp=spec.seccomp,
            devices=nodes,
        ))

    def _derive(self, container_id: str) -> ContainerState:
        """The true state: the recorded one checked against the kernel (are shim and PID 1 alive?)."""
        cdir = self._dir(container_id)
        try:
            bundle = cdir.read_bundle()
            record = cdir.read_record()
        except (FileNotFoundError, NotADirectoryError, ValueError, TypeError):  # gone, or torn by a crash
            raise ContainerNotFound(container_id) from None
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
            oom_killed=record.oom_killed,
            restarts=record.restarts,
            volumes=bundle.volumes,
        )

    @staticmethod
    def _supervisor(record: Record) -> ProcessRef:
        return ProcessRef(record.shim_pid, record.shim_started)

    def _launch_shim(self, cdir: ContainerDir) -> dict[str, object]:
        """Have the fork server fork a shim; read its one-line report: {"pid": N} or {"error": reason}."""
        ready_r, ready_w = os.pipe()
        try:
            forkserver.request({"op": "shim", "dir": str(cdir.path)}, [ready_w])
        finally:
            os.close(ready_w)
        with os.fdopen(ready_r, "rb") as ready:
            raw = ready.read()
        if not raw:
            tail = cdir.shim_log.read_text(errors="replace").strip().splitlines()[-5:]
            return {"error": "shim exited without reporting: " + " | ".join(tail)}
        message: dict[str, object] = json.loads(raw)
        return message

    def _terminate(self, container_id: str, sig: int, grace: float) -> None:
        """Tell the shim not to restart, signal PID 1, SIGKILL it if still there after ``grace``,
        then wait for the shim to record the exit."""
        record = self._dir(container_id).read_record()
        if not record.shim_pid:
            return  # never started
        shim = self._supervisor(record)
        shim.signal(signal.SIGTERM)  # blocked in the shim: read as "no more restarts"
        init = ProcessRef(record.pid, record.pid_started)
        if init.alive():
            init.signal(sig)
            if not init.wait(grace):
                # PID 1 of a PID namespace ignores signals it has no handler for; SIGKILL from outside it is not.
                init.signal(signal.SIGKILL)
                init.wait(KILL_WAIT)
        shim.wait(SHIM_WAIT)


def _absolute(path: str, what: str) -> str:
    if not path.startswith("/"):
        raise InvalidSpec(f"{what} {path!r} must be an absolute path")
    return os.path.normpath(path)


def _stop_signal(spec: ContainerSpec, image: Image) -> int:
    wanted = spec.stop_signal if spec.stop_signal is not None else getattr(image.config, "stop_signal", "")
    if isinstance(wanted, int):
        return wanted
    try:
        return process.parse_signal(wanted) if wanted else int(signal.SIGTERM)
    except ValueError as e:
        raise InvalidSpec(f"stop signal: {e}") from e


def _hard_limit(name: str) -> int:
    try:
        hard = resource.getrlimit(getattr(resource, name))[1]
    except AttributeError:
        raise InvalidSpec(f"unknown rlimit {name!r}: want a name of the resource module, e.g. RLIMIT_NOFILE") from None
    return hard if hard != resource.RLIM_INFINITY else 2**63 - 1


