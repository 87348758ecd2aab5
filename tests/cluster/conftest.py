"""The multi-host harness as pytest fixtures (DESIGN.md §5).

``cluster_factory(hosts=N)`` starts real etcd, a real controller and N real
agent processes (``controllers=2``, ``etcd_members=3`` and ``node_ttl=...``
for the fault tests), each in a network namespace of its own, with the busybox test
image imported on every host; everything is torn down after the test, also
when it fails (and a crashed earlier run is reaped at the next start).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from moorage.localcluster import busybox
from moorage.localcluster.cluster import LocalCluster

ClusterFactory = Callable[..., LocalCluster]


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return busybox.make_rootfs(tmp_path_factory.mktemp("moorage-image") / "rootfs")


@pytest.fixture
def cluster_factory(
    tmp_path: Path, busybox_rootfs: Path, request: pytest.FixtureRequest
) -> Iterator[ClusterFactory]:
    made: list[LocalCluster] = []

    def make(hosts: int = 2, **options: Any) -> LocalCluster:
        base = tmp_path / f"moorage-cluster{len(made)}"
        cluster = LocalCluster(base, hosts, image_sources={"busybox": busybox_rootfs}, **options)
        made.append(cluster)
        return cluster.start()

    try:
        yield make
    finally:
        for cluster in made:
            report = request.node.stash.get(FAILED, False)
            if report:
                print(cluster.logs())
            cluster.stop()


FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    if report.failed:
        item.stash[FAILED] = True
    return report
