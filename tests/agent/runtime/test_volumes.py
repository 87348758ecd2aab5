"""Volumes: named, anonymous from the image's VOLUME, bind and tmpfs mounts, read-only, volumes_from."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from agent.runtime import ContainerSpec, ImageConfig, ImageStore, InvalidSpec, MountSpec, Runtime, VolumeInUse
from tests.agent.runtime.support import lines, sh


def run_to_end(runtime: Runtime, container_id: str, spec: ContainerSpec) -> list[str]:
    runtime.run(container_id, spec)
    assert runtime.wait(container_id, 10).exit_code == 0, lines(runtime, container_id)
    return lines(runtime, container_id, "stdout")


def test_a_named_volume_outlives_its_containers_and_goes_only_on_request(runtime: Runtime) -> None:
    data = (MountSpec("/data", "volume", "moorage-test-data"),)
    run_to_end(runtime, "w", dataclasses.replace(sh("writer", "echo kept > /data/file"), mounts=data))
    runtime.remove("w")
    assert run_to_end(runtime, "r", dataclasses.replace(sh("reader", "cat /data/file"), mounts=data)) == ["kept"]
    with pytest.raises(VolumeInUse, match="in use by container"):
        runtime.remove_volume("moorage-test-data")
    runtime.remove("r", volumes=True)  # only anonymous volumes go with their container
    assert runtime.volumes.names() == ["moorage-test-data"]
    runtime.remove_volume("moorage-test-data")
    assert runtime.volumes.names() == []
    with pytest.raises(InvalidSpec, match="invalid volume name"):
        runtime.create("bad", dataclasses.replace(sh("bad", "true"), mounts=(MountSpec("/d", "volume", "../etc"),)))


def test_bind_mounts_read_write_and_read_only(runtime: Runtime, tmp_path: Path) -> None:
    host = tmp_path / "moorage-host-dir"
    host.mkdir()
    (host / "in").write_text("from host\n")
    mounts = (MountSpec("/rw", "bind", str(host)), MountSpec("/ro", "bind", str(host), read_only=True))
    script = "cat /rw/in; echo out > /rw/out; echo x > /ro/x || echo ro-refused"
    assert run_to_end(runtime, "c1", dataclasses.replace(sh("binds", script), mounts=mounts)) == ["from host", "ro-refused"]
    assert (host / "out").read_text() == "out\n" and not (host / "x").exists()
    with pytest.raises(InvalidSpec, match="must be an existing absolute path"):
        runtime.create("c2", dataclasses.replace(sh("x", "true"), mounts=(MountSpec("/x", "bind", "relative/path"),)))


@pytest.fixture(scope="module")
def volume_image(images: ImageStore, tmp_path_factory: pytest.TempPathFactory, busybox_rootfs: Path) -> str:
    rootfs = tmp_path_factory.mktemp("moorage-volume-image") / "rootfs"
    shutil.copytree(busybox_rootfs, rootfs, symlinks=True)
    (rootfs / "var" / "lib" / "app").mkdir(parents=True)
    (rootfs / "var" / "lib" / "app" / "seed.txt").write_text("seeded by the image\n")
    images.import_rootfs(rootfs, "busybox-volume", ImageConfig(cmd=("sh",), volumes=("/var/lib/app",)))
    return "busybox-volume"


def test_an_image_volume_becomes_an_anonymous_volume_seeded_from_the_image(runtime: Runtime, volume_image: str) -> None:
    spec = ContainerSpec(name="anon", image=volume_image,
                         args=("sh", "-c", "cat /var/lib/app/seed.txt; echo new > /var/lib/app/new; grep -c ' /var/lib/app ' /proc/self/mounts"))
    assert run_to_end(runtime, "c1", spec) == ["seeded by the image", "1"]
    (name,) = runtime.state("c1").volumes
    assert name.startswith("moorage-anon-")
    volume = runtime.volumes.get(name)
    assert sorted(p.name for p in volume.path.iterdir()) == ["new", "seed.txt"]
    assert not (runtime.state("c1").upper_dir / "var" / "lib" / "app" / "new").exists()  # not in the rw layer
    runtime.remove("c1", volumes=True)
    assert runtime.volumes.names() == []


def test_volumes_from_a_data_container(runtime: Runtime, volume_image: str) -> None:
    data = ContainerSpec(name="data", image=volume_image, args=("sh", "-c", "echo shared > /var/lib/app/x"),
                         mounts=(MountSpec("/named", "volume", "moorage-test-named"),), labels={"kind": "data"})
    run_to_end(runtime, "data", data)
    reader = dataclasses.replace(sh("reader", "cat /var/lib/app/x; ls /named; echo y > /named/y"), volumes_from=("data",))
    assert run_to_end(runtime, "reader", reader) == ["shared"]
    by_label = dataclasses.replace(sh("by-label", "cat /var/lib/app/x"), volumes_from=("label:role=data",))
    with pytest.raises(InvalidSpec, match="no container on this host has that label"):
        runtime.create("nolabel", by_label)
    ro = dataclasses.replace(sh("ro", "echo z > /var/lib/app/z || echo refused"), volumes_from=("data:ro",))
    assert run_to_end(runtime, "ro", ro) == ["refused"]
    users = runtime.volume_users()
    assert sorted(users["moorage-test-named"]) == ["data", "reader", "ro"]
    labelled = dataclasses.replace(sh("labelled", "cat /var/lib/app/x"), volumes_from=("label:kind=data",))
    assert run_to_end(runtime, "labelled", labelled) == ["shared"]
    runtime.remove("data", volumes=True)  # the readers still hold its anonymous volume
    assert len(runtime.volumes.names()) == 2
    with pytest.raises(VolumeInUse):
        runtime.remove_volume("moorage-test-named")
    runtime.remove_volume("moorage-test-named", force=True)


def test_tmpfs_mount_is_private_memory(runtime: Runtime) -> None:
    spec = dataclasses.replace(sh("tmp", "echo x > /scratch/f; grep ' /scratch ' /proc/self/mounts | cut -d' ' -f3"),
                               mounts=(MountSpec("/scratch", "tmpfs"),))
    assert run_to_end(runtime, "c1", spec) == ["tmpfs"]
    assert not (runtime.state("c1").upper_dir / "scratch" / "f").exists()
