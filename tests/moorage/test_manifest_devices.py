"""The ``seccomp`` and ``devices`` fields of a manifest: the forms each accepts, the ServiceSpec
they map to, and each way they can be wrong."""

from __future__ import annotations

import pytest

from moorage.manifest import loading
from moorage.manifest.model import MAX_DEVICES
from moorage.v1 import types_pb2
from tests.moorage.conftest import WriteManifest
from tests.moorage.test_manifest_fields import problems, spec_of


@pytest.fixture(autouse=True)
def every_field_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loading, "NOT_SUPPORTED_YET", frozenset())


def test_seccomp_is_the_default_unless_unconfined(write: WriteManifest) -> None:
    assert spec_of(write, "").seccomp == types_pb2.SECCOMP_PROFILE_UNSPECIFIED
    assert spec_of(write, "seccomp: default\n").seccomp == types_pb2.SECCOMP_PROFILE_DEFAULT
    assert spec_of(write, "seccomp: unconfined\n").seccomp == types_pb2.SECCOMP_PROFILE_UNCONFINED


def test_devices_short_and_long_forms(write: WriteManifest) -> None:
    spec = spec_of(write, "devices:\n- /dev/fuse\n- /dev/sdb:/dev/xvdb\n- /dev/sdc:/dev/xvdc:wr\n- /dev/sdd:r\n"
                          "- {source: /dev/kvm, permissions: mr}\n")
    assert [(d.host_path, d.container_path, d.permissions) for d in spec.devices] == [
        ("/dev/fuse", "", "rwm"), ("/dev/sdb", "/dev/xvdb", "rwm"), ("/dev/sdc", "/dev/xvdc", "rw"),
        ("/dev/sdd", "", "r"), ("/dev/kvm", "", "rm")]


@pytest.mark.parametrize(("body", "expected"), [
    ("seccomp: strict", "seccomp: must be 'default' or 'unconfined'"),
    ("devices: [dev/fuse]", "devices[0].source: 'dev/fuse' must be an absolute path"),
    ("devices: ['/dev/sdb:xvdb:r']", "devices[0].target: 'xvdb' must be an absolute path"),
    ("devices: ['/dev/sdb:/a:/b']", "devices[0]: '/dev/sdb:/a:/b' is not HOST[:CONTAINER][:PERMISSIONS]"),
    ("devices: ['/dev/sdb:rx']", "devices[0].permissions: 'rx': permissions are r, w and m (mknod), each at most once"),
    ("devices: ['/dev/sdb:rr']", "devices[0].permissions: 'rr': permissions are r, w and m (mknod), each at most once"),
    ("devices: ['/dev/a:/dev/x', '/dev/b:/dev/x']", "devices: device path '/dev/x' appears more than once"),
    ("devices: [{source: /dev/a, mode: r}]", "devices[0].mode: unknown field"),
    ("devices: ['/dev/sda:/data/sda']", "devices[0]: the device's path in the container must be under /dev/, not '/data/sda'"),
    ("devices: ['/dev/sda:/dev/../etc/x']", "devices[0]: the device's path in the container must be under /dev/, not '/etc/x'"),
    ("devices: [/srv/disk]", "devices[0]: the device's path in the container must be under /dev/, not '/srv/disk'"),
])
def test_malformed_security_fields(write: WriteManifest, body: str, expected: str) -> None:
    assert problems(write, body + "\n") == [expected]


def test_the_device_list_is_bounded(write: WriteManifest) -> None:
    body = "devices:\n" + "".join(f"- /dev/d{n}\n" for n in range(MAX_DEVICES + 1))
    (problem,) = problems(write, body)
    assert problem.startswith(f"devices: List should have at most {MAX_DEVICES} items")
