"""The per-container supervisor, forked by the fork server (see forkserver.py) for every start.

It runs in a session of its own, so it outlives the agent and the fork server. It

1. makes the container's cgroup, unshares a PID namespace and forks the container's PID 1,
   which enters the other namespaces and builds its root (see executor) while the shim moves
   it into the cgroup, then execs the user command — or, with the init annotation, stays
   PID 1 as a minimal init;
2. learns the outcome through a CLOEXEC pipe: closed by a successful execve, or carrying
   the error text;
3. records ``running`` as soon as PID 1 is forked (it is alive from then on; the write
   overlaps its setup), or the failure, in state.json; then reports one JSON line on the
   ready fd ({"pid": N} or {"error": "..."}) and closes it, which unblocks Runtime.start;
4. writes the container's stdout/stderr to the JSON-lines log (rotated by size) until EOF;
5. reaps PID 1 and records the exit code (128+N for death by signal N), time and OOM kill;
6. restarts it per the restart policy, with back-off, unless asked to stop: SIGTERM to the
   shim (blocked here, so it stays pending and is checked at each exit) means "no more
   restarts" (Runtime.stop sends it before signalling PID 1).
"""

from __future__ import annotations

import dataclasses
import json
import os
import selectors
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from agent.runtime.containers import executor
from agent.runtime.containers import oci
from agent.runtime.containers import userns
from agent.runtime.containers import syscalls as sc
from agent.runtime.containers.bundle import ContainerDir, Record
from agent.runtime.containers.cgroups import Cgroup
from agent.runtime.containers.lifecycle import ContainerStatus
from agent.runtime.containers.logs import LineSplitter, LogWriter, format_record
from agent.runtime.containers.procinfo import start_time

EXEC_FAILED = 127
STOP = signal.SIGTERM
FORWARDED = tuple(s for s in signal.Signals if s not in (signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD))


class StartError(Exception):
    """The container did not reach exec; the message is the reason reported to start()."""


def now() -> datetime:
    return datetime.now(UTC)


def exit_code(wait_status: int) -> int:
    """The shell convention: the exit status, or 128+N after death by signal N."""
    code = os.waitstatus_to_exitcode(wait_status)
    return 128 - code if code < 0 else code


def exec_process(process: Mapping[str, Any]) -> NoReturn:
    """Become the user command: default signal dispositions and mask, then execvpe."""
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):  # Python ignores these; the user command should not
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, ())
    args = process["args"]
    env = dict(entry.partition("=")[::2] for entry in process.get("env", []))
    try:
        os.execvpe(args[0], args, env)
    except OSError as e:
        raise StartError(f"exec: {args[0]}: {e.strerror}") from e


def minimal_init(process: Mapping[str, Any], err_w: int) -> NoReturn:
    """PID 1 that forks the command, forwards every signal to it and reaps every orphan.

    It is this very (forked, already imported) Python process, so no init binary has to be in
    the image or bind-mounted into it; it exits with the command's status, which ends the PID
    namespace and everything left in it, as tini does.
    """
    # The shim reports the container running once err_w is closed here and in the exec'd child;
    # a signal arriving before the handlers exist would be dropped (PID 1 ignores SIG_DFL
    # signals), so they stay blocked, pending, until the handlers are in place.
    signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
    child = os.fork()
    if child == 0:
        _exec_or_report(process, err_w)  # exec_process unblocks them for the command
    for sig in FORWARDED:
        signal.signal(sig, lambda number, _: os.kill(child, number))
    os.close(err_w)
    signal.pthread_sigmask(signal.SIG_SETMASK, ())
    while True:
        pid, status = os.wait()
        if pid == child:
            os._exit(exit_code(status))


def _exec_or_report(process: Mapping[str, Any], err_w: int) -> NoReturn:
    try:
        exec_process(process)
    except BaseException as e:  # anything at all: the shim must hear about it, and we must not return
        _fail(err_w, str(e) or repr(e))


def _fail(err_w: int, reason: str) -> NoReturn:
    try:
        os.write(err_w, reason.encode())
    finally:
        os._exit(EXEC_FAILED)


def _container_init(config: Mapping[str, Any], cdir: ContainerDir, stdio: tuple[int, int, int], go_r: int,
                    err_w: int, unshared: Mapping[int, int] | None = None) -> NoReturn:
    """In the forked child: become the container and exec, or write why not to ``err_w``.

    The shim moves us into the cgroup meanwhile (a cgroup v1 migration waits for an RCU grace
    period per hierarchy, so it overlaps our mounts instead of preceding them); ``go_r`` says
    when it is done, and nothing of the user's runs before.
    """
    try:
        sc.prctl(sc.PR_SET_DUMPABLE, 0)  # see nsexec.run; the minimal init stays so, the command's exec resets it
        for target, fd in enumerate(stdio):
            os.dup2(fd, target)
        _close_fds_except({0, 1, 2, go_r, err_w, *(unshared or {}).values()})  # an init never execs
        syscall_filter = executor.syscall_filter(config)
        executor.enter(config, cdir.path, unshared)
        executor.drop_privileges(config["process"], syscall_filter)
        if os.read(go_r, 1) != b"1":
            raise StartError("the shim could not place the container in its cgroup")
        if config.get("annotations", {}).get(oci.INIT) == "true":
            minimal_init(config["process"], err_w)
    except BaseException as e:
        _fail(err_w, str(e) or repr(e))
    _exec_or_report(config["process"], err_w)


def _close_fds_except(keep: set[int]) -> None:
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass  # the directory's own fd, already closed


PREPARED_NAMESPACES = {sc.CLONE_NEWNS: "mnt", sc.CLONE_NEWUTS: "uts", sc.CLONE_NEWIPC: "ipc", sc.CLONE_NEWNET: "net"}


@dataclass
class Prepared:
    """A PID 1 forked before its container is known: PID, mount, UTS, IPC and network
    namespaces already made, its pipes open, waiting on ``path_w`` for its bundle's path."""

    pid: int
    out_r: int
    err_r: int
    sync_r: int
    go_w: int
    path_w: int
    host_pidns: int

    def discard(self) -> None:
        for fd in (self.out_r, self.err_r, self.sync_r, self.go_w, self.path_w):
            os.close(fd)
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)


def prepare(close: tuple[int, ...] = ()) -> Prepared:
    """Fork a PID 1 in advance (the fork server's standby does, while it waits for a request):
    the fork and the namespaces' creation leave the path of the next start."""
    host_pidns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    sc.unshare(sc.CLONE_NEWPID)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    sync_r, sync_w = os.pipe()
    go_r, go_w = os.pipe()
    path_r, path_w = os.pipe()
    devnull = os.open(os.devnull, os.O_RDONLY)
    pid = os.fork()
    if pid == 0:
        for fd in (*close, out_r, err_r, sync_r, go_w, path_w, host_pidns):
            os.close(fd)
        _prepared_child((devnull, out_w, err_w), go_r, sync_w, path_r)
    for fd in (out_w, err_w, sync_w, go_r, path_r, devnull):
        os.close(fd)
    return Prepared(pid, out_r, err_r, sync_r, go_w, path_w, host_pidns)


def _prepared_child(stdio: tuple[int, int, int], go_r: int, sync_w: int, path_r: int) -> NoReturn:
    try:
        host = {flag: os.open(f"/proc/self/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)
                for flag, name in PREPARED_NAMESPACES.items()}
        sc.unshare(sum(host))
        with os.fdopen(path_r, "rb") as source:
            path = source.read().decode()
        if not path:
            os._exit(0)  # not needed after all
        cdir = ContainerDir(Path(path))
        config = cdir.read_config()
    except BaseException as e:
        _fail(sync_w, str(e) or repr(e))
    _container_init(config, cdir, stdio, go_r, sync_w, host)


def spawn(
    config: Mapping[str, Any],
    cdir: ContainerDir,
    place: Callable[[int], None],
    forked: Callable[[int], None],
    host_pidns: int,
    prepared: Prepared | None = None,
) -> tuple[int, int, int]:
    """Fork the container's PID 1 in a new PID namespace (or take the ``prepared`` one); return
    (pid, stdout fd, stderr fd) once it has exec'd.

    While PID 1 builds its root, ``place(pid)`` puts it in its cgroup (before it may exec)
    and ``forked(pid)`` records it (in parallel with the rest of its setup).
    """
    in_userns = userns.wanted(config)
    if prepared is not None:
        if not in_userns:  # a user namespace must be made first, and own the others: not prepared
            return _go(prepared.pid, prepared.out_r, prepared.err_r, prepared.sync_r, prepared.go_w, place, forked,
                       path=(prepared.path_w, str(cdir.path)))
        prepared.discard()
    try:
        sc.setns(host_pidns, sc.CLONE_NEWPID)  # children in our own namespace again (after a restart)...
        if not in_userns:
            sc.unshare(sc.CLONE_NEWPID)  # ...then in a new one (with a user namespace: see userns)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        sync_r, sync_w = os.pipe()
        go_r, go_w = os.pipe()
        report_r, report_w = os.pipe()
        mapped_r, mapped_w = os.pipe()
        devnull = os.open(os.devnull, os.O_RDONLY)
        pid = os.fork()
    except OSError as e:
        raise StartError(str(e)) from e
    if pid == 0:
        for fd in (go_w, report_r, mapped_w):
            os.close(fd)
        if in_userns:
            try:
                userns.become_pid1(mapped_r, report_w)
            except BaseException as e:
                _fail(sync_w, f"user namespace: {e}")
        _container_init(config, cdir, (devnull, out_w, err_w), go_r, sync_w)
    for fd in (out_w, err_w, sync_w, devnull, go_r, report_w, mapped_r):
        os.close(fd)
    if in_userns:
        try:
            pid = userns.handshake(pid, config, report_r, mapped_w)
        except OSError as e:
            return _go(pid, out_r, err_r, sync_r, go_w, place, forked, error=f"user namespace: {e}")
    else:
        os.close(report_r)
        os.close(mapped_w)
    return _go(pid, out_r, err_r, sync_r, go_w, place, forked)


def _go(
    pid: int,
    out_r: int,
    err_r: int,
    sync_r: int,
    go_w: int,
    place: Callable[[int], None],
    forked: Callable[[int], None],
    path: tuple[int, str] | None = None,
    error: str = "",
) -> tuple[int, int, int]:
    """The shim's half of a start once PID 1 exists: (tell a prepared PID 1 its bundle,) place
    it in its cgroup, let it exec, record it, and learn how the exec went."""
    if path is not None:
        try:
            os.write(path[0], path[1].encode())
        except BrokenPipeError:
            pass  # it failed already: the sync pipe says why
        finally:
            os.close(path[0])
    try:
        if error:
            raise OSError(error)
        place(pid)
        go = b"1"
    except OSError as e:
        error = f"setting up PID 1: {e}"
        go = b"0"
    try:
        os.write(go_w, go)
    except BrokenPipeError:
        pass  # PID 1 failed already: the sync pipe says why
    finally:
        os.close(go_w)
    forked(pid)
    with os.fdopen(sync_r, "rb") as sync:
        failure = sync.read()
    if failure or error:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass  # a user namespace's intermediate child, reaped already
        os.close(out_r)
        os.close(err_r)
        raise StartError(failure.decode(errors="replace") or error)
    return pid, out_r, err_r


def pump_logs(log: LogWriter, streams: dict[int, str]) -> None:
    """Copy each stream into the log as JSON lines until every stream reaches EOF."""
    splitters = {fd: LineSplitter() for fd in streams}
    with selectors.DefaultSelector() as sel:
        for fd in streams:
            sel.register(fd, selectors.EVENT_READ)
        while sel.get_map():
            for key, _ in sel.select():
                fd = key.fd
                chunk = os.read(fd, 65536)
                lines = splitters[fd].feed(chunk) if chunk else splitters[fd].flush()
                if lines:
                    stamp = time.time_ns()
                    log.write([format_record(streams[fd], line, stamp) for line in lines])
                if not chunk:
                    sel.unregister(fd)
                    os.close(fd)


def report(ready_fd: int, message: dict[str, object]) -> None:
    """Tell Runtime.start how it went; it may be gone (agent killed): that must not stop us."""
    if ready_fd < 0:
        return
    try:
        os.write(ready_fd, json.dumps(message).encode())
    except OSError:
        pass
    finally:
        os.close(ready_fd)


def stop_requested(wait: float = 0.0) -> bool:
    """True once STOP was sent to us (it is blocked, so it waits as pending); waits up to ``wait`` for it."""
    if STOP in signal.sigpending():
        return True
    return wait > 0 and signal.sigtimedwait([STOP], wait) is not None


def run(path: str, ready_fd: int, prepared: Prepared | None = None) -> int:
    """The shim's life for the container at ``path``; ``ready_fd`` gets the start report; a
    ``prepared`` PID 1 (see prepare) is used for the first start if the container allows."""
    signal.pthread_sigmask(signal.SIG_BLOCK, [STOP])
    sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)  # PID 1 forked by a child of ours is still ours (see userns)
    os.chdir("/")  # hold no directory of the agent's busy
    cdir = ContainerDir(Path(path))
    me = os.getpid()
    base = Record(ContainerStatus.CREATED, shim_pid=me, shim_started=start_time(me) or 0)
    host_pidns = prepared.host_pidns if prepared else os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        bundle = cdir.read_bundle()
        config = cdir.read_config()
        path_of_cgroup = config["linux"].get("cgroupsPath", "")
        cgroup = Cgroup.locate(path_of_cgroup) if path_of_cgroup else None
        device_rules = oci.device_rules_of(config)
        if device_rules is not None and cgroup is None:
            raise ValueError("linux.resources.devices needs a cgroup to enforce them: linux.cgroupsPath is empty")
    except (OSError, ValueError, KeyError) as e:
        if prepared is not None:
            prepared.discard()
        cdir.write_record(dataclasses.replace(base, status=ContainerStatus.EXITED, finished_at=now(),
                                              exit_code=EXEC_FAILED, error=f"setup: {e}"))
        report(ready_fd, {"error": f"setup: {e}"})
        return 1
    made: list[Cgroup] = []
    log: LogWriter | None = None

    def place(pid: int) -> None:
        """In the shim, while PID 1 builds its root: make the cgroup (once), move PID 1 into it."""
        if cgroup is None:
            return
        if not made:
            try:
                cgroup.create(oci.limits_of(config), device_rules)
            except OSError:
                cgroup.remove()  # nothing half-made is left, nor joined by the next start
                raise
            made.append(cgroup)
        cgroup.join(pid)

    restarts = streak = 0
    running = base

    def forked(pid: int) -> None:
        """Record PID 1 as running from its fork (it is alive) and open the log: both overlap its
        setup, and both are there before Runtime.start returns."""
        nonlocal running, log
        running = dataclasses.replace(base, status=ContainerStatus.RUNNING, pid=pid,
                                      pid_started=start_time(pid) or 0, started_at=now(), restarts=restarts)
        cdir.write_record(running)
        log = log or LogWriter(cdir.log_file, bundle.log_max_bytes, bundle.log_max_files)

    while True:
        ooms_before = cgroup.oom_count() if cgroup is not None else 0
        try:
            ready_made, prepared = prepared, None  # for the first start only
            pid, out_r, err_r = spawn(config, cdir, place, forked, host_pidns, ready_made)
        except StartError as e:
            cdir.write_record(dataclasses.replace(base, status=ContainerStatus.EXITED, finished_at=now(),
                                                  exit_code=EXEC_FAILED, restarts=restarts, error=str(e)))
            report(ready_fd, {"error": str(e)})
            ready_fd = -1
            code, ran = EXEC_FAILED, 0.0
        else:
            report(ready_fd, {"pid": pid})
            ready_fd = -1
            assert log is not None  # opened by forked()
            pump_logs(log, {out_r: "stdout", err_r: "stderr"})
            _, status = os.waitpid(pid, 0)
            code = exit_code(status)
            oom = cgroup is not None and cgroup.oom_count() > ooms_before
            finished = now()
            ran = (finished - running.started_at).total_seconds() if running.started_at else 0.0
            try:
                cdir.write_record(dataclasses.replace(running, status=ContainerStatus.EXITED, finished_at=finished,
                                                      exit_code=code, oom_killed=oom))
            except FileNotFoundError:
                break  # removed while we drained: nobody is left to read the record
        if stop_requested() or not bundle.restart.should_restart(code, restarts):
            break
        streak = 0 if ran >= bundle.restart.window else streak + 1
        if stop_requested(bundle.restart.backoff(streak)):
            break
        restarts += 1
    if log is not None:
        log.close()
    if made:
        cgroup.remove()  # type: ignore[union-attr]
    return 0
