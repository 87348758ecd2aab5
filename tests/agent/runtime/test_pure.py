"""Pure pieces of the runtime: command and env resolution, the state machine, log records."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest

import agent.runtime
from agent.runtime import ContainerStatus, InvalidState
from agent.runtime.containers.lifecycle import Action, check, derive_status
from agent.runtime.containers.logs import MAX_LINE, LineSplitter, format_record, format_time, parse_record, parse_time, read_log
from agent.runtime.containers.process import DEFAULT_PATH, command, environment

CREATED, RUNNING, EXITED = ContainerStatus.CREATED, ContainerStatus.RUNNING, ContainerStatus.EXITED


def test_public_surface() -> None:
    assert sorted(agent.runtime.__all__) == sorted(
        ["ContainerExists", "ContainerNotFound", "ContainerSpec", "ContainerState", "ContainerStatus", "DeviceSpec",
         "ExecFailed", "ExecProcess", "Image", "ImageConfig", "ImageNotFound", "ImageStore", "InvalidImage", "InvalidSpec",
         "InvalidState", "Limits", "LogRecord", "MountSpec", "RestartPolicy", "Runtime", "RuntimeFailure",
         "StartFailed", "VolumeInUse", "VolumeNotFound"]
    )
    assert all(issubclass(getattr(agent.runtime, n), agent.runtime.RuntimeFailure)
               for n in ("ContainerExists", "ContainerNotFound", "ExecFailed", "ImageNotFound", "InvalidImage",
                         "InvalidSpec", "InvalidState", "StartFailed", "VolumeInUse", "VolumeNotFound"))


@pytest.mark.parametrize(
    ("spec_entrypoint", "spec_args", "expected"),
    [
        (None, None, ("/entry", "-x", "default")),
        (None, ("mine",), ("/entry", "-x", "mine")),
        (("/other",), None, ("/other", "default")),
        ((), ("sh",), ("sh",)),  # an explicit empty entrypoint drops the image's
        ((), (), ()),
    ],
)
def test_command(spec_entrypoint: tuple[str, ...] | None, spec_args: tuple[str, ...] | None, expected: tuple[str, ...]) -> None:
    assert command(spec_entrypoint, spec_args, ("/entry", "-x"), ("default",)) == expected


def test_environment_spec_overrides_image_and_defaults_fill_in() -> None:
    env = environment(("A=1", "B=image", "EQ=x=y"), {"B": "spec", "C": "3"}, "host")
    assert env == ("A=1", "B=spec", "EQ=x=y", "C=3", f"PATH={DEFAULT_PATH}", "HOSTNAME=host", "HOME=/root")
    assert environment(("PATH=/bin",), {"HOSTNAME": "mine", "HOME": "/h"}, "host", "/nobody") == (
        "PATH=/bin", "HOSTNAME=mine", "HOME=/h")
    assert environment((), {}, "host", "/home/app")[-1] == "HOME=/home/app"


@pytest.mark.parametrize(
    ("status", "action", "legal"),
    [
        (CREATED, Action.START, True), (RUNNING, Action.START, False), (EXITED, Action.START, False),
        (CREATED, Action.STOP, False), (RUNNING, Action.STOP, True), (EXITED, Action.STOP, True),
        (CREATED, Action.REMOVE, True), (RUNNING, Action.REMOVE, False), (EXITED, Action.REMOVE, True),
        (RUNNING, Action.FORCE_REMOVE, True),
    ],
)
def test_transitions(status: ContainerStatus, action: Action, legal: bool) -> None:
    if legal:
        check("c", status, action)
    else:
        with pytest.raises(InvalidState):
            check("c", status, action)


@pytest.mark.parametrize(
    ("recorded", "shim_alive", "init_alive", "expected"),
    [
        (RUNNING, True, True, RUNNING),
        (RUNNING, True, False, RUNNING),  # the shim is still draining the log
        (RUNNING, False, True, RUNNING),  # the shim was killed; the container lives on
        (RUNNING, False, False, EXITED),  # nobody recorded the exit, but it happened
        (CREATED, False, False, CREATED),
        (EXITED, False, False, EXITED),
    ],
)
def test_derive_status(recorded: ContainerStatus, shim_alive: bool, init_alive: bool, expected: ContainerStatus) -> None:
    assert derive_status(recorded, shim_alive, init_alive) is expected


def test_time_round_trip_keeps_microseconds() -> None:
    text = format_time(1_700_000_000_123_456_789)
    assert text == "2023-11-14T22:13:20.123456789Z"
    assert parse_time(text) == datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)
    assert parse_time("2023-11-14T22:13:20Z").microsecond == 0
    with pytest.raises(ValueError):
        parse_time("2023-11-14 22:13:20")


def test_record_round_trip() -> None:
    raw = format_record("stderr", "caf\xe9 \"q\"".encode(), 1_700_000_000_000_000_000)
    assert raw.isascii() and raw.endswith(b"\n")
    record = parse_record(raw.decode())
    assert (record.stream, record.line) == ("stderr", "caf\xe9 \"q\"")


def test_line_splitter_holds_partial_lines_and_cuts_long_ones() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"one\ntw") == [b"one"]
    assert splitter.feed(b"o\n\nthree") == [b"two", b""]
    assert splitter.flush() == [b"three"]
    assert splitter.flush() == []
    assert splitter.feed(b"x" * (MAX_LINE + 5)) == [b"x" * MAX_LINE]
    assert splitter.flush() == [b"x" * 5]


def test_read_log_tail_and_partial_record(tmp_path: Path) -> None:
    log = tmp_path / "container.log"
    buf = io.BytesIO()
    for i in range(5):
        buf.write(format_record("stdout", str(i).encode(), 1_700_000_000_000_000_000 + i))
    log.write_bytes(buf.getvalue() + b'{"time": "2023')  # a record being written right now
    assert [r.line for r in read_log(log, tail=0, follow=False, finished=lambda: True)] == ["0", "1", "2", "3", "4"]
    assert [r.line for r in read_log(log, tail=2, follow=False, finished=lambda: True)] == ["3", "4"]


def test_image_limits_parse_sizes_and_refuse_unknown_names() -> None:
    from agent.runtime.images.spec import GiB, Limits

    limits = Limits.parse(["layer_bytes=2GiB", "layer_entries=10", "ratio=5"])
    assert (limits.layer_bytes, limits.layer_entries, limits.ratio, limits.blob) == (2 * GiB, 10, 5, Limits().blob)
    for bad in ("nope=1", "ratio=0", "ratio=ten", "layer_bytes=1GB"):
        with pytest.raises(ValueError, match=bad.split("=")[0]):
            Limits.parse([bad])
    assert Limits(ratio=10, ratio_floor=100, blob=10_000).uncompressed_bound(50) == (500, "ratio")
    assert Limits(ratio=10, ratio_floor=100, blob=10_000).uncompressed_bound(5) == (100, "ratio")
    assert Limits(ratio=10, ratio_floor=100, blob=300).uncompressed_bound(50) == (300, "blob")
