"""A minimal image root filesystem made from the host's busybox-static.

Used by `make demo` and the tests as the smallest real image: one static
binary plus a symlink per applet, a passwd/group file and the usual top-level
directories.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

BUSYBOX = Path("/bin/busybox")
TOP_LEVEL_DIRS = ("bin", "dev", "etc", "proc", "sys", "tmp", "root", "var", "run", "home")


def make_rootfs(dest: Path, busybox: Path = BUSYBOX) -> Path:
    """Fill ``dest`` with a busybox root filesystem and return it."""
    if not busybox.exists():
        raise FileNotFoundError(f"{busybox} is missing: install busybox-static (make deps)")
    dest.mkdir(parents=True, exist_ok=True)
    for name in TOP_LEVEL_DIRS:
        (dest / name).mkdir(exist_ok=True)
    (dest / "tmp").chmod(0o1777)
    shutil.copy2(busybox, dest / "bin" / "busybox")
    applets = subprocess.run([str(busybox), "--list"], check=True, capture_output=True, text=True).stdout.split()
    for applet in applets:
        link = dest / "bin" / applet
        if applet != "busybox" and not link.is_symlink():
            link.symlink_to("busybox")
    (dest / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    (dest / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    return dest
