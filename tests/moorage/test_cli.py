"""`moor` paths that need no controller: validation, unreachable controller, help, flags."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
import typer
from typer.testing import CliRunner

from moorage import __version__
from moorage.cli.app import app
from moorage.localcluster.procs import free_port
from tests.moorage.conftest import WriteManifest

runner = CliRunner()


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A loopback socket that listens but never accepts: any connection attempt is queued on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        sock.setblocking(False)
        yield sock


def connected(sock: socket.socket) -> bool:
    try:
        conn, _ = sock.accept()
    except BlockingIOError:
        return False
    conn.close()
    return True


def test_invalid_manifest_exits_2_listing_every_problem_without_connecting(
    write: WriteManifest, listener: socket.socket
) -> None:
    path = write("bad.yaml", "name: web\nreplicas: -1\n---\nname: x\nimage: b\nenv: {A: [x]}\n")
    address = "127.0.0.1:%d" % listener.getsockname()[1]
    result = runner.invoke(app, ["apply", "-f", str(path), "--controller", address])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"{path}: document 1: image: required",
        f"{path}: document 1: replicas: must be greater than or equal to 0",
        f"{path}: document 2: env.A: must be a string",
    ]
    assert result.stdout == ""
    assert not connected(listener)


def test_unreachable_controller_is_one_line_and_exit_1(write: WriteManifest) -> None:
    path = write("ok.yaml", "name: web\nimage: busybox\n")
    address = f"127.0.0.1:{free_port()}"
    result = runner.invoke(app, ["apply", "-f", str(path), "--controller", address])
    assert result.exit_code == 1
    assert result.stderr == f"error: controller {address} unreachable: connection refused\n"


@pytest.mark.parametrize(
    "args",
    [["get", "services"], ["get", "tasks", "--service", "web"], ["get", "nodes", "-o", "json"], ["logs", "web"],
     ["delete", "web"], ["describe", "service", "web"], ["scale", "web=2"], ["node", "drain", "h1"], ["version"],
     ["exec", "web.1", "--", "true"], ["events"], ["diff", "-f", "examples/hello.yaml"]],
)
def test_every_client_command_reports_an_unreachable_controller(args: list[str]) -> None:
    address = f"127.0.0.1:{free_port()}"
    result = runner.invoke(app, args, env={"MOOR_CONTROLLER": address})
    assert result.exit_code == 1
    assert result.stderr == f"error: controller {address} unreachable: connection refused\n"


def test_debug_lets_the_exception_through(write: WriteManifest) -> None:
    path = write("bad.yaml", "name: web\n")
    result = runner.invoke(app, ["--debug", "apply", "-f", str(path)])
    assert result.exit_code == 1
    assert type(result.exception).__name__ == "ManifestError"


def test_bad_timeout_is_a_usage_error(write: WriteManifest) -> None:
    path = write("ok.yaml", "name: web\nimage: busybox\n")
    result = runner.invoke(app, ["apply", "-f", str(path), "--wait", "--timeout", "soon"])
    assert result.exit_code == 2
    assert "'soon' is not a duration" in result.stderr


def test_bad_agent_label_is_a_usage_error() -> None:
    result = runner.invoke(app, ["agent", "--label", "zone"])
    assert result.exit_code == 2
    assert "'zone' is not KEY=VALUE" in result.stderr


def test_client_version_needs_no_controller() -> None:
    result = runner.invoke(app, ["version", "--client"])
    assert (result.exit_code, result.stdout) == (0, f"client: moor {__version__}\n")


def command_paths() -> list[list[str]]:
    """Every command and group of `moor`, as the words that name it."""
    found: list[list[str]] = []

    def walk(command: object, path: list[str]) -> None:
        found.append(path)
        if hasattr(command, "list_commands"):  # a group, lazy or not: ask it, as Click does
            for name in command.list_commands(None):
                walk(command.get_command(None, name), [*path, name])

    walk(typer.main.get_command(app), [])
    return found


@pytest.mark.parametrize(
    "command",
    command_paths(),
    ids=" ".join,
)
def test_every_command_has_a_summary_and_an_example(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "Example: moor" in result.stdout
    lines = [line.strip() for line in result.stdout.splitlines()]
    after_usage = lines[next(i for i, line in enumerate(lines) if line.startswith("Usage:")) + 1 :]
    summary = next(line for line in after_usage if line)  # the first line after the usage line
    assert not summary.startswith(("Example", "╭")), result.stdout


def test_the_commands_people_expect_exist() -> None:
    names = {" ".join(path) for path in command_paths()}
    assert names >= {
        "apply", "diff", "get services", "get tasks", "get nodes", "describe service", "describe task",
        "describe node", "logs", "exec", "delete", "scale", "node ls", "node inspect", "node drain", "node activate",
        "node label", "events", "version", "schema", "image",
    }  # fmt: skip
