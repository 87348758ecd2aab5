"""The host side of exec, run in a child of the fork server: enter a running container and run a command.

Joins the container's cgroup, then its namespaces through /proc/<PID 1>/ns/* (the mount
namespace last: entering it moves our root and working directory into the container's root),
forks (a PID namespace applies to children only), and the child drops privileges as the
container's own process did — the same capabilities, no_new_privs and seccomp filter, from the
same config.json — and execs. Reports newline-separated JSON on the status fd:
``{"pid": N}`` or ``{"error": "..."}``, then ``{"exit_code": N}``.
"""

from __future__ import annotations

import fcntl
import json
import os
import termios
from pathlib import Path
from typing import Any, NoReturn

from agent.runtime.containers import executor
from agent.runtime.containers import seccomp
from agent.runtime.containers import shim
from agent.runtime.containers import syscalls as sc
from agent.runtime.containers.bundle import ContainerDir
from agent.runtime.containers.cgroups import Cgroup
from agent.runtime.containers.procinfo import ProcessRef

PROC_NS = {"user": "user", "ipc": "ipc", "uts": "uts", "network": "net", "pid": "pid", "mount": "mnt"}  # join order


def _say(status_w: int, message: dict[str, Any]) -> None:
    os.write(status_w, json.dumps(message).encode() + b"\n")


def _enter(config: dict[str, Any], pid: int) -> None:
    kinds = {ns["type"] for ns in config["linux"]["namespaces"]} | {"mount"}
    fds = [(os.open(f"/proc/{pid}/ns/{PROC_NS[k]}", os.O_RDONLY | os.O_CLOEXEC), executor.NAMESPACE_FLAGS[k])
           for k in PROC_NS if k in kinds]
    try:
        for fd, flag in fds:
            sc.setns(fd, flag)
    finally:
        for fd, _ in fds:
            os.close(fd)


def _child(process: dict[str, Any], syscall_filter: seccomp.Filter | None, stdio: list[int], tty: bool,
           sync_w: int) -> NoReturn:
    try:
        for target, fd in enumerate(stdio):
            os.dup2(fd, target)
        if tty:
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        executor.drop_privileges(process, syscall_filter)
        shim.exec_process(process)
    except BaseException as e:
        os.write(sync_w, (str(e) or repr(e)).encode())
    os._exit(shim.EXEC_FAILED)


def run(request: dict[str, Any], fds: list[int]) -> int:
    *stdio, status_w = fds
    cdir = ContainerDir(Path(request["dir"]))
    try:
        record = cdir.read_record()
        config = cdir.read_config()
        if not ProcessRef(record.pid, record.pid_started).alive():
            raise OSError("the container is not running")
        syscall_filter = executor.syscall_filter(config)
        if config["linux"].get("cgroupsPath"):
            Cgroup.locate(config["linux"]["cgroupsPath"]).join()
        _enter(config, record.pid)
        env = dict(e.partition("=")[::2] for e in config["process"].get("env", []))
        env.update(request.get("env") or {})
        process = dict(config["process"], args=request["args"], env=[f"{k}={v}" for k, v in env.items()],
                       cwd=request.get("cwd") or config["process"].get("cwd", "/"))
        sync_r, sync_w = os.pipe()
        # Not dumpable: once the child has the container's uid and capabilities, and before its
        # exec (which resets this) loads the command and the seccomp filter holds, a root process
        # of the container could otherwise ptrace it (runc's CVE-2016-9962).
        sc.prctl(sc.PR_SET_DUMPABLE, 0)
        pid = os.fork()
    except (OSError, ValueError, KeyError) as e:
        _say(status_w, {"error": str(e)})
        return 1
    if pid == 0:
        _child(process, syscall_filter, stdio, bool(request.get("tty")), sync_w)
    os.close(sync_w)
    for fd in stdio:
        os.close(fd)
    with os.fdopen(sync_r, "rb") as sync:
        failure = sync.read()  # EOF at the exec
    if failure:
        os.waitpid(pid, 0)
        _say(status_w, {"error": failure.decode(errors="replace")})
        return 1
    _say(status_w, {"pid": pid})
    _, status = os.waitpid(pid, 0)
    _say(status_w, {"exit_code": shim.exit_code(status)})
    return 0
