"""Image store speed and disk use, beside umoci and skopeo measured in the same run.

1. A large layer (default ~200 MB in ~2,000 files): loaded from an OCI image layout into a
   fresh store — every blob read, checked against its digest, and the layer unpacked once —
   beside ``umoci unpack`` of the same layout (read + check + unpack into a bundle) and
   ``skopeo copy oci: oci:`` (read + check + write, no unpack). Also the same image as a
   gzip layer (skopeo's compression), where we gunzip + check the diff_id + unpack.
2. Disk used by 20 containers of that image (created and run once through the runtime):
   ``du`` of the store + the containers, beside 20 times ``du`` of one unpacked rootfs (what
   a copy per container costs).

Each timed step runs ``--rounds`` times, alternating with its anchors, into fresh
directories; the rows give the medians (this machine is shared: one run says little).

Run: ``.venv/bin/python -m bench images [--mb 200] [--containers 20] [--rounds 5]`` (as root).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
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


def medians(rounds: int, steps: dict[str, Callable[[Path], object]], scratch: Path) -> dict[str, float]:
    """Each step ``rounds`` times, the steps alternating, each into a fresh directory: the median times."""
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            target = scratch / name
            times[name].append(timed(partial(step, target)))
            shutil.rmtree(target, ignore_errors=True)
    return {name: statistics.median(values) for name, values in times.items()}


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
    parser.add_argument("--rounds", type=int, default=5, help="runs of each timed step (the median is shown)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="moorage-bench-images-", dir="/var/tmp") as tmp:
        run(Path(tmp), args.mb, args.containers, args.rounds)


def run(tmp: Path, megabytes: int, containers: int, rounds: int) -> None:
    tree = tmp / "tree"
    make_tree(tree, megabytes)
    source = ImageStore(tmp / "source")
    image = source.import_rootfs(tree, "big:1", ImageConfig(cmd=("sh",)))
    layout = tmp / "layout"
    archive.save_oci(source, ["big:1"], layout)
    gz_layout = tmp / "layout-gz"
    subprocess.run([*SKOPEO, "copy", "-q", "--dest-compress", f"oci:{layout}:big:1", f"oci:{gz_layout}:big:1"],
                   check=True)
    layer_mb = image.size / 1e6
    print(f"layer: {layer_mb:.0f} MB uncompressed tar, {sum(1 for _ in tree.rglob('*'))} entries;"
          f" medians of {rounds} rounds")
    print()
    print("| step | moorage | anchor | anchor time | ratio |")
    print("|---|---:|---|---:|---:|")

    def row(step: str, ours: float, anchor: str, theirs: float) -> None:
        print(f"| {step} | {ours:.2f} s | {anchor} | {theirs:.2f} s | {ours / theirs:.2f}x |", flush=True)

    for label, src in (("tar", layout), ("gzip", gz_layout)):
        times = medians(rounds, {
            "ours": lambda target, src=src: archive.load(ImageStore(target), src),
            "umoci": lambda target, src=src: subprocess.run(["umoci", "unpack", "--image", f"{src}:big:1", str(target)],
                                                            check=True, capture_output=True),
            "skopeo": lambda target, src=src: subprocess.run([*SKOPEO, "copy", "-q", f"oci:{src}:big:1",
                                                              f"oci:{target}:big:1"], check=True),
        }, tmp / "rounds")
        row(f"load OCI layout ({label} layer) + unpack", times["ours"], "umoci unpack", times["umoci"])
        row(f"load OCI layout ({label} layer) + unpack", times["ours"], "skopeo copy oci→oci (no unpack)",
            times["skopeo"])
    times = medians(rounds, {
        "ours": lambda target: ImageStore(target).import_rootfs(tree, "big:1", ImageConfig(cmd=("sh",))),
        "copy": lambda target: subprocess.run(["cp", "-a", str(tree), str(target)], check=True),
    }, tmp / "rounds")
    row("import directory (tar + digest + unpack)", times["ours"], "cp -a of the tree", times["copy"])
    subprocess.run(["cp", "-a", str(tree), str(tmp / "copy")], check=True)
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
