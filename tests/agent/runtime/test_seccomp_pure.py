"""Docker's profile resolved per container, seccomp sections checked and compiled, device rules
parsed and reduced: no container, no kernel (libseccomp compiles in-process)."""

from __future__ import annotations

import errno
import struct
from typing import Any

import pytest

from agent.runtime.containers import caps, devices, oci, seccomp, seccomp_profile
from agent.runtime.containers.devices import Allowlist, DeviceNode, DeviceRule
from agent.runtime.containers.seccomp import SeccompError
from agent.runtime.containers.seccomp_profile import Host

AMD64 = Host("amd64", "SCMP_ARCH_X86_64", (6, 1))
ARM64 = Host("arm64", "SCMP_ARCH_AARCH64", (6, 1))
DEFAULT_CAPS = caps.resolve()


def allowed(section: dict[str, Any]) -> set[str]:
    """Names allowed with no argument condition."""
    return {n for s in section["syscalls"] if s["action"] == "SCMP_ACT_ALLOW" and not s.get("args") for n in s["names"]}


def rules_for(section: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [s for s in section["syscalls"] if name in s["names"]]


def test_default_caps_get_the_masked_clone_and_no_namespace_calls() -> None:
    section = seccomp_profile.default_section(DEFAULT_CAPS, AMD64)
    assert section["defaultAction"] == "SCMP_ACT_ERRNO" and section["defaultErrnoRet"] == 1
    assert section["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    names = allowed(section)
    assert {"read", "execve", "mknod", "seccomp", "arch_prctl", "modify_ldt", "ptrace"} <= names
    assert not {"mount", "umount2", "unshare", "setns", "keyctl", "add_key", "bpf", "open_by_handle_at",
                "clone", "clone3", "s390_runtime_instr", "riscv_flush_icache"} & names
    assert rules_for(section, "clone") == [{"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                                            "args": [{"index": 0, "value": 0x7E020000, "op": "SCMP_CMP_MASKED_EQ"}]}]
    assert rules_for(section, "clone3") == [{"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]
    assert [r["args"][0]["value"] for r in rules_for(section, "personality")] == [0, 8, 131072, 131080, 0xFFFFFFFF]
    assert all("includes" not in s and "excludes" not in s and "comment" not in s for s in section["syscalls"])


def test_cap_sys_admin_opens_the_namespace_calls_and_drops_the_masked_clone() -> None:
    section = seccomp_profile.default_section((*DEFAULT_CAPS, "CAP_SYS_ADMIN"), AMD64)
    assert {"mount", "umount2", "unshare", "setns", "clone", "clone3", "bpf"} <= allowed(section)
    assert all(not r.get("args") and r["action"] == "SCMP_ACT_ALLOW" for r in rules_for(section, "clone"))
    assert all(r["action"] == "SCMP_ACT_ALLOW" for r in rules_for(section, "clone3"))
    assert "open_by_handle_at" not in allowed(section)
    assert "open_by_handle_at" in allowed(seccomp_profile.default_section((*DEFAULT_CAPS, "CAP_DAC_READ_SEARCH"), AMD64))


def test_arch_and_kernel_conditions() -> None:
    arm = seccomp_profile.default_section(DEFAULT_CAPS, ARM64)
    assert arm["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert {"arm_fadvise64_64", "breakpoint"} <= allowed(arm) and "arch_prctl" not in allowed(arm)
    old = seccomp_profile.default_section(DEFAULT_CAPS, Host("amd64", "SCMP_ARCH_X86_64", (4, 7)))
    assert "ptrace" not in allowed(old)  # before 4.8, ptrace could bypass seccomp
    assert "ptrace" in allowed(seccomp_profile.default_section(DEFAULT_CAPS, Host("amd64", "SCMP_ARCH_X86_64", (4, 8))))


def test_kernel_versions_as_moby_reads_them() -> None:
    assert seccomp_profile.kernel_version("6.18.44-fc-v1045") == (6, 18)
    assert seccomp_profile.kernel_version("4.8") == (4, 8)
    assert seccomp_profile.kernel_version("5") == (5, 0)
    with pytest.raises(ValueError, match="cannot read a kernel version"):
        seccomp_profile.kernel_version("x.y")


def test_a_profile_must_not_mix_forms() -> None:
    with pytest.raises(ValueError, match="both 'architectures' and 'archMap'"):
        seccomp_profile.resolve({"architectures": ["SCMP_ARCH_X86"], "archMap": [{}]}, [], AMD64)
    with pytest.raises(ValueError, match="both 'name' and 'names'"):
        seccomp_profile.resolve({"syscalls": [{"name": "a", "names": ["b"], "action": "SCMP_ACT_ALLOW"}]}, [], AMD64)
    one = seccomp_profile.resolve({"syscalls": [{"name": "read", "action": "SCMP_ACT_ALLOW"}]}, [], AMD64)
    assert one["syscalls"] == [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]


def test_config_json_carries_the_section_unless_unconfined() -> None:
    base = {"args": ("sh",), "env": (), "cwd": "/", "hostname": "h", "capabilities": DEFAULT_CAPS}
    config = oci.build(oci.ConfigInput(**base))  # type: ignore[arg-type]
    assert config["linux"]["seccomp"] == seccomp_profile.default_section(DEFAULT_CAPS)
    assert "seccomp" not in oci.build(oci.ConfigInput(**base, seccomp="unconfined"))["linux"]  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seccomp profile 'none'"):
        oci.build(oci.ConfigInput(**base, seccomp="none"))  # type: ignore[arg-type]


def section(**changes: Any) -> dict[str, Any]:
    return {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}], **changes}


def test_a_filter_longer_than_the_kernel_loads_is_refused() -> None:
    two_args = [{"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [
        {"index": 0, "value": v, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": v, "op": "SCMP_CMP_EQ"}]} for v in range(2200)]
    with pytest.raises(SeccompError, match=f"instructions; the kernel loads at most {seccomp.MAX_INSNS}"):
        seccomp.compile_filter(section(syscalls=two_args))


@pytest.mark.parametrize(("bad", "message"), [
    (section(defaultAction="SCMP_ACT_NOPE"), r"linux\.seccomp\.defaultAction: unknown action 'SCMP_ACT_NOPE'"),
    (section(defaultAction="SCMP_ACT_NOTIFY"), "SCMP_ACT_NOTIFY needs a seccomp agent"),
    (section(defaultErrnoRet=70000), "errnoRet must be an integer in"),
    (section(architectures=["SCMP_ARCH_VAX"]), "unknown architecture 'SCMP_ARCH_VAX'"),
    (section(flags=["SECCOMP_FILTER_FLAG_NEW_LISTENER"]), "unsupported flag"),
    (section(syscalls=[{"names": "read", "action": "SCMP_ACT_ALLOW"}]), r"syscalls\[0\]\.names must be a list"),
    (section(syscalls=["read"]), r"syscalls\[0\] must be an object"),
    (section(syscalls=[{"names": ["read"] * 4000, "action": "SCMP_ACT_ALLOW"}] * 2), "at most 4096 names in all"),
    (section(syscalls=[{"names": [""], "action": "SCMP_ACT_ALLOW"}]), "is not a syscall name"),
    (section(syscalls=[{"names": ["read"], "action": "SCMP_ACT_ALLOW",
                        "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ALMOST"}]}]), r"args\[0\]\.op: unknown operator"),
    (section(syscalls=[{"names": ["read"], "action": "SCMP_ACT_ALLOW",
                        "args": [{"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}]}]), r"value and valueTwo must be"),
    (section(syscalls=[{"names": ["read"], "action": "SCMP_ACT_ALLOW",
                        "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}] * 7}]), "at most 6 argument conditions"),
    (section(syscalls=[{"names": ["read"], "action": "SCMP_ACT_ALLOW"}] * (seccomp.MAX_RULES + 1)),
     f"a list of at most {seccomp.MAX_RULES} entries"),
])
def test_bad_sections_are_refused_naming_the_field(bad: dict[str, Any], message: str) -> None:
    with pytest.raises(SeccompError, match=message):
        seccomp.compile_filter(bad)


def test_compiling_follows_runcs_rules() -> None:
    """Same-argument conditions become separate rules, names this libseccomp does not know and rules
    with the default action are skipped: all compile."""
    same_arg = [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}, {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]
    compiled = seccomp.compile_filter(section(syscalls=[
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": same_arg},
        {"names": ["no_such_call_at_all", "read"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["write"], "action": "SCMP_ACT_ERRNO"},  # = the default: nothing to add
    ], flags=["SECCOMP_FILTER_FLAG_LOG"]))
    assert len(compiled.program) % 8 == 0 and compiled.program
    assert compiled.flags == 2


def test_filters_are_compiled_once_per_distinct_section() -> None:
    first = seccomp.filter_for(section(syscalls=[{"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}]))
    again = seccomp.filter_for(section(syscalls=[{"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}]))
    other = seccomp.filter_for(section(syscalls=[{"names": ["getppid"], "action": "SCMP_ACT_ALLOW"}]))
    assert again is first and other is not first


# --- device rules -----------------------------------------------------------------------------


def test_the_default_device_rules_in_their_two_forms() -> None:
    assert devices.DEFAULT_RULES[0].to_oci() == {"allow": False, "type": "a", "access": "rwm"}
    assert devices.DEFAULT_RULES[-1].to_oci() == {"allow": True, "type": "c", "major": 136, "access": "rwm"}
    assert devices.v1_lines(devices.DEFAULT_RULES[:2]) == [("devices.deny", "a *:* rwm"), ("devices.allow", "c 1:3 rwm")]
    assert devices.from_oci([r.to_oci() for r in devices.DEFAULT_RULES]) == devices.DEFAULT_RULES
    listing = Allowlist.of(devices.DEFAULT_RULES).listing()
    assert listing == {"c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm", "c 5:0 rwm", "c 5:2 rwm",
                       "c 136:* rwm"}
    assert Allowlist.parse("\n".join(sorted(listing)) + "\n").listing() == listing
    assert Allowlist.parse("a *:* rwm\n") == Allowlist(True, ())


@pytest.mark.parametrize(("rule", "message"), [
    ({"allow": True, "type": "p"}, r"devices\[0\]\.type must be a, c or b"),
    ({"allow": "yes"}, r"devices\[0\]\.allow must be true or false"),
    ({"allow": True, "type": "c", "major": 4096}, r"major must be an integer in \[0, 4095\]"),
    ({"allow": True, "type": "c", "minor": True}, r"minor must be an integer"),
    ({"allow": True, "type": "c", "access": "rwx"}, r"access must be made of r, w and m"),
])
def test_bad_device_rules_are_refused_naming_the_entry(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        devices.from_oci([rule])


def test_device_rule_list_is_bounded() -> None:
    with pytest.raises(ValueError, match=f"at most {devices.MAX_RULES} rules"):
        devices.from_oci([{"allow": True}] * (devices.MAX_RULES + 1))


def test_the_emulator_follows_the_kernels_v1_semantics() -> None:
    deny_all, null = DeviceRule(False), DeviceRule(True, "c", 1, 3, "rwm")
    state = Allowlist.of([deny_all, null, DeviceRule(False, "c", 1, 3, "w"), DeviceRule(True, "c", None, 5, "r")])
    assert state.exceptions == (DeviceRule(True, "c", 1, 3, "rm"), DeviceRule(True, "c", None, 5, "r"))
    assert state.allows("c", 1, 3, "r") and not state.allows("c", 1, 3, "w") and not state.allows("c", 1, 3, "rw")
    assert state.allows("c", 9, 5, "r") and not state.allows("b", 9, 5, "r") and not state.allows("c", 1, 4, "r")
    deny = Allowlist.of([DeviceRule(True), DeviceRule(False, "c", 1, 7, "w")])
    assert deny.allows("c", 1, 7, "r") and not deny.allows("c", 1, 7, "rw") and deny.allows("b", 1, 7, "w")
    assert Allowlist.of([null, deny_all]) == Allowlist(False, ())  # "a" resets
    assert Allowlist.of([DeviceRule(False, "c", 1, 3, "r")], start=Allowlist(False, (null,))).exceptions == (
        DeviceRule(True, "c", 1, 3, "wm"),)


def test_a_device_node_adds_mknod_to_its_rule() -> None:
    node = DeviceNode("/dev/x", "c", 10, 229, "r")
    assert node.rule() == DeviceRule(True, "c", 10, 229, "rm")
    assert node.to_oci() == {"path": "/dev/x", "type": "c", "major": 10, "minor": 229, "fileMode": 0o666, "uid": 0,
                             "gid": 0}
    null = DeviceNode.of_host("/dev/null", "/dev/nothing", "wr")
    assert (null.kind, null.major, null.minor, null.access, null.path) == ("c", 1, 3, "rw", "/dev/nothing")
    with pytest.raises(ValueError, match="is not a character or block device"):
        DeviceNode.of_host("/", "/dev/root")
    with pytest.raises(ValueError, match="must be under /dev/, not '/x'"):
        DeviceNode.of_host("/dev/null", "/dev/../x")


def test_the_v2_program_has_one_block_per_exception() -> None:
    header, block_base, tail = 6, 3, 2  # loads; kind test + verdict + exit; default + exit
    program = devices.bpf_program(Allowlist.of(devices.DEFAULT_RULES))
    blocks = [block_base + 2 for _ in range(7)] + [block_base + 1]  # major+minor, but 136:* has no minor
    assert len(program) == 8 * (header + sum(blocks) + tail)
    assert program[-16:] == bytes([0xB4, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0])  # r0 = 0 (deny); exit


def run_classic_bpf(program: bytes, nr: int, arch: int) -> int:
    """A tiny interpreter of the instructions enosys_stub uses, on struct seccomp_data {nr, arch}."""
    insns = [struct.unpack("=HBBI", program[i:i + 8]) for i in range(0, len(program), 8)]
    data = {0: nr, 4: arch}
    acc = pc = 0
    while True:
        code, jt, jf, k = insns[pc]
        if code == 0x20:
            acc = data[k]
        elif code in (0x15, 0x25, 0x35):
            taken = {0x15: acc == k, 0x25: acc > k, 0x35: acc >= k}[code]
            pc += jt if taken else jf
        elif code == 0x06:
            return k
        else:
            raise AssertionError(f"instruction {code:#x} not expected")
        pc += 1


X86_64_ARCH, I386_ARCH, X32_ARCH, AARCH64_ARCH = 0xC000003E, 0x40000003, 0x4000003E, 0xC00000B7


@pytest.mark.parametrize(("nr", "arch", "answer"), [
    (99, X86_64_ARCH, "filter"), (100, X86_64_ARCH, "filter"), (101, X86_64_ARCH, "enosys"),
    (0x40000000 + 150, X86_64_ARCH, "filter"), (0x40000000 + 201, X86_64_ARCH, "enosys"),  # x32 numbers
    (50, I386_ARCH, "filter"), (51, I386_ARCH, "enosys"),
    (5000, AARCH64_ARCH, "filter"),  # not in the stub: libseccomp's program decides (a bad arch)
])
def test_the_enosys_stub_per_architecture(nr: int, arch: int, answer: str) -> None:
    allow = struct.pack("=HBBI", 0x06, 0, 0, 0x7FFF0000)  # stands for libseccomp's program
    program = seccomp.enosys_stub({X86_64_ARCH: 100, I386_ARCH: 50, X32_ARCH: 0x40000000 + 200}) + allow
    expected = {"filter": 0x7FFF0000, "enosys": 0x00050000 | errno.ENOSYS}[answer]
    assert run_classic_bpf(program, nr, arch) == expected
    without_x32 = seccomp.enosys_stub({X86_64_ARCH: 100}) + allow
    assert run_classic_bpf(without_x32, 0x40000000 + 1, X86_64_ARCH) == 0x7FFF0000  # an x32 call: not the stub's
    assert run_classic_bpf(without_x32, 101, X86_64_ARCH) == 0x00050000 | errno.ENOSYS
    assert seccomp.enosys_stub({X86_64_ARCH: 0}) == b""  # nothing known, nothing to answer
