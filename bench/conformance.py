"""The OCI runtime validation suite (opencontainers/runtime-tools) against moor-runtime, runc and crun.

`make conformance` builds the suite from the tarball in the steering repo's
shared/third_party/ (or from CONFORMANCE_SRC, a tarball or an unpacked tree) into .conformance/
(ignored by git) with Debian's Go, then runs every validation program once against each runtime,
one runtime after the other, in the same run:

    RUNTIME=/path/to/runtime validation/NAME/NAME.t      (cwd: the suite's tree, 60 s timeout)

Each program is a TAP producer. Perl's `prove` chokes on some of their YAML diagnostics, so the
lines that begin with `ok ` and `not ok ` are counted per program; a program that prints neither
(it failed before its first test, or timed out) is counted as "no output". For moor-runtime, the
reason of every `not ok` (the test's line and the first lines of its diagnostic) is printed too.

crun cannot run on this machine's hybrid cgroup layout with the v2 mount at
/sys/fs/cgroup/unified beside the v1 controllers, so crun's programs run in a private mount
namespace with that mount detached (as bench/runtime.py does for crun); runc and moor-runtime
run as they are.

    python -m bench conformance                   # moor-runtime, runc, crun
    python -m bench.conformance runc crun         # only these (names or paths)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / ".conformance"
DEFAULT_SRC = REPO.parent / "shared" / "third_party" / "oci-runtime-tools-932a8c1.tar.gz"
TIMEOUT_S = 60
RUNTIMES = ("moor-runtime", "runc", "crun")
UNIFIED = "/sys/fs/cgroup/unified"


@dataclass
class Program:
    name: str
    ok: int = 0
    not_ok: int = 0
    failures: list[str] = field(default_factory=list)  # each `not ok` line with its diagnostic's first lines
    timed_out: bool = False

    @property
    def silent(self) -> bool:
        return self.ok + self.not_ok == 0


def suite_tree(source: Path) -> Path:
    """The suite's source tree with its programs built; unpacked and built once per source."""
    if source.is_dir():
        tree = source
    else:
        tree = WORK / "oci-runtime-tools"
        stamp = WORK / "source"
        if not (tree.is_dir() and stamp.exists() and stamp.read_text() == str(source)):
            shutil.rmtree(WORK, ignore_errors=True)
            WORK.mkdir(parents=True)
            with tarfile.open(source) as archive:
                archive.extractall(WORK, filter="data")
            stamp.write_text(str(source))
    if not (tree / "runtimetest").exists() or not list(tree.glob("validation/*/*.t")):
        subprocess.run(
            ["make", "runtimetest", "validation-executables"], cwd=tree, check=True,
            env={**os.environ, "GOFLAGS": "-mod=vendor"}, stdout=subprocess.DEVNULL,
        )  # fmt: skip
    return tree


def resolve(runtime: str) -> str | None:
    """A runtime named on the command line: a path, a name on PATH, or moor-runtime beside this Python."""
    beside = Path(sys.executable).parent / runtime
    if beside.exists():
        return str(beside)
    return shutil.which(runtime) or (runtime if Path(runtime).exists() else None)


def wrapped(runtime: str) -> str:
    """The RUNTIME the programs call: crun behind a wrapper that detaches the v2 mount in its own mount namespace."""
    if Path(runtime).name != "crun" or not os.path.ismount(UNIFIED):
        return runtime
    wrapper = WORK / "crun-private-mounts"
    WORK.mkdir(parents=True, exist_ok=True)
    wrapper.write_text(
        "#!/bin/sh\n"
        f'exec unshare --mount --propagation private sh -c \'umount -l {UNIFIED} && exec "$0" "$@"\' {runtime} "$@"\n'
    )
    wrapper.chmod(0o755)
    return str(wrapper)


def run_program(tree: Path, program: Path, runtime: str) -> Program:
    result = Program(program.stem)
    try:
        done = subprocess.run(
            [str(program)], cwd=tree, env={**os.environ, "RUNTIME": runtime}, capture_output=True,
            text=True, errors="replace", timeout=TIMEOUT_S,
        )  # fmt: skip
        out = done.stdout
    except subprocess.TimeoutExpired as e:
        result.timed_out = True
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("ok "):
            result.ok += 1
        elif line.startswith("not ok "):
            result.not_ok += 1
            diagnostic = [d.strip() for d in lines[i + 1 : i + 8] if d.startswith("  ") and d.strip() not in ("---", "...")]
            result.failures.append(" | ".join([line, *diagnostic[:4]])[:400])
    return result


def run_suite(tree: Path, runtime: str) -> list[Program]:
    programs = sorted(tree.glob("validation/*/*.t"))
    return [run_program(tree, program, wrapped(runtime)) for program in programs]


def table(results: dict[str, list[Program]]) -> str:
    names = list(results)
    rows = ["| program | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    by_name = {n: {p.name: p for p in progs} for n, progs in results.items()}
    programs = sorted({p.name for progs in results.values() for p in progs})

    def cell(p: Program | None) -> str:
        if p is None:
            return "-"
        if p.silent:
            return "no output" + (" (timeout)" if p.timed_out else "")
        return f"{p.ok} ok / {p.not_ok} not ok"

    for program in programs:
        rows.append(f"| {program} | " + " | ".join(cell(by_name[n].get(program)) for n in names) + " |")
    totals = []
    for progs in results.values():
        totals.append(
            f"**{sum(p.ok for p in progs):,} ok / {sum(p.not_ok for p in progs):,} not ok / "
            f"{sum(p.silent for p in progs)} no output**"
        )
    rows.append("| **total** | " + " | ".join(totals) + " |")
    return "\n".join(rows)


def main(argv: list[str]) -> None:
    wanted = argv or list(RUNTIMES)
    source = Path(os.environ.get("CONFORMANCE_SRC", DEFAULT_SRC))
    if not source.exists():
        sys.exit(f"conformance: the suite's source {source} does not exist (set CONFORMANCE_SRC)")
    if shutil.which("go") is None and not source.is_dir():
        sys.exit("conformance: Go is missing (make conformance installs golang-go)")
    tree = suite_tree(source)
    results: dict[str, list[Program]] = {}
    for name in wanted:
        runtime = resolve(name)
        if runtime is None:
            print(f"{name}: not found, skipped", flush=True)
            continue
        print(f"running the suite against {runtime} ...", flush=True)
        results[Path(runtime).name] = run_suite(tree, runtime)
    print(table(results))
    for name, progs in results.items():
        if name == "moor-runtime":
            for p in progs:
                for failure in p.failures:
                    print(f"{name} {p.name}: {failure}")
                if p.silent:
                    print(f"{name} {p.name}: no output{' (timed out)' if p.timed_out else ''}")


if __name__ == "__main__":
    main(sys.argv[1:])
