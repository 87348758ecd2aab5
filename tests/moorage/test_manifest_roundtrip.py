"""Property: any service the model accepts survives to_spec → wire → from_spec unchanged."""

from __future__ import annotations

from hypothesis import given, reject
from hypothesis import strategies as st
from pydantic import ValidationError

from moorage.manifest import ServiceManifest
from moorage.v1 import types_pb2

# Mostly values the model should accept, plus any unicode a YAML file can carry
# (no lone surrogates, but NUL, spaces and empty strings on purpose): the property
# is about whatever the model accepts, and it must reject what it cannot carry.
texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
words = st.from_regex(r"[A-Za-z0-9_./:@-]{1,20}", fullmatch=True)
names = st.one_of(st.from_regex(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True), texts)
keys = st.one_of(words, texts)
scalars = st.one_of(texts, words, st.integers(), st.floats(allow_nan=False, allow_infinity=False))
argv = st.one_of(st.lists(scalars, max_size=4), texts)
env = st.one_of(
    st.dictionaries(keys, scalars, max_size=4),
    st.lists(st.builds(lambda k, v: f"{k}={v}", words, texts), max_size=4, unique=True),
)
durations = st.one_of(
    st.floats(min_value=0, exclude_min=True, allow_infinity=False),
    st.integers(min_value=1),
    st.builds(lambda n, unit: f"{n}{unit}", st.integers(0, 10**6), st.sampled_from(["ms", "s", "m", "h", "m30s"])),
)

ports = st.one_of(st.integers(1, 65535), st.integers(0, 70000))
sizes = st.one_of(st.integers(-1, 2**40), st.builds(lambda n, u: f"{n}{u}", st.integers(0, 4096), st.sampled_from(["", "k", "Mi", "G", "gb"])))
cpus = st.one_of(st.floats(-1, 64, allow_nan=False), st.builds(lambda n: f"{n}m", st.integers(0, 64000)))
amounts = st.fixed_dictionaries({}, optional={"cpus": cpus, "memory": sizes})
resources = st.fixed_dictionaries(
    {}, optional={"reservations": amounts, "limits": st.fixed_dictionaries({}, optional={"cpus": cpus, "memory": sizes, "pids": st.integers(0, 2**20)})}
)
port_entries = st.one_of(
    st.builds(lambda h, c, p: f"{h}:{c}{p}", ports, ports, st.sampled_from(["", "/tcp", "/udp"])),
    st.fixed_dictionaries({"published": ports, "target": ports}, optional={"protocol": st.sampled_from(["tcp", "udp"])}),
)
paths = st.from_regex(r"/[a-z0-9/_.-]{0,12}", fullmatch=True)
volume_entries = st.one_of(
    paths,
    st.builds(lambda s, t, m: f"{s}:{t}{m}", st.one_of(words, paths), paths, st.sampled_from(["", ":ro", ":rw"])),
    st.fixed_dictionaries(
        {"target": paths},
        optional={"type": st.sampled_from(["volume", "bind", "tmpfs"]), "source": st.one_of(st.just(""), words, paths),
                  "read_only": st.booleans()},
    ),
)
service_names = st.from_regex(r"[a-z][a-z0-9]{0,5}", fullmatch=True)
link_entries = st.one_of(service_names, st.builds(lambda s, a: f"{s}:{a}", service_names, service_names))
durations_or_none = st.one_of(durations, st.none())
restart = st.one_of(
    st.sampled_from(["any", "always", "on-failure", "none", "no"]),
    st.fixed_dictionaries(
        {},
        optional={"condition": st.sampled_from(["any", "on-failure", "none"]), "max_attempts": st.integers(0, 10),
                  "delay": durations, "window": durations},
    ),
)
probe = st.one_of(
    st.fixed_dictionaries({"exec": argv}),
    st.fixed_dictionaries({"tcp": ports}),
    st.fixed_dictionaries({"http": st.fixed_dictionaries({"port": ports}, optional={"path": paths})}),
)
healthcheck = st.builds(
    lambda p, extra: {**p, **extra},
    probe,
    st.fixed_dictionaries({}, optional={"interval": durations, "timeout": durations, "retries": st.integers(0, 5),
                                        "start_period": durations}),
)
attributes = st.sampled_from(["node.id", "node.hostname", "node.labels.zone", "node.labels.disk"])
constraints = st.builds(lambda a, op, v: f"{a} {op} {v}", attributes, st.sampled_from(["==", "!="]), words.filter(lambda w: "," not in w))
placement = st.fixed_dictionaries(
    {}, optional={"constraints": st.lists(constraints, max_size=3), "spread": st.lists(attributes, max_size=2),
                  "max_per_node": st.integers(0, 5)},
)
update = st.fixed_dictionaries(
    {},
    optional={"parallelism": st.integers(0, 5), "delay": durations, "order": st.sampled_from(["stop-first", "start-first"]),
              "failure_action": st.sampled_from(["pause", "rollback", "continue"]), "monitor": durations,
              "max_failure_ratio": st.floats(0, 1)},
)
capabilities = st.lists(st.sampled_from(["NET_ADMIN", "cap_sys_ptrace", "MKNOD", "chown"]), max_size=3)

documents = st.fixed_dictionaries(
    {"name": names, "image": st.one_of(words, texts)},
    optional={
        "entrypoint": argv,
        "command": argv,
        "env": env,
        "replicas": st.integers(min_value=-1, max_value=2**32),
        "stop_grace_period": durations,
        "labels": st.dictionaries(keys, scalars, max_size=4),
    },
)

# The structured fields, on a valid name and image so that most examples are accepted.
structured = st.fixed_dictionaries(
    {"name": st.just("web"), "image": words},
    optional={
        "stop_signal": st.one_of(st.sampled_from(["TERM", "SIGINT", "quit"]), st.integers(1, 31)),
        "resources": resources,
        "ports": st.lists(port_entries, max_size=3),
        "volumes": st.lists(volume_entries, max_size=3),
        "volumes_from": st.lists(service_names, max_size=2),
        "links": st.lists(link_entries, max_size=3),
        "restart": restart,
        "healthcheck": healthcheck,
        "placement": placement,
        "update": update,
        "network": st.sampled_from(["bridge", "host", "none"]),
        "user": st.one_of(words, st.just("1000:1000")),
        "working_dir": paths,
        "read_only": st.booleans(),
        "cap_add": capabilities,
        "cap_drop": capabilities,
        "init": st.booleans(),
        "seccomp": st.sampled_from(["default", "unconfined"]),
        "devices": st.lists(st.one_of(
            st.sampled_from(["/dev/fuse", "/dev/sdb:/dev/xvdb", "/dev/sdb:wr", "/dev/kvm:/dev/kvm:rwm", "/dev/x:"]),
            st.fixed_dictionaries({"source": paths}, optional={"target": paths, "permissions": st.sampled_from(
                ["r", "mw", "rwm", "rr", ""])})), max_size=3),
    },
)


@given(st.one_of(documents, structured))
def test_accepted_manifests_round_trip_through_the_spec(document: dict[str, object]) -> None:
    try:
        service = ServiceManifest.model_validate(document)
    except ValidationError:
        reject()
    wire = types_pb2.ServiceSpec.FromString(service.to_spec().SerializeToString())
    assert ServiceManifest.from_spec(wire) == service
    assert wire == service.to_spec()
