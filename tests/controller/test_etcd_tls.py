"""The controller speaks TLS to an etcd that requires client certificates."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.errors import StoreUnavailableError
from controller.etcdtls import EtcdTLS
from controller.store import Store
from moorage.localcluster.etcd import Etcd
from moorage.v1 import control_pb2
from tests.controller.harness import control, running_controller


@pytest.fixture
def tls_etcd(tmp_path: Path) -> Iterator[Etcd]:
    server = Etcd(tmp_path / "etcd", tls=True).start()
    try:
        yield server
    finally:
        server.stop()


def test_the_controller_serves_over_an_etcd_that_requires_tls(tls_etcd: Etcd) -> None:
    ca, cert, key = tls_etcd.client_credentials()
    tls = EtcdTLS(ca, cert, key)

    async def scenario() -> None:
        # Without a client certificate etcd refuses the connection.
        with pytest.raises(StoreUnavailableError):
            await Store.connect([tls_etcd.endpoint], tls=EtcdTLS(ca), timeout=1.0)
        async with running_controller(tls_etcd.endpoint, etcd_tls=tls) as address:
            async with control(address) as stub:
                version = await stub.GetVersion(control_pb2.GetVersionRequest())
                assert version.api == "moorage.v1"
                await stub.ApplyServices(control_pb2.ApplyServicesRequest())

    asyncio.run(asyncio.wait_for(scenario(), 60))
