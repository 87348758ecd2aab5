"""The per-container supervisor: ``python -m agent.runtime.shim <container dir> <ready fd>``.

Started by Runtime.start in a session of its own, so it outlives the agent. It

1. unshares a PID namespace and forks the container's PID 1, which enters the other
   namespaces, mounts its root (see rootfs) and execs the user command;
2. learns the outcome through a CLOEXEC pipe: closed by a successful execve, or carrying
   the error text;
3. records ``running`` (or the failure) in state.json, then reports one JSON line on the
   ready fd ({"pid": N} or {"error": "..."}) and closes it, which unblocks Runtime.start;
4. writes the container's stdout/stderr to the JSON-lines log until both reach EOF;
5. reaps PID 1 and records the exit code (128+N for death by signal N) and time.
"""

from __future__ import annotations

import dataclasses
import json
import os
import selectors
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

from agent.runtime import rootfs
from agent.runtime import syscalls as sc
from agent.runtime.bundle import Bundle, ContainerDir, Record
from agent.runtime.lifecycle import ContainerStatus
from agent.runtime.logs import LineSplitter, format_record
from agent.runtime.procinfo import start_time

EXEC_FAILED = 127


class StartError(Exception):
    """The container did not reach exec; the message is the reason reported to start()."""


def now() -> datetime:
    return datetime.now(UTC)


def exit_code(wait_status: int) -> int:
    """The shell convention: the exit status, or 128+N after death by signal N."""
    code = os.waitstatus_to_exitcode(wait_status)
    return 128 - code if code < 0 else code


def _container_init(bundle: Bundle, cdir: ContainerDir, stdio: tuple[int, int, int], err_w: int) -> NoReturn:
    """In the forked child: become the container and exec, or write why not to ``err_w``."""
    try:
        for target, fd in enumerate(stdio):
            os.dup2(fd, target)
        rootfs.enter(bundle, cdir)
        os.makedirs(bundle.cwd, exist_ok=True)
        os.chdir(bundle.cwd)
        for sig in (signal.SIGPIPE, signal.SIGXFSZ):  # Python ignores these; the user command should not
            signal.signal(sig, signal.SIG_DFL)
        env = dict(entry.partition("=")[::2] for entry in bundle.env)
        try:
            os.execvpe(bundle.args[0], list(bundle.args), env)
        except OSError as e:
            reason = f"exec: {bundle.args[0]}: {e.strerror}"
    except BaseException as e:  # anything at all: the parent must hear about it, and we must not return
        reason = str(e) or repr(e)
    try:
        os.write(err_w, reason.encode())
    finally:
        os._exit(EXEC_FAILED)


def spawn(bundle: Bundle, cdir: ContainerDir) -> tuple[int, int, int]:
    """Fork the container's PID 1; return (pid, stdout read fd, stderr read fd) once it has exec'd."""
    try:
        sc.unshare(sc.CLONE_NEWPID)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        sync_r, sync_w = os.pipe()
        devnull = os.open(os.devnull, os.O_RDONLY)
        pid = os.fork()
    except OSError as e:
        raise StartError(str(e)) from e
    if pid == 0:
        _container_init(bundle, cdir, (devnull, out_w, err_w), sync_w)
    for fd in (out_w, err_w, sync_w, devnull):
        os.close(fd)
    with os.fdopen(sync_r, "rb") as sync:
        failure = sync.read()
    if failure:
        os.waitpid(pid, 0)
        os.close(out_r)
        os.close(err_r)
        raise StartError(failure.decode(errors="replace"))
    return pid, out_r, err_r


def pump_logs(log_path: Path, streams: dict[int, str]) -> None:
    """Copy each stream into the log as JSON lines until every stream reaches EOF."""
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
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
                    os.write(log, b"".join(format_record(streams[fd], line, stamp) for line in lines))
                if not chunk:
                    sel.unregister(fd)
                    os.close(fd)
    os.close(log)


def report(ready_fd: int, message: dict[str, object]) -> None:
    """Tell Runtime.start how it went; it may be gone (agent killed): that must not stop us."""
    try:
        os.write(ready_fd, json.dumps(message).encode())
    except OSError:
        pass
    finally:
        os.close(ready_fd)


def main(argv: list[str]) -> int:
    os.chdir("/")  # hold no directory of the agent's busy
    cdir = ContainerDir(Path(argv[1]))
    ready_fd = int(argv[2])
    os.set_inheritable(ready_fd, False)
    me = os.getpid()
    base = Record(ContainerStatus.CREATED, shim_pid=me, shim_started=start_time(me) or 0)
    try:
        bundle = cdir.read_bundle()
        pid, out_r, err_r = spawn(bundle, cdir)
    except (StartError, OSError, ValueError) as e:
        cdir.write_record(
            dataclasses.replace(base, status=ContainerStatus.EXITED, finished_at=now(), exit_code=EXEC_FAILED, error=str(e))
        )
        report(ready_fd, {"error": str(e)})
        return 1
    running = dataclasses.replace(
        base, status=ContainerStatus.RUNNING, pid=pid, pid_started=start_time(pid) or 0, started_at=now()
    )
    cdir.write_record(running)
    report(ready_fd, {"pid": pid})
    pump_logs(cdir.log_file, {out_r: "stdout", err_r: "stderr"})
    _, status = os.waitpid(pid, 0)
    try:
        cdir.write_record(
            dataclasses.replace(running, status=ContainerStatus.EXITED, finished_at=now(), exit_code=exit_code(status))
        )
    except FileNotFoundError:
        pass  # removed while we drained: nobody is left to read the record
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
