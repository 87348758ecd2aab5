"""Image store speed and disk use, beside umoci and skopeo measured in the same run.

1. A large layer (default ~200 MB in ~2,000 files): loaded from an OCI image layout into a
   fresh store — every blob read, checked against its digest, and the layer unpacked once —
   beside ``umoci unpack`` of the same layout (read + check + unpack into a bundle) and
   ``skopeo copy oci: oci:`` (read + check + write, no unpack). Also the same image as a
   gzip layer (skopeo's compression), where we gunzip + check the diff_id + unpack.
2. Disk used by 20 containers of that image (created and run once through the runtime):
   ``du`` of the store + the containers, beside 20 times ``du`` of one unpacked rootfs (what
   a copy per container costs).

Run: ``.venv/bin/python -m bench images [--mb 200] [--containers 20]`` (as root).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from agent.runtime import ContainerSpec, ImageConfig, ImageStore, Runtime
from agent.runtime.images import archive
from moorage.localcluster.busybox import make_rootfs

SKOPEO = ["skopeo", "--insecure-policy"]


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def du(*paths: Path) -> int:
    """Bytes of disk blocks under ``paths``, hard links counted once (one ``du`` run)."""
    out = subprocess.run(["du", "-s", "-B1", "-c", *map(str, paths)], check=True, capture_output=True, text=True)
    return int(out.stdout.strip().splitlines()[-1].split()[0])


def make_tree(root: Path, megabytes: int) -> None:
    """busybox plus ``megabytes`` of files of mixed sizes (1 kB to 400 kB), half compressible text."""
    make_rootfs(root)
    rng = random.Random(7)
    left, n = megabytes << 20, 0
    while left > 0:
        size = min(left, rng.choice((1 << 10, 16 << 10, 64 << 10, 200 << 10, 400 << 10)))
        folder = root / "data" / f"d{n % 50:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        data = os.urandom(size) if n % 2 else (b"moorage bench line %d\n" % n) * (size // 22 + 1)
        (folder / f"f{n:05d}").write_bytes(data[:size])
        left -= size
        n += 1


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench images", description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=200, help="size of the large layer's files")
    parser.add_argument("--containers", type=int, default=20)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="moorage-bench-images-", dir="/var/tmp") as tmp:
        run(Path(tmp), args.mb, args.containers)


def run(tmp: Path, megabytes: int, containers: int) -> None:
    tree = tmp / "tree"
    make_tree(tree, megabytes)
    source = ImageStore(tmp / "source")
    import_s = timed(lambda: source.import_rootfs(tree, "big:1", ImageConfig(cmd=("sh",))))
    image = source.get("big:1")
    layout = tmp / "layout"
    archive.save_oci(source, ["big:1"], layout)
    gz_layout = tmp / "layout-gz"
    subprocess.run([*SKOPEO, "copy", "-q", "--dest-compress", f"oci:{layout}:big:1", f"oci:{gz_layout}:big:1"],
                   check=True)
    layer_mb = image.size / 1e6
    print(f"layer: {layer_mb:.0f} MB uncompressed tar, {sum(1 for _ in tree.rglob('*'))} entries")
    print()
    print("| step | moorage | anchor | anchor time | ratio |")
    print("|---|---:|---|---:|---:|")

    def row(step: str, ours: float, anchor: str, theirs: float) -> None:
        print(f"| {step} | {ours:.2f} s | {anchor} | {theirs:.2f} s | {ours / theirs:.2f}x |", flush=True)

    for label, src in (("tar", layout), ("gzip", gz_layout)):
        ours = timed(partial(archive.load, ImageStore(tmp / f"load-{label}"), src))
        umoci = timed(partial(subprocess.run, ["umoci", "unpack", "--image", f"{src}:big:1", str(tmp / f"umoci-{label}")],
                              check=True, capture_output=True))
        skopeo = timed(partial(subprocess.run, [*SKOPEO, "copy", "-q", f"oci:{src}:big:1",
                                                f"oci:{tmp / f'skopeo-{label}'}:big:1"], check=True))
        row(f"load OCI layout ({label} layer) + unpack", ours, "umoci unpack", umoci)
        row(f"load OCI layout ({label} layer) + unpack", ours, "skopeo copy oci→oci (no unpack)", skopeo)
        shutil.rmtree(tmp / f"umoci-{label}")
    copy = timed(partial(subprocess.run, ["cp", "-a", str(tree), str(tmp / "copy")], check=True))
    row("import directory (tar + digest + unpack)", import_s, "cp -a of the tree", copy)
    rootfs_bytes = du(tmp / "copy")
    shutil.rmtree(tmp / "copy")

    state = tmp / "moorage-state"
    store = ImageStore(state / "images")
    archive.load(store, layout)
    runtime = Runtime(state, store)
    try:
        for i in range(containers):
            cid = f"moorage-bench-{i}"
            runtime.run(cid, ContainerSpec(name=cid, image="big:1", args=("sh", "-c", "echo hi > /tmp/x")))
            runtime.wait(cid, timeout=60)
        ours_bytes = du(state / "images", state / "containers")
    finally:
        runtime.release()
    print()
    print("| what | moorage | anchor | anchor bytes | ratio |")
    print("|---|---:|---|---:|---:|")
    print(f"| disk of {containers} containers of one image (store + containers) | {ours_bytes / 1e6:.0f} MB |"
          f" {containers} × du of one rootfs copy | {containers * rootfs_bytes / 1e6:.0f} MB |"
          f" {ours_bytes / (containers * rootfs_bytes):.3f} |")
    print(f"| of which the store (layer blob + unpacked layer, once) | {du(state / 'images') / 1e6:.0f} MB |"
          f" 1 rootfs copy | {rootfs_bytes / 1e6:.0f} MB | {du(state / 'images') / rootfs_bytes:.2f} |")
