"""Docker's seccomp profile in real containers: what it refuses fails with EPERM, what it allows
works, its capability-conditional parts follow cap_add, the 32-bit ABI is filtered too, exec and
the minimal init get the same filter, nothing runs unfiltered, ``unconfined`` turns it off, and
the executor applies whatever config.json says.

The calls busybox cannot make come from ``probe`` (probe.c, built static by the probe_dir
fixture), bound read-only into the container at /probe.
"""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import json
import os
import struct
from pathlib import Path

import pytest

from agent.runtime import ContainerSpec, InvalidSpec, MountSpec, Runtime, StartFailed
from agent.runtime.containers import caps, seccomp, seccomp_profile
from agent.runtime.containers import syscalls as sc
from tests.agent.runtime.support import lines, sh

X86_64 = os.uname().machine == "x86_64"
REFUSED = ("keyctl", "add_key", "clone_newuser", "unshare_newns", "personality_no_randomize", "open_by_handle_at")
ALLOWED = ("clone_plain", "personality_query", "personality_linux32", "ptrace_child")
NEWER = ("unknown_syscall", "clone3_newuser")  # ENOSYS, so that a libc falls back (clone3: to clone)
I386 = ("int80_getpid", "int80_keyctl", "int80_unshare_newuser") if X86_64 else ()


def probed(probe_dir: Path, script: str, **changes: object) -> ContainerSpec:
    spec = sh("probe", script)
    return dataclasses.replace(spec, mounts=(MountSpec("/probe", "bind", str(probe_dir), read_only=True),), **changes)


def answers(out: list[str]) -> dict[str, str]:
    """``probe`` lines and ``Seccomp:`` of /proc/self/status as {call: outcome}."""
    words = [line.replace(":\t", " ").split(" ", 1) for line in out]
    return {w[0]: w[1] for w in words if len(w) == 2}


def run(runtime: Runtime, spec: ContainerSpec, container_id: str = "c1") -> list[str]:
    runtime.run(container_id, spec)
    state = runtime.wait(container_id, 30)
    assert state.exit_code == 0, lines(runtime, container_id)
    return lines(runtime, container_id, "stdout")


def test_default_profile_refuses_with_eperm_and_allows_the_rest(runtime: Runtime, probe_dir: Path) -> None:
    script = f"""grep Seccomp: /proc/self/status
        /probe/probe {' '.join(REFUSED + ALLOWED + NEWER + I386)}
        unshare -U true 2>/dev/null && echo unshare-U ok || echo unshare-U refused
        mount -t tmpfs none /tmp 2>/dev/null && echo mount ok || echo mount refused
        echo hello | sed s/hello/busybox/ | tr a-z A-Z | xargs echo works"""
    out = run(runtime, probed(probe_dir, script))
    got = answers(out)
    assert got["Seccomp"] == "2"
    assert {call: got[call] for call in REFUSED} == dict.fromkeys(REFUSED, "EPERM")
    assert {call: got[call] for call in ALLOWED} == dict.fromkeys(ALLOWED, "ok")
    assert {call: got[call] for call in NEWER} == dict.fromkeys(NEWER, "ENOSYS")
    assert got["unshare-U"] == "refused" and got["mount"] == "refused"
    if X86_64:  # int 0x80 from a 64-bit process: the i386 part of the filter answers
        assert (got["int80_getpid"], got["int80_keyctl"], got["int80_unshare_newuser"]) == ("ok", "EPERM", "EPERM")
    assert out[-1] == "works BUSYBOX"  # pipes, forks, execs: an ordinary shell pipeline


def test_unconfined_turns_the_filter_off(runtime: Runtime, probe_dir: Path) -> None:
    script = """grep Seccomp: /proc/self/status
        /probe/probe keyctl clone_newuser personality_no_randomize
        unshare -U true && echo unshare-U ok"""
    got = answers(run(runtime, probed(probe_dir, script, seccomp="unconfined")))
    assert got == {"Seccomp": "0", "keyctl": "ok", "clone_newuser": "ok", "personality_no_randomize": "ok",
                   "unshare-U": "ok"}


def test_capability_conditional_rules_follow_cap_add(runtime: Runtime, probe_dir: Path) -> None:
    script = "/probe/probe clone_newuser clone3_newuser unshare_newns open_by_handle_at keyctl"
    admin = answers(run(runtime, probed(probe_dir, script + "; mount -t tmpfs none /tmp && echo mount ok",
                                        cap_add=("SYS_ADMIN",)), "admin"))
    assert admin == {"clone_newuser": "ok", "clone3_newuser": "ok", "unshare_newns": "ok", "open_by_handle_at": "EPERM",
                     "keyctl": "EPERM", "mount": "ok"}
    search = answers(run(runtime, probed(probe_dir, script, cap_add=("DAC_READ_SEARCH",)), "search"))
    # the call is let through to the kernel, which then finds the handle's address bad
    assert search == {"clone_newuser": "EPERM", "clone3_newuser": "ENOSYS", "unshare_newns": "EPERM",
                      "open_by_handle_at": "EFAULT", "keyctl": "EPERM"}


def test_a_filter_of_the_containers_own_does_not_lift_ours(runtime: Runtime, probe_dir: Path) -> None:
    got = answers(run(runtime, probed(probe_dir, "/probe/probe own_filter_then_keyctl")))
    assert got == {"own_filter": "ok", "own_filter_then_keyctl": "EPERM"}


def test_no_process_of_the_container_runs_unfiltered(runtime: Runtime) -> None:
    script = """sleep 100 &
        for s in /proc/[0-9]*/status; do grep Seccomp: $s; done > /tmp/seen
        sort -u /tmp/seen; wc -l < /tmp/seen; kill $!"""
    for name, init in (("plain", False), ("init", True)):
        out = run(runtime, dataclasses.replace(sh("all", script), init=init), name)
        assert out[:-1] == ["Seccomp:\t2"], (name, out)
        assert int(out[-1]) >= (3 if init else 2), (name, out)  # [the init,] sh, sleep at least


def test_pid1_and_the_minimal_init_are_filtered_seen_from_the_host(runtime: Runtime) -> None:
    for name, init in (("plain", False), ("init", True)):
        state = runtime.run(name, dataclasses.replace(sh("pid1", "sleep 100"), init=init))
        status = Path(f"/proc/{state.pid}/status").read_text()
        assert "Seccomp:\t2" in status, name
        runtime.stop(name, 0)


def test_without_no_new_privs_the_filter_goes_on_while_still_privileged(runtime: Runtime, probe_dir: Path) -> None:
    """Loading a filter needs no_new_privs or CAP_SYS_ADMIN: without the first, before the capabilities go."""
    script = "grep -E '^(Seccomp|NoNewPrivs|CapEff):' /proc/self/status; /probe/probe keyctl"
    got = answers(run(runtime, probed(probe_dir, script, no_new_privileges=False, user="65534:65534")))
    assert got == {"Seccomp": "2", "NoNewPrivs": "0", "CapEff": "0000000000000000", "keyctl": "EPERM"}


def test_the_runtimes_own_processes_in_the_container_cannot_be_traced(runtime: Runtime) -> None:
    """The minimal init (our code, PID 1) and exec's helper until its exec are not dumpable, as
    runc's init is (CVE-2016-9962): a root process of the container, which may ptrace what runs
    with its uid and capabilities, gets neither their memory nor their /proc files. The command
    itself, once exec'd, is dumpable again (the kernel resets it at exec)."""
    script = """cat /proc/1/environ > /dev/null 2>&1 && echo init-readable || echo init-refused
        cat /proc/self/environ > /dev/null && echo self-readable"""
    assert run(runtime, dataclasses.replace(sh("trace", script), init=True)) == ["init-refused", "self-readable"]


def test_exec_gets_the_same_filter(runtime: Runtime, probe_dir: Path) -> None:
    for container_id, profile, expected in (("default", "default", ("2", "EPERM")), ("open", "unconfined", ("0", "ok"))):
        runtime.run(container_id, probed(probe_dir, "sleep 100", seccomp=profile))
        code, out, err = runtime.exec_run(container_id, ["sh", "-c", "grep Seccomp: /proc/self/status; /probe/probe keyctl"])
        got = answers(out.decode().splitlines())
        assert (code, got["Seccomp"], got["keyctl"]) == (0, *expected), err
        runtime.stop(container_id, 0)


def test_the_executor_applies_the_section_config_json_gives(runtime: Runtime) -> None:
    """Not only Docker's profile: whatever linux.seccomp says (the OCI runtime mode relies on it)."""
    runtime.create("c1", sh("custom", "mkdir /tmp/d 2>/dev/null && echo made || echo refused; grep Seccomp: /proc/self/status"))
    config_file = runtime.bundle_dir("c1") / "config.json"
    config = json.loads(config_file.read_text())
    config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                                  "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}
    config_file.write_text(json.dumps(config))
    runtime.start("c1")
    runtime.wait("c1", 30)
    assert lines(runtime, "c1", "stdout") == ["refused", "Seccomp:\t2"]


def test_a_bad_section_in_config_json_fails_the_start_and_names_the_field(runtime: Runtime) -> None:
    runtime.create("c1", sh("bad", "true"))
    config_file = runtime.bundle_dir("c1") / "config.json"
    config = json.loads(config_file.read_text())
    config["linux"]["seccomp"]["syscalls"][0]["args"] = [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]
    config_file.write_text(json.dumps(config))
    with pytest.raises(StartFailed, match=r"linux\.seccomp\.syscalls\[0\]\.args\[0\]\.index"):
        runtime.start("c1")


def test_an_unknown_profile_name_is_refused_at_create(runtime: Runtime) -> None:
    with pytest.raises(InvalidSpec, match="seccomp profile 'strict'"):
        runtime.create("c1", dataclasses.replace(sh("bad", "true"), seccomp="strict"))


def _in_child(section: dict[str, object], calls: list[tuple[int, tuple[int, ...]]]) -> list[int]:
    """Load ``section``'s filter in a forked child of this (root, every capability) process and make
    ``calls`` (number, args): the errno of each, 0 for success. Any EPERM is the filter's alone."""
    compiled = seccomp.compile_filter(section)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            libc = ctypes.CDLL(None, use_errno=True)
            libc.syscall.restype = ctypes.c_long
            sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
            compiled.load()
            results = []
            for number, args in calls:
                rc = libc.syscall(ctypes.c_long(number), *(ctypes.c_long(a) for a in args))
                results.append(ctypes.get_errno() if rc < 0 else 0)
            os.write(write_end, json.dumps(results).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as f:
        data = f.read()
    os.waitpid(pid, 0)
    return json.loads(data)


@pytest.mark.skipif(not X86_64, reason="syscall numbers of x86_64")
def test_the_filter_itself_refuses_even_a_fully_privileged_process() -> None:
    keyctl, open_by_handle_at, unshare, mount, getpid = 250, 304, 272, 165, 39
    section = seccomp_profile.default_section(caps.resolve())
    got = _in_child(section, [(keyctl, (0, -3, 0)), (open_by_handle_at, (-100, 8, 0)), (unshare, (0x10000000,)),
                              (mount, (0, 0, 0, 0, 0)), (getpid, ()), (1000, ())])
    # EPERM although this process has CAP_SYS_ADMIN and CAP_DAC_READ_SEARCH; ENOSYS past every known call
    assert got == [errno.EPERM] * 4 + [0, errno.ENOSYS]


def test_enosys_only_past_the_largest_known_number_and_not_for_an_allowing_default() -> None:
    # on x86_64 getpid is 39, exit_group 231 (the largest here): 232 and up are "newer"
    allow_getpid = section_of(["getpid", "write", "exit_group"])
    if X86_64:
        assert _in_child(allow_getpid, [(39, ()), (38, ()), (231 - 1, ()), (232, ()), (1000, ())]) == [
            0, errno.EPERM, errno.EPERM, errno.ENOSYS, errno.ENOSYS]
    allowing = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO"}]}
    ret_enosys = struct.pack("=HBBI", 0x06, 0, 0, 0x00050000 | errno.ENOSYS)
    assert ret_enosys in seccomp.compile_filter(allow_getpid).program
    assert ret_enosys not in seccomp.compile_filter(allowing).program
    if X86_64:
        assert _in_child(allowing, [(39, ()), (1000, ())]) == [errno.EPERM, errno.ENOSYS]  # the kernel's own ENOSYS


def section_of(allowed: list[str]) -> dict[str, object]:
    return {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": allowed, "action": "SCMP_ACT_ALLOW"}]}
