import asyncio

import aetcd

from moorage.localcluster.etcd import Etcd


def test_etcd_fixture_serves_reads_and_writes(etcd: Etcd) -> None:
    async def roundtrip() -> bytes:
        host, port = etcd.endpoint.split(":")
        client = aetcd.Client(host=host, port=int(port))
        try:
            await client.put(b"/moorage-test/k", b"v")
            return (await client.get(b"/moorage-test/k")).value
        finally:
            await client.close()

    assert asyncio.run(roundtrip()) == b"v"
