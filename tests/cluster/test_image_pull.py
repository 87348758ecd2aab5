"""Agents pull a task's image from a registry before starting it; a pull failure rejects the task with the reason."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from agent.runtime import ImageConfig, ImageStore
from agent.runtime.images.registry import RegistryClient, RegistrySettings
from moorage.localcluster import network
from moorage.localcluster.procs import wait_for
from tests.cluster.conftest import ClusterFactory
from tests.cluster.harness import S, moor, running, wait_tasks
from tests.agent.runtime.registry_server import running_registry

SERVICE = """\
name: {name}
image: {image}
replicas: 1
command: ["sh", "-c", "cat /etc/moorage-pulled; trap 'exit 0' TERM; while true; do sleep 0.2; done"]
stop_grace_period: 1s
"""


def test_a_missing_image_is_pulled_and_a_bad_one_rejected_with_the_reason(
    cluster_factory: ClusterFactory, tmp_path: Path, busybox_rootfs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The agents live in namespace hosts on a test subnet: they reach the root namespace's registry
    # at the bridge address, over plain HTTP because the subnet is named insecure.
    monkeypatch.setenv("MOOR_INSECURE_REGISTRY", network.free_subnet().supernet(new_prefix=16).with_prefixlen)
    with running_registry(tmp_path / "moorage-registry", host="0.0.0.0") as registry:
        cluster = cluster_factory(hosts=1)
        assert cluster.net is not None
        remote = f"{cluster.net.gateway}:{registry.port}"
        rootfs = tmp_path / "rootfs"
        shutil.copytree(busybox_rootfs, rootfs, symlinks=True)
        (rootfs / "etc" / "moorage-pulled").write_text("pulled from the registry\n")
        source = ImageStore(tmp_path / "moorage-src")
        source.import_rootfs(rootfs, "pulled:1", ImageConfig(cmd=("sh",)))
        RegistryClient(RegistrySettings()).push(source, "pulled:1", f"127.0.0.1:{registry.port}/pulled:1")
        (agent,) = cluster.agents
        assert not _has(agent.state_dir, f"{remote}/pulled:1")

        moor(cluster, "apply", "-f", str(_manifest(tmp_path, "bad", f"{remote}/absent:1")))
        (task,) = wait_tasks(cluster, "bad", lambda ts: any(t.observed_state == S.TASK_STATE_REJECTED for t in ts),
                             "the task of the missing image rejected", timeout=60)[:1]
        assert "MANIFEST_UNKNOWN" in task.message or "NAME_UNKNOWN" in task.message, task.message

        moor(cluster, "apply", "-f", str(_manifest(tmp_path, "good", f"{remote}/pulled:1")))
        wait_for(lambda: _has(agent.state_dir, f"{remote}/pulled:1"), 60, "the agent to pull the image")
        wait_tasks(cluster, "good", running(1), "the task of the pulled image running", timeout=60)
        assert registry.requests("GET", "/manifests/1") >= 1


def _has(state_dir: Path, reference: str) -> bool:
    return reference in [i.reference for i in ImageStore(state_dir / "images").list()]


def _manifest(tmp_path: Path, name: str, image: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(SERVICE.format(name=name, image=image))
    return path
