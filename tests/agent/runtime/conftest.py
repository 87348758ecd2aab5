"""Fixtures for the runtime tests: a busybox image (built once) and a Runtime that cleans up after itself."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.runtime import ImageConfig, ImageStore, Runtime
from moorage.localcluster.busybox import make_rootfs
from tests.agent.runtime.support import IMAGE_ENV, MARKER

PROBE_SOURCE = Path(__file__).with_name("probe.c")


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rootfs = make_rootfs(tmp_path_factory.mktemp("moorage-busybox") / "rootfs")
    (rootfs / MARKER).write_text("from-image\n")
    return rootfs


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory, busybox_rootfs: Path) -> ImageStore:
    store = ImageStore(tmp_path_factory.mktemp("moorage-images"))
    store.import_rootfs(busybox_rootfs, "busybox", ImageConfig(cmd=("sh",), env=IMAGE_ENV))
    return store


@pytest.fixture
def runtime(tmp_path: Path, images: ImageStore) -> Iterator[Runtime]:
    """A Runtime on a fresh root; every container left at the end is force-removed."""
    rt = Runtime(tmp_path / "moorage-runtime", images)
    try:
        yield rt
    finally:
        rt.release()



@pytest.fixture(scope="session")
def probe_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding ``probe`` (probe.c built static): bind it into a busybox container."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed (make deps installs it): the syscall probe cannot be built")
    out = tmp_path_factory.mktemp("moorage-probe")
    out.chmod(0o755)  # for a container user other than root too
    built = subprocess.run([gcc, "-static", "-O1", "-Wall", "-Werror", "-o", str(out / "probe"), str(PROBE_SOURCE)],
                           capture_output=True, text=True)
    if built.returncode != 0:
        pytest.fail(f"building the syscall probe failed:\n{built.stderr}")
    return out
