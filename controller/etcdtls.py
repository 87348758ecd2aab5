"""TLS towards etcd: aetcd 1.0 opens only plaintext channels, so the store's client is this subclass."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import aetcd
import grpc
from aetcd import rpc, watcher


@dataclass(frozen=True)
class EtcdTLS:
    """TLS towards etcd: the CA that signed etcd's certificates and the controller's client pair."""

    ca: bytes
    cert: bytes | None = None
    key: bytes | None = None

    @classmethod
    def from_files(cls, ca: Path, cert: Path | None, key: Path | None) -> EtcdTLS:
        return cls(ca.read_bytes(), cert.read_bytes() if cert else None, key.read_bytes() if key else None)

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(root_certificates=self.ca, private_key=self.key, certificate_chain=self.cert)


class TLSClient(aetcd.Client):
    """aetcd's client over a TLS channel (aetcd 1.0 opens only plaintext channels).

    ``connect`` does what aetcd's does, with ``secure_channel`` in place of ``insecure_channel``;
    etcd's own username/password authentication is not used (client certificates are).
    """

    def __init__(self, *, tls: EtcdTLS, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._tls = tls

    async def connect(self) -> None:
        if self._connected.is_set():
            return
        if self._is_connecting:
            await asyncio.wait_for(self._connected.wait(), self._connect_wait_timeout)
            return
        try:
            self._is_connecting = True
            target = f"{self._host}:{self._port}"
            self.channel = grpc.aio.secure_channel(target, self._tls.credentials(), options=list(self._options.items()))
            self.kvstub = rpc.KVStub(self.channel)
            self.clusterstub = rpc.ClusterStub(self.channel)
            self.leasestub = rpc.LeaseStub(self.channel)
            self.maintenancestub = rpc.MaintenanceStub(self.channel)
            self._watcher = watcher.Watcher(rpc.WatchStub(self.channel), timeout=self._timeout, metadata=self.metadata)
            self._connected.set()
        finally:
            self._is_connecting = False
