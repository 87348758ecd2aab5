"""The walking skeleton, end to end: `moor apply` puts real containers on agent hosts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aetcd

from moorage.localcluster.cluster import LocalCluster
from moorage.localcluster.procs import wait_for
from tests.cluster.conftest import ClusterFactory
from tests.cluster.harness import moor, running, tasks, wait_tasks

HELLO = """\
name: hello
image: busybox
replicas: 2
env: {GREETING: ahoy-moorage}
command: ["sh", "-c", "echo \\"hello from $(hostname): $GREETING pid=$$\\"; ls /; trap 'exit 0' TERM; while true; do sleep 0.2; done"]
stop_grace_period: 2s
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def etcd_keys(cluster: LocalCluster) -> list[bytes]:
    async def read() -> list[bytes]:
        host, port = cluster.etcd.endpoint.split(":")
        client = aetcd.Client(host=host, port=int(port))
        try:
            return [kv.key for kv in await client.get_prefix(b"/moorage/")]
        finally:
            await client.close()

    return asyncio.run(read())


def test_two_replicas_run_one_per_host_and_log_hostname_and_env(cluster_factory: ClusterFactory, tmp_path: Path) -> None:
    cluster = cluster_factory(hosts=2)
    moor(cluster, "apply", "-f", str(write(tmp_path, "hello.yaml", HELLO)))

    found = wait_tasks(cluster, "hello", running(2), "both hello tasks running")
    assert sorted(t.node_id for t in found) == ["h1", "h2"]

    def logged() -> bool:
        out = moor(cluster, "logs", "hello").stdout
        return all(f"hello.{t.slot}.{t.id}: ahoy-moorage pid=1" in out for t in found)

    wait_for(logged, 15, "both tasks' greeting in `moor logs hello`")
    out = moor(cluster, "logs", "hello").stdout
    # The root filesystem is the image: busybox's top level, not the host's.
    assert "bin" in out and "work" not in out.split()


def test_delete_stops_and_removes_containers_leaving_no_mount(cluster_factory: ClusterFactory, tmp_path: Path) -> None:
    cluster = cluster_factory(hosts=2)
    moor(cluster, "apply", "-f", str(write(tmp_path, "hello.yaml", HELLO)))
    found = wait_tasks(cluster, "hello", running(2), "both hello tasks running")
    container_dirs = [a.state_dir / "containers" / t.id for a in cluster.agents for t in found if t.node_id == a.name]
    assert all(d.is_dir() for d in container_dirs)

    moor(cluster, "delete", "hello")
    wait_for(lambda: not tasks(cluster, "hello"), 30, "hello's tasks to be gone")
    # Stopped containers stay as task history until their tasks are gone, then go.
    wait_for(lambda: not [d for d in container_dirs if d.exists()], 30, "hello's containers to be removed")
    mounts = Path("/proc/self/mounts").read_text()
    assert str(cluster.base) not in mounts
    assert moor(cluster, "get", "services").stdout.count("hello") == 0


def test_invalid_manifest_is_refused_naming_the_field_and_writes_nothing(
    cluster_factory: ClusterFactory, tmp_path: Path
) -> None:
    cluster = cluster_factory(hosts=1)
    no_image = write(tmp_path, "no-image.yaml", "name: web\nreplicas: 1\n")
    negative = write(tmp_path, "negative.yaml", "name: db\nimage: busybox\nreplicas: -2\n")
    before = etcd_keys(cluster)

    result = moor(cluster, "apply", "-f", str(no_image), "-f", str(negative), check=False)

    assert result.returncode != 0
    assert "no-image.yaml" in result.stderr and "image" in result.stderr
    assert "negative.yaml" in result.stderr and "replicas" in result.stderr
    assert etcd_keys(cluster) == before
    assert not [k for k in before if k.startswith(b"/moorage/services/")]
