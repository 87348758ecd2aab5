"""`moor image ...` and `moor container commit` through the real CLI, against a real store and registry."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.runtime import ContainerSpec, ImageStore, Runtime
from tests.agent.runtime.registry_server import Registry, running_registry
from tests.agent.runtime.support import sh

MOOR = str(Path(sys.executable).parent / "moor")


def moor(*args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([MOOR, *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == code, f"moor {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture
def state(tmp_path: Path, busybox_rootfs: Path) -> Iterator[Path]:
    state = tmp_path / "moorage-state"
    moor("image", "import", str(busybox_rootfs), "busybox:1", "--state-dir", str(state))
    yield state
    runtime = Runtime(state, ImageStore(state / "images"))
    runtime.release()


def test_store_commands(tmp_path: Path, state: Path) -> None:
    sd = ("--state-dir", str(state))
    moor("image", "tag", "busybox:1", "other:2", *sd)
    listing = moor("image", "ls", *sd).stdout
    assert "busybox:1" in listing and "other:2" in listing
    info = json.loads(moor("image", "inspect", "other:2", *sd).stdout)
    assert info["references"] == ["busybox:1", "other:2"] and len(info["layers"]) == 1
    assert info["layers"][0]["diff_id"] == info["layers"][0]["digest"] and info["size"] > 0
    assert "image not found" in moor("image", "inspect", "nope", *sd, code=3).stderr

    runtime = Runtime(state, ImageStore(state / "images"))
    runtime.create("user", ContainerSpec(name="user", image="other:2", args=("true",)))
    moor("image", "rm", "busybox:1", *sd)  # another tag remains
    refused = moor("image", "rm", "other:2", *sd, code=1)
    assert "in use" in refused.stderr
    assert "untagged" not in moor("image", "prune", "--all", *sd).stdout  # the container's image stays
    assert len(list((state / "images" / "layers").iterdir())) == 1
    runtime.remove("user")
    pruned = moor("image", "prune", "--all", *sd).stdout
    assert "untagged other:2" in pruned and "deleted 3 blobs and 1 layers" in pruned
    assert list((state / "images" / "layers").iterdir()) == []


def test_save_and_load(tmp_path: Path, state: Path) -> None:
    sd = ("--state-dir", str(state))
    moor("image", "save", "busybox:1", "-o", str(tmp_path / "layout"), *sd)
    moor("image", "save", "busybox:1", "-o", str(tmp_path / "b.tar"), "--format", "docker", *sd)
    other = ("--state-dir", str(tmp_path / "moorage-other"))
    out = moor("image", "load", "-i", str(tmp_path / "b.tar"), *other).stdout
    assert out.startswith("busybox:1 sha256:")
    assert moor("image", "load", "-i", str(tmp_path / "layout"), "-t", "copy:1", *other).stdout.split()[1] == out.split()[1]
    bad = moor("image", "save", "busybox:1", "-o", str(tmp_path / "x"), "--format", "zip", *sd, code=2)
    assert "want oci or docker" in bad.stderr


def test_pull_and_push_show_progress(tmp_path: Path, state: Path) -> None:
    with running_registry(tmp_path / "moorage-registry") as registry:
        sd = ("--state-dir", str(state))
        pushed = moor("image", "push", "busybox:1", f"{registry.address}/bb:1", *sd)
        assert "push" in pushed.stderr
        other = ("--state-dir", str(tmp_path / "moorage-other"))
        pulled = moor("image", "pull", "bb:1", "--registry", registry.address, *other)
        assert "pull" in pulled.stderr and pulled.stdout.split()[1] == pushed.stdout.split()[1]
        again = moor("image", "pull", "bb:1", "--registry", registry.address, *other)
        assert again.stderr.count("already present") == 2  # config and layer
        missing = moor("image", "pull", "bb:nope", "--registry", registry.address, *other, code=1)
        assert "MANIFEST_UNKNOWN" in missing.stderr


def test_build_errors_and_commit(tmp_path: Path, state: Path) -> None:
    sd = ("--state-dir", str(state))
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Containerfile").write_text("FROM busybox:1\nRUNN echo\n")
    bad = moor("image", "build", str(context), "-t", "x:1", *sd, code=2)
    assert f"{context / 'Containerfile'}:2: RUNN: unknown instruction" in bad.stderr
    (context / "Containerfile").write_text("FROM busybox:1\nARG V\nRUN echo built $V > /v\nCMD [\"cat\", \"/v\"]\n")
    built = moor("image", "build", str(context), "-t", "x:1", "--build-arg", "V=7", *sd)
    assert "step 3/4: RUN echo built $V > /v" in built.stderr and built.stdout.startswith("x:1 sha256:")
    runtime = Runtime(state, ImageStore(state / "images"))
    runtime.run("c1", ContainerSpec(name="c1", image="x:1", args=("sh", "-c", "cat /v > /copy")))
    runtime.wait("c1", timeout=30)
    committed = moor("container", "commit", "c1", "fixed:1", *sd)
    assert "bypasses the declarative flow" in committed.stderr
    runtime.run("c2", ContainerSpec(name="c2", image="fixed:1", args=("cat", "/copy")))
    runtime.wait("c2", timeout=30)
    assert [r.line for r in runtime.read_logs("c2")] == ["built 7"]
    assert moor("container", "commit", "nope", "y:1", *sd, code=3)


def test_image_limits_are_set_per_command_and_name_the_limit(tmp_path: Path, state: Path) -> None:
    import gzip
    import io
    import tarfile

    bomb = tmp_path / "rootfs.tar.gz"
    with gzip.open(bomb, "wb") as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        info = tarfile.TarInfo("zeros")
        info.size = 8 << 20
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    sd = ("--state-dir", str(state))
    refused = moor("image", "import", str(bomb), "bomb:1", *sd, "--image-limit", "ratio=10",
                   "--image-limit", "ratio_floor=1MiB", code=2)
    assert "over the limit ratio=10" in refused.stderr and str(bomb) in refused.stderr
    moor("image", "import", str(bomb), "bomb:1", *sd)  # within the defaults
    usage = moor("image", "import", str(bomb), "bomb:2", *sd, "--image-limit", "layer_size=1", code=2)
    assert "no such image limit" in usage.stderr and "layer_bytes" in usage.stderr
