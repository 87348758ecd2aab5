"""Every manifest field beyond the basics: what it accepts, what it maps to, and each way it can be wrong.

These check the model, so the refusal of fields nothing honours yet is switched
off here (tests/moorage/test_manifest.py checks that refusal).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from moorage.manifest import ManifestError, ServiceManifest, check_references, load, load_paths, loading
from moorage.v1 import types_pb2
from tests.moorage.conftest import WriteManifest

MiB = 2**20


@pytest.fixture(autouse=True)
def every_field_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loading, "NOT_SUPPORTED_YET", frozenset())


def spec_of(write: WriteManifest, body: str) -> types_pb2.ServiceSpec:
    (service,) = load_paths([write("svc.yaml", "name: web\nimage: busybox\n" + body)])
    assert ServiceManifest.from_spec(service.to_spec()) == service
    return service.to_spec()


def problems(write: WriteManifest, body: str) -> list[str]:
    path = write("svc.yaml", "name: web\nimage: busybox\n" + body)
    with pytest.raises(ManifestError) as caught:
        load_paths([path])
    return [f"{p.path}: {p.reason}" for p in caught.value.problems]


def test_resources_reservations_and_limits(write: WriteManifest) -> None:
    spec = spec_of(
        write,
        "resources:\n  reservations: {cpus: 0.5, memory: 256Mi}\n  limits: {cpus: 1500m, memory: 1G, pids: 100}\n",
    )
    assert (spec.resources.reservations.cpu_millis, spec.resources.reservations.memory_bytes) == (500, 256 * MiB)
    assert (spec.resources.limits.cpu_millis, spec.resources.limits.memory_bytes) == (1500, 1024 * MiB)
    assert spec.resources.pids_limit == 100


@pytest.mark.parametrize(("text", "size"), [("512", 512), ("512m", 512 * MiB), ("1.5GiB", 1536 * MiB), ("64kb", 65536)])
def test_memory_sizes(write: WriteManifest, text: str, size: int) -> None:
    assert spec_of(write, f"resources: {{limits: {{memory: {text}}}}}\n").resources.limits.memory_bytes == size


def test_ports_short_and_long_forms(write: WriteManifest) -> None:
    spec = spec_of(write, "ports: ['8080:80', '53:53/udp', {published: 9000, target: 90}]\n")
    assert [(p.host_port, p.container_port, p.protocol) for p in spec.ports] == [
        (8080, 80, "tcp"), (53, 53, "udp"), (9000, 90, "tcp"),
    ]  # fmt: skip


def test_volumes_named_bind_anonymous_tmpfs_and_relative(write: WriteManifest, tmp_path: Path) -> None:
    spec = spec_of(
        write,
        "volumes: ['data:/var/lib/db', '/srv/conf:/etc/app:ro', './rel:/rel:rw', '/cache',"
        " {type: tmpfs, target: /tmp}, {source: logs, target: /logs, read_only: true}]\n",
    )
    M = types_pb2.Mount
    assert [(m.type, m.source, m.target, m.read_only) for m in spec.mounts] == [
        (M.TYPE_VOLUME, "data", "/var/lib/db", False),
        (M.TYPE_BIND, "/srv/conf", "/etc/app", True),
        (M.TYPE_BIND, str(tmp_path / "rel"), "/rel", False),
        (M.TYPE_VOLUME, "", "/cache", False),
        (M.TYPE_TMPFS, "", "/tmp", False),
        (M.TYPE_VOLUME, "logs", "/logs", True),
    ]


def test_links_with_aliases_and_volumes_from(write: WriteManifest) -> None:
    spec = spec_of(write, "links: [db, 'cache:kv', {service: queue, alias: mq}]\nvolumes_from: [data]\n")
    assert [(link.service, link.alias) for link in spec.links] == [("db", ""), ("cache", "kv"), ("queue", "mq")]
    assert list(spec.volumes_from) == ["data"]


@pytest.mark.parametrize(
    ("text", "condition"),
    [("on-failure", "CONDITION_ON_FAILURE"), ("always", "CONDITION_ANY"), ("'no'", "CONDITION_NONE"),
     ("no", "CONDITION_NONE"), ("any", "CONDITION_ANY")],
)
def test_restart_short_forms(write: WriteManifest, text: str, condition: str) -> None:
    assert spec_of(write, f"restart: {text}\n").restart.condition == types_pb2.RestartPolicy.Condition.Value(condition)


def test_restart_long_form(write: WriteManifest) -> None:
    restart = spec_of(write, "restart: {condition: on-failure, max_attempts: 3, delay: 2s, window: 1m}\n").restart
    assert (restart.max_attempts, restart.delay, restart.window) == (3, 2.0, 60.0)


def test_healthchecks(write: WriteManifest) -> None:
    health = spec_of(
        write, "healthcheck: {exec: test -f /ok, interval: 5s, timeout: 1s, retries: 3, start_period: 30s}\n"
    ).healthcheck
    assert list(health.exec.command) == ["test", "-f", "/ok"]
    assert (health.interval, health.timeout, health.retries, health.start_period) == (5.0, 1.0, 3, 30.0)
    assert spec_of(write, "healthcheck: {tcp: 80}\n").healthcheck.tcp.port == 80
    http = spec_of(write, "healthcheck: {http: {port: 8080, path: /healthz}}\n").healthcheck.http
    assert (http.port, http.path) == (8080, "/healthz")


@pytest.mark.parametrize(("text", "name"), [("TERM", "SIGTERM"), ("sigint", "SIGINT"), ("3", "SIGQUIT")])
def test_stop_signal_names(write: WriteManifest, text: str, name: str) -> None:
    assert spec_of(write, f"stop_signal: {text}\n").stop_signal == name


def test_placement(write: WriteManifest) -> None:
    placement = spec_of(
        write,
        "placement:\n  constraints: ['node.labels.zone == a', 'node.hostname != h2', 'node.labels.disk in (ssd, nvme)']\n"
        "  spread: node.labels.zone\n  max_per_node: 2\n",
    ).placement
    assert list(placement.constraints)[1] == "node.hostname != h2"
    assert (list(placement.spread), placement.max_replicas_per_node) == (["node.labels.zone"], 2)


def test_update_policy(write: WriteManifest) -> None:
    update = spec_of(
        write,
        "update: {parallelism: 2, delay: 5s, order: start-first, failure_action: rollback, monitor: 10s,"
        " max_failure_ratio: 0.25}\n",
    ).update
    U = types_pb2.UpdatePolicy
    assert (update.parallelism, update.delay, update.order, update.failure_action, update.monitor) == (
        2, 5.0, U.ORDER_START_FIRST, U.FAILURE_ACTION_ROLLBACK, 10.0,
    )  # fmt: skip
    assert update.max_failure_ratio == 0.25


def test_process_and_network_options(write: WriteManifest) -> None:
    spec = spec_of(
        write,
        "network: host\nuser: '1000:1000'\nworking_dir: /app\nread_only: true\ncap_add: [net_admin]\n"
        "cap_drop: [CAP_MKNOD]\ninit: true\n",
    )
    assert spec.network == types_pb2.NETWORK_MODE_HOST
    assert (spec.user, spec.working_dir, spec.read_only_rootfs, spec.init) == ("1000:1000", "/app", True, True)
    assert (list(spec.cap_add), list(spec.cap_drop)) == (["NET_ADMIN"], ["MKNOD"])


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("resources: {limits: {memory: -1}}", "resources.limits.memory: must not be negative"),
        ("resources: {limits: {memory: -5M}}", "resources.limits.memory: '-5M' must not be negative"),
        ("resources: {limits: {memory: lots}}", "resources.limits.memory: 'lots' is not a size like 512Mi, 1G or a number of bytes"),
        ("resources: {limits: {memory: 0}}", "resources.limits.memory: must be a whole number of bytes greater than 0 (leave the field out for none)"),
        ("resources: {reservations: {cpus: -1}}", "resources.reservations.cpus: must not be negative"),
        ("resources: {reservations: {cpus: fast}}", "resources.reservations.cpus: 'fast' is not a number of CPUs like 0.5 or 500m"),
        ("resources: {reservations: {memory: 2G}, limits: {memory: 1G}}", "resources: reservations.memory (2147483648) is more than limits.memory (1073741824)"),
        ("resources: {limits: {cpu: 1}}", "resources.limits.cpu: unknown field; did you mean 'cpus'?"),
        ("resources: {limits: {pids: 0}}", "resources.limits.pids: must be greater than or equal to 1"),
        ("ports: ['80']", "ports[0]: '80' is not HOST:CONTAINER[/tcp|udp], e.g. \"8080:80\" or \"53:53/udp\""),
        ("ports: [80]", "ports[0]: 80 names no host port: write HOST:CONTAINER, e.g. \"80:80\""),
        ("ports: ['8080:80/sctp']", "ports[0].protocol: must be 'tcp' or 'udp'"),
        ("ports: ['70000:80']", "ports[0].published: must be less than or equal to 65535"),
        ("ports: ['http:80']", "ports[0]: 'http:80' is not HOST:CONTAINER[/tcp|udp], e.g. \"8080:80\" or \"53:53/udp\""),
        ("ports: ['8080:80', '8080:81']", "ports: host port '8080/tcp' appears more than once"),
        ("ports: [{published: 1, target: 2, proto: udp}]", "ports[0].proto: unknown field; did you mean 'protocol'?"),
        ("volumes: ['data:relative']", "volumes[0].target: 'relative' must be an absolute path"),
        ("volumes: ['a:/b:c:d']", "volumes[0]: 'a:/b:c:d' is not SOURCE:TARGET[:ro|rw] or TARGET"),
        ("volumes: ['data:/x:rx']", "volumes[0]: 'data:/x:rx': the mode must be ro or rw, got 'rx'"),
        ("volumes: [{type: tmpfs, source: x, target: /t}]", "volumes[0]: a tmpfs mount has no source"),
        ("volumes: [{type: bind, source: rel, target: /x}]", "volumes[0]: a bind mount needs an absolute source path, got 'rel'"),
        ("volumes: ['bad name:/x']", "volumes[0]: 'bad name' is not a volume name (letters, digits, '_', '.', '-')"),
        ("volumes: ['a:/x', 'b:/x']", "volumes: mount target '/x' appears more than once"),
        ("volumes_from: [web]", "volumes_from: a service cannot mount its own volumes"),
        ("links: [Db]", "links[0].service: 'Db' is not a DNS label: use 1-63 lower-case letters, digits and '-', starting and ending with a letter or digit"),
        ("links: [web]", "links: a service cannot link to itself"),
        ("links: [db, 'cache:db']", "links: link name 'db' appears more than once"),
        ("restart: sometimes", "restart: 'sometimes' is not one of any, on-failure, none (or always, no)"),
        ("restart: {condition: maybe}", "restart.condition: must be 'any', 'on-failure' or 'none'"),
        ("restart: {max_attempts: -1}", "restart.max_attempts: must be greater than or equal to 0"),
        ("restart_policy: {condition: any}", "restart_policy: unknown field; did you mean 'restart'?"),
        ("healthcheck: {interval: 5s}", "healthcheck: needs exactly one of exec, tcp, http (got none)"),
        ("healthcheck: {tcp: 80, http: {port: 80}}", "healthcheck: needs exactly one of exec, tcp, http (got tcp, http)"),
        ("healthcheck: {exec: []}", "healthcheck.exec: must not be empty"),
        ("healthcheck: {tcp: 80, retries: 0}", "healthcheck.retries: must be greater than or equal to 1"),
        ("healthcheck: {tcp: 80, interval: soon}", "healthcheck.interval: 'soon' is not a duration like 500ms, 10s or 1m30s, or a number of seconds"),
        ("healthcheck: {test: [true]}", "healthcheck.test: unknown field; did you mean 'exec'?"),
        ("healthcheck: {http: {port: 80, path: healthz}}", "healthcheck.http.path: 'healthz' must be an absolute path"),
        ("stop_signal: SIGFOO", "stop_signal: 'SIGFOO' is not a signal name like SIGTERM, SIGINT or SIGQUIT"),
        ("placement: {constraints: ['zone == a']}", "placement.constraints[0]: constraint 'zone == a': 'zone' is not a node attribute (node.id, node.hostname or node.labels.KEY)"),
        ("placement: {constraints: ['node.labels.disk in ssd']}", "placement.constraints[0]: constraint 'node.labels.disk in ssd': 'in' needs a parenthesised list, e.g. (ssd, nvme)"),
        ("placement: {spread: [zone]}", "placement.spread[0]: 'zone' is not a node attribute (node.id, node.hostname or node.labels.KEY)"),
        ("placement: {max_per_node: -1}", "placement.max_per_node: must be greater than or equal to 0"),
        ("placement: {max_replicas_per_node: 1}", "placement.max_replicas_per_node: unknown field; did you mean 'max_per_node'?"),
        ("update: {order: sideways}", "update.order: must be 'stop-first' or 'start-first'"),
        ("update: {failure_action: explode}", "update.failure_action: must be 'pause', 'rollback' or 'continue'"),
        ("update: {max_failure_ratio: 1.5}", "update.max_failure_ratio: must be less than or equal to 1"),
        ("update: {parallelism: 0}", "update.parallelism: must be greater than or equal to 1"),
        ("network: overlay", "network: must be 'bridge', 'host' or 'none'"),
        ("network_mode: host", "network_mode: unknown field; did you mean 'network'?"),
        ("ports: ['80:80']\nnetwork: host", "network: network 'host' cannot publish ports; use bridge or drop ports"),
        ("user: ''", "user: '' must be a non-empty string without whitespace"),
        ("working_dir: app", "working_dir: 'app' must be an absolute path"),
        ("read_only: maybe", "read_only: must be true or false"),
        ("init: 1", "init: must be true or false"),
        ("cap_add: [FLY]", "cap_add[0]: 'FLY' is not a Linux capability like NET_ADMIN or SYS_PTRACE"),
        ("deploy: {replicas: 2}", "deploy: unknown field; compose's deploy section maps to the top-level replicas, resources, placement, update and restart"),
    ],
)
def test_malformed_fields(write: WriteManifest, body: str, expected: str) -> None:
    assert problems(write, body + "\n") == [expected]


def test_links_and_volumes_from_must_name_known_services(write: WriteManifest) -> None:
    path = write("app.yaml", "name: web\nimage: b\nlinks: [db, cache]\nvolumes_from: [data]\n---\nname: db\nimage: b\n")
    loaded = load([path])
    check_references(loaded, existing={"data", "cache"})
    with pytest.raises(ManifestError) as caught:
        check_references(loaded, existing=set())
    assert [str(p) for p in caught.value.problems] == [
        f"{path}: document 1: links[1]: service 'cache' is neither in these manifests nor in the cluster",
        f"{path}: document 1: volumes_from[0]: service 'data' is neither in these manifests nor in the cluster",
    ]
