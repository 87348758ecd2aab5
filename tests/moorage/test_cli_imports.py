"""`moor` starts light: building its command tree, any help, completion and commands that need no
controller load none of grpc, the generated API, pydantic, Rich, PyYAML, structlog or the daemons.

Each case runs in a fresh interpreter and reads its ``sys.modules``; no timing is asserted
(bench/cli.py measures the start-up).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

HEAVY = (
    "grpc",
    "google.protobuf",
    "moorage.v1",
    "moorage.client",
    "pydantic",
    "moorage.manifest.model",
    "rich",
    "yaml",
    "structlog",
    "scheduler",
    "controller",
    "agent",
)

# Runs `moor ARGS...` in this interpreter, then prints the modules it loaded as the last line.
RUN = """
import json, sys
from moorage.cli.app import main
sys.argv = ["moor", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)))
"""

# Prints the help of every command and group of `moor`, then the modules loaded.
EVERY_HELP = """
import json, sys
import typer
from typer.testing import CliRunner
from moorage.cli.app import app

runner = CliRunner()

def walk(command, path):
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0 and "Usage: moor" in result.stdout, (path, result.output)
    print(" ".join(path))
    if hasattr(command, "list_commands"):  # a group, lazy or not: ask it, as Click does
        for name in command.list_commands(None):
            walk(command.get_command(None, name), [*path, name])

walk(typer.main.get_command(app), [])
print(json.dumps(sorted(sys.modules)))
"""


def probe(code: str, *args: str, **env: str) -> tuple[str, list[str]]:
    """What ``code`` printed (stdout before its last line, then stderr), and the heavy modules that line lists."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200", **env}, check=True,
    )  # fmt: skip
    *output, modules = done.stdout.splitlines()
    loaded = [m for m in json.loads(modules) if any(m == h or m.startswith(h + ".") for h in HEAVY)]
    return "\n".join([*output, done.stderr]), loaded


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["version", "--client"], "client: moor "),
        (["--help"], "Usage: moor [OPTIONS] COMMAND"),
        (["get", "nodes", "--help"], "Usage: moor get nodes"),
        (["apply", "--help"], "Usage: moor apply"),
        (["node", "label", "h1"], "Missing argument"),  # a usage error is reported without the client
    ],
    ids=" ".join,
)
def test_a_command_without_a_controller_loads_nothing_heavy(args: list[str], expected: str) -> None:
    output, loaded = probe(RUN, *args)
    assert expected in output
    assert loaded == []


def test_every_help_loads_nothing_heavy() -> None:
    """`moor image ... --help` loads agent/cli.py, the module of those commands (mounted lazily), and no more."""
    output, loaded = probe(EVERY_HELP)
    assert {"", "get nodes", "image build", "container commit", "controller", "agent"} <= set(output.splitlines())
    assert loaded == ["agent", "agent.cli"]


def test_shell_completion_loads_nothing_heavy() -> None:
    output, loaded = probe(RUN, _MOOR_COMPLETE="complete_bash", COMP_WORDS="moor node dr", COMP_CWORD="2")
    assert output.split() == ["drain"]
    assert loaded == []


def test_a_client_command_loads_the_client_only_when_it_runs() -> None:
    """The checks above are not vacuous: the same probe sees grpc once a command talks to a controller."""
    output, loaded = probe(RUN, "get", "nodes", MOOR_CONTROLLER="127.0.0.1:1", MOOR_INSECURE="1")
    assert "error: controller 127.0.0.1:1 unreachable" in output
    assert {"grpc", "moorage.client", "moorage.v1.control_pb2"} <= set(loaded)
