"""Manifest validation: every field, every error located and all of them at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from moorage.manifest import (
    DEFAULT_STOP_GRACE_PERIOD,
    NOT_SUPPORTED_YET,
    ManifestError,
    Problem,
    ServiceManifest,
    load_paths,
    loading,
    parse_duration,
)
from tests.moorage.conftest import WriteManifest

REPO = Path(__file__).resolve().parents[2]


def problems_of(*paths: Path) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        load_paths(list(paths))
    assert str(caught.value) == "\n".join(str(p) for p in caught.value.problems)
    return [str(p) for p in caught.value.problems]


def load_one(write: WriteManifest, text: str) -> ServiceManifest:
    (service,) = load_paths([write("svc.yaml", text)])
    return service


def test_minimal_service_gets_defaults(write: WriteManifest) -> None:
    service = load_one(write, "name: web\nimage: nginx\n")
    assert service == ServiceManifest(name="web", image="nginx")
    assert service.replicas == 1
    assert service.stop_grace_period == DEFAULT_STOP_GRACE_PERIOD
    assert (service.entrypoint, service.command, service.env, service.labels) == ([], [], {}, {})


def test_full_service_maps_onto_spec(write: WriteManifest) -> None:
    service = load_one(
        write,
        """
        name: hello
        image: busybox:1.36
        entrypoint: [/bin/sh, -c]
        command: ["echo hi; sleep 1000"]
        env: {GREETING: hello, PORT: 8080}
        replicas: 3
        stop_grace_period: 1m30s
        labels: {tier: demo}
        """,
    )
    spec = service.to_spec()
    assert spec.name == "hello"
    assert spec.image == "busybox:1.36"
    assert list(spec.entrypoint) == ["/bin/sh", "-c"]
    assert list(spec.args) == ["echo hi; sleep 1000"]
    assert dict(spec.env) == {"GREETING": "hello", "PORT": "8080"}
    assert spec.replicas == 3
    assert spec.stop_grace_period == 90.0
    assert dict(spec.labels) == {"tier": "demo"}


def test_string_command_and_entrypoint_are_shell_split(write: WriteManifest) -> None:
    service = load_one(
        write,
        """
        name: s
        image: busybox
        entrypoint: /bin/sh -c
        command: "echo 'two words' \\"and more\\""
        """,
    )
    assert service.entrypoint == ["/bin/sh", "-c"]
    assert service.command == ["echo", "two words", "and more"]


def test_numbers_in_argv_become_text(write: WriteManifest) -> None:
    assert load_one(write, "name: s\nimage: b\ncommand: [sleep, 1000]\n").command == ["sleep", "1000"]


def test_missing_image(write: WriteManifest) -> None:
    path = write("a.yaml", "name: web\n")
    assert problems_of(path) == [f"{path}: document 1: image: required"]


def test_missing_name_and_empty_image(write: WriteManifest) -> None:
    path = write("a.yaml", "image: ''\n")
    assert problems_of(path) == [
        f"{path}: document 1: name: required",
        f"{path}: document 1: image: must not be empty",
    ]


@pytest.mark.parametrize("name", ["Web", "web_1", "-web", "web-", "a" * 64, ""])
def test_name_must_be_a_dns_label(write: WriteManifest, name: str) -> None:
    path = write("a.yaml", f"name: '{name}'\nimage: busybox\n")
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}: document 1: name: {name!r} is not a DNS label")


def test_name_of_63_characters_is_accepted(write: WriteManifest) -> None:
    assert load_one(write, f"name: {'a' * 63}\nimage: b\n").name == "a" * 63


def test_negative_replicas(write: WriteManifest) -> None:
    path = write("bad.yaml", "name: web\nimage: busybox\nreplicas: -1\n")
    assert problems_of(path) == [f"{path}: document 1: replicas: must be greater than or equal to 0"]


def test_zero_replicas_is_allowed(write: WriteManifest) -> None:
    assert load_one(write, "name: web\nimage: b\nreplicas: 0\n").replicas == 0


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("replicas", "'2'", "must be an integer"),
        ("replicas", "2.5", "must be an integer"),
        ("replicas", "true", "must be an integer"),
        ("name", "[a]", "must be a string"),
        ("image", "{a: b}", "must be a string"),
        ("command", "{a: b}", "must be a list"),
        ("env", "7", "must be a mapping"),
        ("labels", "[a]", "must be a mapping"),
    ],
)
def test_wrong_types(write: WriteManifest, field: str, value: str, reason: str) -> None:
    fields = {"name": "web", "image": "busybox", field: value}
    path = write("a.yaml", "".join(f"{k}: {v}\n" for k, v in fields.items()))
    assert problems_of(path) == [f"{path}: document 1: {field}: {reason}"]


def test_wrong_item_types_name_the_item(write: WriteManifest) -> None:
    path = write("a.yaml", "name: web\nimage: b\ncommand: [echo, [x]]\nlabels: {tier: [x]}\n")
    assert problems_of(path) == [
        f"{path}: document 1: command[1]: must be a string",
        f"{path}: document 1: labels.tier: must be a string",
    ]


def test_yaml_booleans_must_be_quoted(write: WriteManifest) -> None:
    path = write("a.yaml", "name: web\nimage: b\nenv: {DEBUG: yes}\n")
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}: document 1: env.DEBUG: must be a string; quote")


def test_unknown_field_suggests_the_closest(write: WriteManifest) -> None:
    path = write("a.yaml", "name: web\nimgae: busybox\n")
    assert problems_of(path) == [
        f"{path}: document 1: image: required",
        f"{path}: document 1: imgae: unknown field; did you mean 'image'?",
    ]


def test_compose_names_point_to_ours(write: WriteManifest) -> None:
    path = write("a.yaml", "name: web\nimage: b\nenvironment: {A: b}\n")
    assert problems_of(path) == [f"{path}: document 1: environment: unknown field; did you mean 'env'?"]


def test_unknown_field_without_a_near_name(write: WriteManifest) -> None:
    path = write("a.yaml", "name: web\nimage: b\nzzz: 1\n")
    assert problems_of(path) == [f"{path}: document 1: zzz: unknown field"]


# A valid setting of every field (or part of one) the API carries, to check that
# what nothing honours yet is refused.
VALID_SAMPLES = {
    "resources": "resources: {reservations: {memory: 64Mi}}",
    "resources.limits": "resources: {limits: {memory: 64Mi}}",
    "ports": "ports: ['8080:80']",
    "volumes": "volumes: ['data:/data']",
    "volumes_from": "volumes_from: [other]",
    "links": "links: [other]",
    "restart": "restart: on-failure",
    "healthcheck": "healthcheck: {tcp: 80}",
    "stop_signal": "stop_signal: SIGINT",
    "placement": "placement: {max_per_node: 1}",
    "update": "update: {parallelism: 2}",
    "network": "network: host",
    "user": "user: '1000'",
    "working_dir": "working_dir: /srv",
    "read_only": "read_only: true",
    "cap_add": "cap_add: [NET_ADMIN]",
    "cap_drop": "cap_drop: [MKNOD]",
    "init": "init: true",
    "seccomp": "seccomp: unconfined",
    "devices": "devices: [/dev/fuse]",
}


@pytest.mark.parametrize("path", sorted(NOT_SUPPORTED_YET))
def test_fields_nothing_honours_yet_are_refused(write: WriteManifest, path: str) -> None:
    manifest = write("a.yaml", f"name: web\nimage: b\n{VALID_SAMPLES[path]}\n")
    assert problems_of(manifest) == [
        f"{manifest}: document 1: {path}: not supported yet: nothing in this version honours it; remove it"
    ]


@pytest.mark.parametrize("path", sorted(set(VALID_SAMPLES) - NOT_SUPPORTED_YET))
def test_fields_something_honours_are_accepted(write: WriteManifest, path: str) -> None:
    assert load_paths([write("a.yaml", f"name: web\nimage: b\n{VALID_SAMPLES[path]}\n")])


def test_every_refused_path_is_a_field() -> None:
    assert NOT_SUPPORTED_YET <= set(VALID_SAMPLES)
    assert {path.split(".")[0] for path in VALID_SAMPLES} == set(ServiceManifest.model_fields) - {
        "name", "image", "entrypoint", "command", "env", "replicas", "stop_grace_period", "labels",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("10s", 10.0), ("1m", 60.0), ("1m30s", 90.0), ("2h", 7200.0), ("1.5s", 1.5), (3, 3.0), (0.25, 0.25)],
)
def test_durations(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("10 sec", "'10 sec' is not a duration like 500ms, 10s or 1m30s, or a number of seconds"),
        ("'10'", "'10' is not a duration like 500ms, 10s or 1m30s, or a number of seconds"),
        ("-1", "must be greater than 0"),
        ("0s", "must be greater than 0"),
        (".inf", "must be finite"),
    ],
)
def test_bad_durations(write: WriteManifest, value: str, reason: str) -> None:
    path = write("a.yaml", f"name: web\nimage: b\nstop_grace_period: {value}\n")
    assert problems_of(path) == [f"{path}: document 1: stop_grace_period: {reason}"]


def test_env_as_list_or_mapping_is_the_same(write: WriteManifest) -> None:
    as_list = load_one(write, "name: a\nimage: b\nenv: [A=1, B=x=y, C=]\n")
    as_map = load_one(write, "name: a\nimage: b\nenv: {A: '1', B: x=y, C: ''}\n")
    assert as_list.env == as_map.env == {"A": "1", "B": "x=y", "C": ""}


def test_bad_env_entries(write: WriteManifest) -> None:
    path = write(
        "a.yaml",
        """
        name: a
        image: b
        env: [A=1, B]
        ---
        name: c
        image: b
        env: [A=1, A=2]
        ---
        name: d
        image: b
        env: {"X=Y": "1", "": "2"}
        """,
    )
    assert problems_of(path) == [
        f"{path}: document 1: env: entry 'B' is not a KEY=VALUE string",
        f"{path}: document 2: env: 'A' is set twice",
        f"{path}: document 3: env: variable name 'X=Y' must not contain '=' or NUL",
        f"{path}: document 3: env: variable name must not be empty",
    ]


def test_env_file_is_read_relative_to_the_manifest(write: WriteManifest) -> None:
    write("conf/base.env", "# shared\nA=from-base\nB=from-base\n\n  C = 'quoted value'\n")
    write("conf/more.env", "B=from-more\nD=\"x\"\n")
    manifest = write(
        "conf/svc.yaml",
        """
        name: a
        image: b
        env_file: [base.env, more.env]
        env: {A: from-env}
        """,
    )
    (service,) = load_paths([manifest])
    assert service.env == {"A": "from-env", "B": "from-more", "C": "quoted value", "D": "x"}
    assert "env_file" not in service.model_dump()


def test_env_file_may_be_a_single_string(write: WriteManifest) -> None:
    write("one.env", "A=1\n")
    assert load_one(write, "name: a\nimage: b\nenv_file: one.env\n").env == {"A": "1"}


def test_env_file_problems_name_file_and_line(write: WriteManifest, tmp_path: Path) -> None:
    write("bad.env", "A=1\nnot a pair\n")
    path = write("a.yaml", "name: a\nimage: b\nenv_file: [missing.env, bad.env]\n")
    assert problems_of(path) == [
        f"{path}: document 1: env_file[0]: cannot read {tmp_path / 'missing.env'}: No such file or directory",
        f"{path}: document 1: env_file[1]: {tmp_path / 'bad.env'} line 2: expected KEY=VALUE, got 'not a pair'",
    ]


def test_several_errors_across_documents_and_files_are_reported_at_once(write: WriteManifest) -> None:
    first = write("first.yaml", "name: ok\nimage: b\n---\nname: Bad\nimage: b\nreplicas: -2\n")
    second = write("second.yaml", "- not\n- a mapping\n---\nname: x\nreplicas: many\n")
    assert problems_of(first, second) == [
        f"{first}: document 2: name: 'Bad' is not a DNS label: use 1-63 lower-case letters, digits and '-', "
        "starting and ending with a letter or digit",
        f"{first}: document 2: replicas: must be greater than or equal to 0",
        f"{second}: document 1: expected a mapping of service fields, got a list",
        f"{second}: document 2: image: required",
        f"{second}: document 2: replicas: must be an integer",
    ]


def test_duplicate_names_across_files_name_both_places(write: WriteManifest) -> None:
    first = write("a.yaml", "name: web\nimage: b\n")
    second = write("b.yaml", "name: other\nimage: b\n---\nname: web\nimage: c\n")
    assert problems_of(first, second) == [
        f"{second}: document 2: name: service 'web' is also defined in {first} document 1"
    ]


def test_yaml_syntax_error_names_the_line(write: WriteManifest) -> None:
    path = write("a.yaml", "name: web\nimage: b\n  replicas: 2\n")
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}: line 3: invalid YAML: ")


def test_duplicate_yaml_keys_are_errors(write: WriteManifest) -> None:
    path = write("a.yaml", "name: web\nimage: b\nname: other\n")
    assert problems_of(path) == [
        f"{path}: line 3: invalid YAML: found duplicate key 'name' while constructing a mapping"
    ]


@pytest.mark.parametrize("nested", ["[" * 5000 + "]" * 5000, "\n" + "".join("  " * i + "a:\n" for i in range(1, 5000))])
def test_a_manifest_nested_5000_levels_deep_is_a_clear_yaml_error(write: WriteManifest, nested: str) -> None:
    path = write("deep.yaml", f"name: web\nimage: b\nlabels: {nested}\n")
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}: line ") and problem.endswith("invalid YAML: nested deeper than 64 levels")


def test_yaml_merge_keys_still_work(write: WriteManifest) -> None:
    service = load_one(write, "<<: {image: b, replicas: 3}\nname: a\nreplicas: 2\n")
    assert (service.image, service.replicas) == ("b", 2)


def test_directories_load_yaml_and_yml_in_name_order(write: WriteManifest, tmp_path: Path) -> None:
    write("dir/b.yml", "name: second\nimage: x\n")
    write("dir/a.yaml", "name: first\nimage: x\n---\n")
    write("dir/notes.txt", "not a manifest")
    assert [s.name for s in load_paths([tmp_path / "dir"])] == ["first", "second"]


def test_missing_path_and_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert problems_of(tmp_path / "nope.yaml", tmp_path / "empty") == [
        f"{tmp_path / 'nope.yaml'}: no such file or directory",
        f"{tmp_path / 'empty'}: directory has no *.yaml or *.yml files",
    ]


def test_file_without_documents_is_an_error(write: WriteManifest) -> None:
    path = write("a.yaml", "# nothing here\n---\n")
    assert problems_of(path) == [f"{path}: no services found"]


def test_same_file_twice_is_loaded_once(write: WriteManifest) -> None:
    path = write("a.yaml", "name: a\nimage: b\n")
    assert len(load_paths([path, path])) == 1


def test_problem_formatting() -> None:
    assert str(Problem("f.yaml", "bad", document=2, path="env.A")) == "f.yaml: document 2: env.A: bad"
    assert str(Problem("f.yaml", "invalid YAML: x", line=4)) == "f.yaml: line 4: invalid YAML: x"


def test_hello_example_loads() -> None:
    (hello,) = load_paths([REPO / "examples" / "hello.yaml"])
    assert hello.name == "hello"
    assert hello.image == "busybox"
    assert hello.replicas == 2
    assert hello.stop_grace_period == 2.0
    assert hello.env["GREETING"] == "hello"
    assert any("$GREETING" in arg and "hostname" in arg for arg in hello.command)


@pytest.mark.parametrize("path", sorted((REPO / "examples").rglob("*.yaml")), ids=lambda p: p.name)
def test_every_example_loads_as_it_is(path: Path) -> None:
    assert load_paths([path])


def test_the_reference_example_is_valid_with_every_field_uncommented(
    write: WriteManifest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commented-out fields of examples/reference.yaml are valid too, once something honours them."""
    text = (REPO / "examples" / "reference.yaml").read_text()
    head, marker, tail = text.partition("labels: {tier: demo}\n")
    uncommented = "".join(line.removeprefix("# ") for line in tail.splitlines(keepends=True))
    write("env-file/app.env", "A=1\n")
    path = write("reference.yaml", head + marker + uncommented)
    monkeypatch.setattr(loading, "NOT_SUPPORTED_YET", frozenset())
    (service,) = load_paths([path])
    # Every field is set to something other than its default (replicas: 1 is the default).
    assert set(service.model_dump(exclude_defaults=True)) == set(ServiceManifest.model_fields) - {"replicas"}
    assert [volume.type for volume in service.volumes] == ["volume", "volume", "tmpfs", "bind", "bind"]
