"""Pins must reach mount namespaces copied before them: the pin directory is a shared mount.

The fork server's standby PID 1 copies its mount namespace in advance and joins the
container's pin by path later; on a private directory it finds only the empty file under
the pin. Each scenario runs in a child process with a private mount namespace of its own,
so nothing it mounts reaches this machine.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SCENARIO = textwrap.dedent(
    """
    import errno, os, sys
    from pathlib import Path
    from agent.network import links
    from agent.runtime.containers import syscalls as sc

    sc.unshare(sc.CLONE_NEWNS)
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)  # private, as / is on this machine
    directory, share_first = Path(sys.argv[1]), sys.argv[2] == "share-first"
    if share_first:
        links.share_pin_dir(directory)
        print("shared" if any(f.startswith("shared:") for f in links._mountinfo_fields(directory)) else "private")
    copied, go = os.pipe(), os.pipe()
    child = os.fork()
    if child == 0:  # the standby: its mount namespace is a copy made before the pin exists
        sc.unshare(sc.CLONE_NEWNS)
        os.write(copied[1], b"1")
        os.read(go[0], 1)
        fd = os.open(directory / "moorc-test", os.O_RDONLY)
        try:
            sc.setns(fd, sc.CLONE_NEWNET)
        except OSError as e:
            os._exit(e.errno)
        os._exit(0)
    os.read(copied[0], 1)
    pin = directory / "moorc-test"
    links.create_netns(pin, "moorvpintest", None)
    try:
        os.write(go[1], b"1")
        print("joined" if os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) == 0 else "not a namespace")
        # A second share is a no-op: one mount at the directory, not a stack of them.
        links.share_pin_dir(directory)
        mounts = [line for line in Path("/proc/self/mountinfo").read_text().splitlines()
                  if line.split()[4] == str(directory)]
        print(len(mounts))
    finally:
        links.remove_netns(pin)
    """
)


def scenario(directory: Path, mode: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", SCENARIO, str(directory), mode], capture_output=True, text=True,
                          timeout=60, cwd=Path(__file__).parents[3])
    assert done.returncode == 0, done.stderr
    return done.stdout.split("\n")[:-1]


def test_a_shared_pin_directory_lets_an_earlier_copy_join_the_pin(tmp_path: Path) -> None:
    assert scenario(tmp_path, "share-first") == ["shared", "joined", "1"]
    assert not (tmp_path / "moorc-test").exists()


def test_sharing_after_the_copy_is_too_late(tmp_path: Path) -> None:
    """Why NodeNetwork shares the directory when it is made, before the fork server starts."""
    assert scenario(tmp_path, "share-at-create") == ["not a namespace", "1"]
