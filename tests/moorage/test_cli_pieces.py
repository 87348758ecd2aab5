"""The CLI's pure pieces: diffs, task lookup, --since, label and scale arguments, config precedence, events, schema."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import get_args

import pytest
import typer
from typer.testing import CliRunner

from moorage.addresses import DEFAULT_CONTROLLER, ENV_CONTROLLER
from moorage.cli.app import app
from moorage.cli.common import CommandError
from moorage.cli.config import controller_addresses
from moorage.cli.daemons import StrategyName
from moorage.cli.diffing import Change, changes, flatten
from moorage.cli.events import format_event
from moorage.cli.logstreams import parse_since
from moorage.cli.lookup import pick_task
from moorage.cli.nodes import parse_label_changes
from moorage.cli.services import parse_scale
from moorage.localcluster.cluster import MOOR
from moorage.client import ControlClient
from moorage.manifest import ServiceManifest, json_schema
from moorage.v1 import types_pb2
from scheduler import Strategy

runner = CliRunner()


def test_flatten_names_every_leaf() -> None:
    assert flatten({"env": {"A": "1"}, "ports": [{"published": 80}], "labels": {}, "replicas": 2}) == {
        "env.A": "1",
        "ports[0].published": 80,
        "labels": {},
        "replicas": 2,
    }


def test_changes_list_added_removed_and_changed_fields() -> None:
    old = ServiceManifest(name="web", image="b:1", env={"A": "1", "B": "2"}, labels={"tier": "x"})
    new = ServiceManifest(name="web", image="b:2", env={"A": "1", "C": "3"}, replicas=3)
    assert [str(c) for c in changes(old, new)] == [
        '~ image: "b:1" -> "b:2"',
        '- env.B: "2"',
        '+ env.C: "3"',
        "+ replicas: 3",
        '- labels.tier: "x"',
    ]
    assert changes(new, new) == []


def test_a_new_service_is_all_additions() -> None:
    found = changes(None, ServiceManifest(name="web", image="b"))
    assert found == [Change("name", new="web"), Change("image", new="b")]


def task(task_id: str, service: str, slot: int, desired: int, created: int) -> types_pb2.Task:
    found = types_pb2.Task(id=task_id, service=service, slot=slot, desired_state=desired)  # type: ignore[arg-type]
    found.created_at.FromSeconds(created)
    return found


RUN, STOP = types_pb2.TASK_STATE_RUNNING, types_pb2.TASK_STATE_SHUTDOWN
TASKS = [
    task("aaa111", "web", 1, STOP, 100),
    task("aaa222", "web", 1, RUN, 50),
    task("bbb333", "web", 2, STOP, 10),
    task("bbb444", "web", 2, STOP, 20),
]


@pytest.mark.parametrize(
    ("reference", "expected"),
    [("aaa111", "aaa111"), ("bbb3", "bbb333"), ("web.1", "aaa222"), ("web.2", "bbb444"), ("web.3", None), ("zzz", None)],
)
def test_pick_task(reference: str, expected: str | None) -> None:
    found = pick_task(reference, TASKS)
    assert (found.id if found else None) == expected


def test_an_ambiguous_prefix_is_an_error() -> None:
    with pytest.raises(CommandError, match="task 'aaa' is ambiguous: it starts aaa111, aaa222"):
        pick_task("aaa", TASKS)


def test_since_takes_a_duration_or_a_time() -> None:
    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert parse_since("10m", now).ToJsonString() == "2024-05-01T11:50:00Z"
    assert parse_since("2024-05-01T10:00:00Z", now).ToJsonString() == "2024-05-01T10:00:00Z"
    assert parse_since("2024-05-01T10:00:00", now).ToJsonString() == "2024-05-01T10:00:00Z"
    with pytest.raises(typer.BadParameter, match="'yesterday' is neither a duration"):
        parse_since("yesterday", now)


def test_label_changes_set_and_remove() -> None:
    assert parse_label_changes(["zone=a", "disk=", "old-"]) == ({"zone": "a", "disk": ""}, ["old"])
    with pytest.raises(CommandError, match="'zone' is neither KEY=VALUE"):
        parse_label_changes(["zone"])


def test_scale_arguments() -> None:
    assert parse_scale("web=3") == ("web", 3)
    for bad in ("web", "web=-1", "=2", "web=x"):
        with pytest.raises(typer.BadParameter):
            parse_scale(bad)


def test_placement_strategy_choices_are_the_schedulers() -> None:
    assert set(get_args(StrategyName)) == {strategy.value for strategy in Strategy}


@pytest.fixture
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv(ENV_CONTROLLER, raising=False)
    monkeypatch.delenv("MOOR_CONFIG", raising=False)  # the file under XDG_CONFIG_HOME is the one read
    (tmp_path / "moorage").mkdir()
    return tmp_path / "moorage" / "config.yaml"


def test_config_precedence_flag_then_environment_then_file(config_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert controller_addresses(None) == [DEFAULT_CONTROLLER]
    config_home.write_text("controller: [10.0.0.3:7420, 10.0.0.4:7420]\n")
    assert controller_addresses(None) == ["10.0.0.3:7420", "10.0.0.4:7420"]
    monkeypatch.setenv(ENV_CONTROLLER, "10.0.0.1:7420, 10.0.0.2:7420")
    assert controller_addresses(None) == ["10.0.0.1:7420", "10.0.0.2:7420"]
    assert controller_addresses("10.0.0.9:7420") == ["10.0.0.9:7420"]


def test_a_bad_config_file_is_named(config_home: Path) -> None:
    config_home.write_text("controller: {a: 1}\n")
    with pytest.raises(CommandError, match="config.yaml: controller must be HOST:PORT or a list of them"):
        controller_addresses(None)


def test_an_unreadable_config_file_is_named(config_home: Path) -> None:
    config_home.write_text("controller: [a\n")
    with pytest.raises(CommandError, match="config.yaml: cannot read the config: while parsing"):
        controller_addresses(None)
    config_home.unlink()
    config_home.mkdir()
    with pytest.raises(CommandError, match="config.yaml: cannot read the config: .*Is a directory"):
        controller_addresses(None)


def test_client_splits_a_list_of_controllers() -> None:
    with ControlClient("a:1, b:2") as client:
        assert (client.addresses, client.address) == (["a:1", "b:2"], "a:1")


def test_event_lines() -> None:
    event = types_pb2.Event(kind="task", action="failed", id="t1", service="web", node_id="h1", message="exit code 3")
    event.time.FromSeconds(1714564800)
    assert format_event(event) == "2024-05-01T12:00:00Z task failed id=t1 service=web node=h1: exit code 3"


def test_schema_lists_every_field_and_the_short_forms() -> None:
    schema = json_schema()
    assert set(ServiceManifest.model_fields) | {"env_file"} == set(schema["properties"])
    assert schema["required"] == ["name", "image"]
    assert schema["additionalProperties"] is False
    assert {"type": "string", "pattern": r"^\d+:\d+(/(tcp|udp))?$", "examples": ["8080:80", "53:53/udp"]} in schema[
        "$defs"
    ]["Port"]["anyOf"]
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == schema


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"_MOOR_COMPLETE": "source_zsh"}, "#compdef moor"),
        ({"_MOOR_COMPLETE": "complete_bash", "COMP_WORDS": "moor ge", "COMP_CWORD": "1"}, "get"),
        ({"_MOOR_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "moor node dr"}, '"drain":"Stop placing tasks'),
    ],
)
def test_shell_completion(env: dict[str, str], expected: str) -> None:
    """What bash and zsh run: the completion script, and the words it completes."""
    result = subprocess.run([MOOR], env={**os.environ, **env}, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    assert expected in result.stdout


def test_the_config_file_gives_the_credentials(config_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ca/cert/key are read relative to the file; MOOR_CONFIG names another file; without them,
    the first call says how to get some."""
    from moorage import pki
    from moorage.cli.config import load, write

    ca, ca_key = pki.new_ca("c1")
    key = pki.new_key()
    cert = pki.issue(ca, ca_key, pki.make_csr(key, "ann"), name="ann", role=pki.READONLY, lifetime=pki.USER_CERT_LIFETIME)
    write(config_home, ["10.0.0.9:7420"], ca, cert, key, name="ann")
    assert oct((config_home.parent / "ann.key").stat().st_mode & 0o777) == "0o600"
    loaded = load(None)
    assert loaded.controllers == ["10.0.0.9:7420"] and loaded.tls is not None
    assert loaded.tls.identity() == pki.identity(cert) and loaded.tls.key == key
    elsewhere = config_home.parent.parent / "other.yaml"
    elsewhere.write_text("controller: 10.0.0.1:1\n")
    monkeypatch.setenv("MOOR_CONFIG", str(elsewhere))
    bare = load(None)
    assert bare.tls is None and "no cluster credentials" in bare.missing_credentials
    monkeypatch.setenv("MOOR_INSECURE", "1")
    assert load(None).missing_credentials == ""
    monkeypatch.setenv("MOOR_CONFIG", str(elsewhere) + ".missing")
    with pytest.raises(CommandError, match="MOOR_CONFIG"):
        load(None)
