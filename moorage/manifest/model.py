"""The manifest model: what a user writes about one service, and its ``ServiceSpec``.

``ServiceManifest`` maps one-to-one onto the API's ``ServiceSpec``:
``to_spec``/``from_spec`` round-trip losslessly (a property test holds them to
it), so `moor diff` and "unchanged" compare like with like. Short forms people
know from compose (``"8080:80/udp"``, ``"data:/var/lib/db:ro"``, ``"db:database"``,
``restart: on-failure``) are parsed into the long forms when read.

``ServiceDocument`` is what a file holds: a manifest plus ``env_file``s to read.
Relative bind-mount sources are resolved against ``context={"base_dir": ...}``.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationInfo,
    field_validator,
    model_validator,
)

from moorage.manifest.fields import (
    UINT32_MAX,
    AbsolutePath,
    Argv,
    Capability,
    Cpus,
    Duration,
    EnvMap,
    Image,
    LabelMap,
    Memory,
    Name,
    PortNumber,
    Signal,
    Text,
    Word,
    OneOrMany,
    check_env_key,
    no_nul,
)
from moorage.manifest.units import INT64_MAX
from moorage.v1 import types_pb2
from scheduler.constraints import parse_attribute, parse_constraint

DEFAULT_STOP_GRACE_PERIOD = 10.0

_VOLUME_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
StrictBool = Annotated[bool, Strict()]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- resources ------------------------------------------------------------------


class ResourceAmounts(_Model):
    """CPUs (``0.5`` or ``"500m"``) and memory (``"512Mi"``, ``"1G"`` or bytes)."""

    cpus: Cpus | None = None
    memory: Memory | None = None

    def to_proto(self) -> types_pb2.Resources:
        return types_pb2.Resources(cpu_millis=round((self.cpus or 0) * 1000), memory_bytes=self.memory or 0)

    @staticmethod
    def fields_of(proto: types_pb2.Resources) -> dict[str, object]:
        return {"cpus": proto.cpu_millis / 1000 or None, "memory": proto.memory_bytes or None}


class ResourceLimits(ResourceAmounts):
    pids: Annotated[int, Strict(), Field(ge=1, le=INT64_MAX)] | None = None


class Resources(_Model):
    """``reservations`` are set aside by the scheduler; ``limits`` are enforced by cgroups."""

    reservations: ResourceAmounts | None = None
    limits: ResourceLimits | None = None

    @model_validator(mode="after")
    def _reservations_fit_limits(self) -> Resources:
        if self.reservations is None or self.limits is None:
            return self
        for field in ("cpus", "memory"):
            reserved, limit = getattr(self.reservations, field), getattr(self.limits, field)
            if reserved is not None and limit is not None and reserved > limit:
                raise ValueError(f"reservations.{field} ({reserved}) is more than limits.{field} ({limit})")
        return self

    def to_proto(self) -> types_pb2.ResourceRequirements:
        proto = types_pb2.ResourceRequirements(pids_limit=self.limits.pids or 0 if self.limits else 0)
        if self.reservations is not None:
            proto.reservations.CopyFrom(self.reservations.to_proto())
        if self.limits is not None:
            proto.limits.CopyFrom(self.limits.to_proto())
        return proto

    @staticmethod
    def fields_of(proto: types_pb2.ResourceRequirements) -> dict[str, object]:
        fields: dict[str, object] = {}
        if proto.HasField("reservations"):
            fields["reservations"] = ResourceAmounts.fields_of(proto.reservations)
        if proto.HasField("limits") or proto.pids_limit:
            fields["limits"] = {**ResourceAmounts.fields_of(proto.limits), "pids": proto.pids_limit or None}
        return fields


# --- ports, volumes, links ----------------------------------------------------------


class Port(_Model):
    """``"8080:80"`` or ``"8080:80/udp"``: host port ``published`` reaches container port ``target``."""

    published: PortNumber
    target: PortNumber
    protocol: Literal["tcp", "udp"] = "tcp"

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, value: object) -> object:
        if isinstance(value, int) and not isinstance(value, bool):
            raise ValueError(f"{value} names no host port: write HOST:CONTAINER, e.g. \"{value}:{value}\"")
        if not isinstance(value, str):
            return value
        ports, _, protocol = value.partition("/")
        parts = ports.split(":")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise ValueError(f"{value!r} is not HOST:CONTAINER[/tcp|udp], e.g. \"8080:80\" or \"53:53/udp\"")
        return {"published": int(parts[0]), "target": int(parts[1]), "protocol": protocol or "tcp"}


class Volume(_Model):
    """A mount: ``"data:/var/lib/db"`` (named volume), ``"/srv:/srv:ro"`` or ``"./conf:/etc/app"`` (bind),
    ``"/cache"`` (anonymous volume), or the long form with ``type``, ``source``, ``target``, ``read_only``."""

    type: Literal["volume", "bind", "tmpfs"] = "volume"
    source: str = ""
    target: AbsolutePath
    read_only: StrictBool = False

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, str):
            value = _parse_volume(value)
        if isinstance(value, dict) and isinstance(value.get("source"), str):
            source = value["source"]
            if "type" not in value:
                value = {**value, "type": "bind" if source.startswith(("/", ".")) else "volume"}
            if value["type"] == "bind" and source.startswith("."):
                base = (info.context or {}).get("base_dir")
                if base is None:
                    raise ValueError(f"relative bind source {source!r} needs a manifest file to be relative to")
                value = {**value, "source": str((Path(base) / source).resolve())}
        return value

    @model_validator(mode="after")
    def _source_fits_type(self) -> Volume:
        no_nul(self.source)
        if self.type == "bind" and not self.source.startswith("/"):
            raise ValueError(f"a bind mount needs an absolute source path, got {self.source!r}")
        if self.type == "volume" and self.source and not _VOLUME_NAME_RE.match(self.source):
            raise ValueError(f"{self.source!r} is not a volume name (letters, digits, '_', '.', '-')")
        if self.type == "tmpfs" and self.source:
            raise ValueError("a tmpfs mount has no source")
        return self

    def to_proto(self) -> types_pb2.Mount:
        kind = {"volume": types_pb2.Mount.TYPE_VOLUME, "bind": types_pb2.Mount.TYPE_BIND,
                "tmpfs": types_pb2.Mount.TYPE_TMPFS}[self.type]  # fmt: skip
        return types_pb2.Mount(type=kind, source=self.source, target=self.target, read_only=self.read_only)

    @staticmethod
    def fields_of(proto: types_pb2.Mount) -> dict[str, object]:
        kind = types_pb2.Mount.Type.Name(proto.type).removeprefix("TYPE_").lower()
        return {"type": kind, "source": proto.source, "target": proto.target, "read_only": proto.read_only}


_DEVICE_ACCESS = "rwm"
MAX_DEVICES = 64


def _device_access(value: str) -> str:
    if not value or set(value) - set(_DEVICE_ACCESS) or len(set(value)) != len(value):
        raise ValueError(f"{value!r}: permissions are r, w and m (mknod), each at most once")
    return "".join(c for c in _DEVICE_ACCESS if c in value)  # one spelling per set: "wr" reads back "rw"


class Device(_Model):
    """A host device the service's containers may use, as ``docker run --device`` gives it:
    ``"/dev/fuse"``, ``"/dev/sdb:/dev/xvdb"``, ``"/dev/sdb:/dev/xvdb:r"`` (compose's
    ``HOST[:CONTAINER][:PERMISSIONS]``), or the long form with ``source``, ``target``,
    ``permissions`` (r, w, m = mknod; all three by default)."""

    source: AbsolutePath
    target: AbsolutePath | None = None  # None: the same path as on the host
    permissions: Annotated[str, Strict(), AfterValidator(_device_access)] = _DEVICE_ACCESS

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        parts = value.split(":")
        if len(parts) > 3 or not parts[0]:
            raise ValueError(f"{value!r} is not HOST[:CONTAINER][:PERMISSIONS]")
        fields: dict[str, object] = {"source": parts[0]}
        rest = parts[1:]
        if rest and not rest[-1].startswith("/"):  # "/dev/sdb:rw": the permissions, as docker reads it
            fields["permissions"] = rest.pop()
        if rest:
            fields["target"] = rest[0]
        if len(rest) > 1:
            raise ValueError(f"{value!r} is not HOST[:CONTAINER][:PERMISSIONS]")
        return fields

    @model_validator(mode="after")
    def _under_dev(self) -> Device:
        where = posixpath.normpath(self.target or self.source)
        if not where.startswith("/dev/"):
            raise ValueError(f"the device's path in the container must be under /dev/, not {where!r}")
        return self

    def to_proto(self) -> types_pb2.Device:
        return types_pb2.Device(host_path=self.source, container_path=self.target or "", permissions=self.permissions)

    @staticmethod
    def fields_of(proto: types_pb2.Device) -> dict[str, object]:
        return {"source": proto.host_path, "target": proto.container_path or None,
                "permissions": proto.permissions or _DEVICE_ACCESS}


def _parse_volume(text: str) -> dict[str, object]:
    parts = text.split(":")
    if len(parts) == 1:
        return {"type": "volume", "target": parts[0]}
    if len(parts) > 3 or not parts[0]:
        raise ValueError(f"{text!r} is not SOURCE:TARGET[:ro|rw] or TARGET")
    fields: dict[str, object] = {"source": parts[0], "target": parts[1]}
    if len(parts) == 3:
        if parts[2] not in ("ro", "rw"):
            raise ValueError(f"{text!r}: the mode must be ro or rw, got {parts[2]!r}")
        fields["read_only"] = parts[2] == "ro"
    return fields


class Link(_Model):
    """``"db"`` or ``"db:database"``: service ``db`` resolves as ``db`` (and ``database``) in /etc/hosts."""

    service: Name
    alias: Name | None = None

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, value: object) -> object:
        if isinstance(value, str):
            service, sep, alias = value.partition(":")
            return {"service": service, "alias": alias} if sep else {"service": service}
        return value

    @property
    def names(self) -> tuple[str, ...]:
        return (self.service, self.alias) if self.alias else (self.service,)


# --- restart, health, placement, update -----------------------------------------------

_RESTART_WORDS = {"any": "any", "always": "any", "on-failure": "on-failure", "none": "none", "no": "none"}
_CONDITIONS = {"any": types_pb2.RestartPolicy.CONDITION_ANY, "on-failure": types_pb2.RestartPolicy.CONDITION_ON_FAILURE,
               "none": types_pb2.RestartPolicy.CONDITION_NONE}  # fmt: skip


class Restart(_Model):
    """When a task's container exits: restart on ``any`` exit, ``on-failure`` only, or ``none``."""

    condition: Literal["any", "on-failure", "none"] = "any"
    max_attempts: Annotated[int, Strict(), Field(ge=0, le=UINT32_MAX)] = 0
    delay: Duration | None = None
    window: Duration | None = None

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, value: object) -> object:
        if value is False:  # YAML reads a bare `no` as false
            return {"condition": "none"}
        if isinstance(value, str):
            if value not in _RESTART_WORDS:
                raise ValueError(f"{value!r} is not one of any, on-failure, none (or always, no)")
            return {"condition": _RESTART_WORDS[value]}
        return value

    def to_proto(self) -> types_pb2.RestartPolicy:
        return types_pb2.RestartPolicy(condition=_CONDITIONS[self.condition], max_attempts=self.max_attempts,
                                       delay=self.delay or 0, window=self.window or 0)  # fmt: skip

    @staticmethod
    def fields_of(proto: types_pb2.RestartPolicy) -> dict[str, object]:
        condition = {v: k for k, v in _CONDITIONS.items()}.get(proto.condition, "any")
        return {"condition": condition, "max_attempts": proto.max_attempts,
                "delay": proto.delay or None, "window": proto.window or None}  # fmt: skip


class HttpProbe(_Model):
    port: PortNumber
    path: AbsolutePath = "/"


class Healthcheck(_Model):
    """Exactly one probe: ``exec`` (a command, healthy on exit 0), ``tcp`` (a port accepts) or ``http`` (2xx/3xx)."""

    exec: Annotated[Argv, Field(min_length=1)] | None = None
    tcp: PortNumber | None = None
    http: HttpProbe | None = None
    interval: Duration | None = None
    timeout: Duration | None = None
    retries: Annotated[int, Strict(), Field(ge=1, le=UINT32_MAX)] | None = None
    start_period: Duration | None = None

    @model_validator(mode="after")
    def _one_probe(self) -> Healthcheck:
        probes = [name for name in ("exec", "tcp", "http") if getattr(self, name) is not None]
        if len(probes) != 1:
            raise ValueError(f"needs exactly one of exec, tcp, http (got {', '.join(probes) or 'none'})")
        return self

    def to_proto(self) -> types_pb2.HealthCheck:
        proto = types_pb2.HealthCheck(interval=self.interval or 0, timeout=self.timeout or 0,
                                      retries=self.retries or 0, start_period=self.start_period or 0)  # fmt: skip
        if self.exec is not None:
            proto.exec.command.extend(self.exec)
        elif self.tcp is not None:
            proto.tcp.port = self.tcp
        elif self.http is not None:
            proto.http.CopyFrom(types_pb2.HttpProbe(port=self.http.port, path=self.http.path))
        return proto

    @staticmethod
    def fields_of(proto: types_pb2.HealthCheck) -> dict[str, object]:
        fields: dict[str, object] = {
            "interval": proto.interval or None,
            "timeout": proto.timeout or None,
            "retries": proto.retries or None,
            "start_period": proto.start_period or None,
        }
        probe = proto.WhichOneof("probe")
        if probe == "exec":
            fields["exec"] = list(proto.exec.command)
        elif probe == "tcp":
            fields["tcp"] = proto.tcp.port
        elif probe == "http":
            fields["http"] = {"port": proto.http.port, "path": proto.http.path}
        return fields


def _check_constraint(text: str) -> str:
    parse_constraint(text)  # the scheduler's own grammar, so what is accepted here is placeable
    return text.strip()


def _check_attribute(text: str) -> str:
    parse_attribute(text)
    return text.strip()


Constraint = Annotated[str, Strict(), BeforeValidator(lambda v: _check_constraint(v) if isinstance(v, str) else v)]
Attribute = Annotated[str, Strict(), BeforeValidator(lambda v: _check_attribute(v) if isinstance(v, str) else v)]


class Placement(_Model):
    """Where tasks may run (``constraints``), what to spread them over, and at most how many per node."""

    constraints: Annotated[list[Constraint], OneOrMany] = Field(default_factory=list)
    spread: Annotated[list[Attribute], OneOrMany] = Field(default_factory=list)
    max_per_node: Annotated[int, Strict(), Field(ge=0, le=UINT32_MAX)] = 0

    def to_proto(self) -> types_pb2.Placement:
        return types_pb2.Placement(constraints=self.constraints, spread=self.spread,
                                   max_replicas_per_node=self.max_per_node)  # fmt: skip

    @staticmethod
    def fields_of(proto: types_pb2.Placement) -> dict[str, object]:
        return {"constraints": list(proto.constraints), "spread": list(proto.spread),
                "max_per_node": proto.max_replicas_per_node}  # fmt: skip


_ORDERS = {"stop-first": types_pb2.UpdatePolicy.ORDER_STOP_FIRST,
           "start-first": types_pb2.UpdatePolicy.ORDER_START_FIRST}  # fmt: skip
_FAILURE_ACTIONS = {"pause": types_pb2.UpdatePolicy.FAILURE_ACTION_PAUSE,
                    "rollback": types_pb2.UpdatePolicy.FAILURE_ACTION_ROLLBACK,
                    "continue": types_pb2.UpdatePolicy.FAILURE_ACTION_CONTINUE}  # fmt: skip


class Update(_Model):
    """How a changed service replaces its tasks: ``parallelism`` at a time, ``delay`` between batches,
    each new task watched for ``monitor``; past ``max_failure_ratio`` failures, ``failure_action``."""

    parallelism: Annotated[int, Strict(), Field(ge=1, le=UINT32_MAX)] = 1
    delay: Duration | None = None
    order: Literal["stop-first", "start-first"] | None = None
    failure_action: Literal["pause", "rollback", "continue"] | None = None
    monitor: Duration | None = None
    max_failure_ratio: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] = 0.0

    def to_proto(self) -> types_pb2.UpdatePolicy:
        return types_pb2.UpdatePolicy(
            parallelism=self.parallelism,
            delay=self.delay or 0,
            order=_ORDERS[self.order] if self.order else types_pb2.UpdatePolicy.ORDER_UNSPECIFIED,
            failure_action=_FAILURE_ACTIONS[self.failure_action] if self.failure_action else 0,
            monitor=self.monitor or 0,
            max_failure_ratio=self.max_failure_ratio,
        )

    @staticmethod
    def fields_of(proto: types_pb2.UpdatePolicy) -> dict[str, object]:
        return {
            "parallelism": proto.parallelism or 1,
            "delay": proto.delay or None,
            "order": {v: k for k, v in _ORDERS.items()}.get(proto.order),
            "failure_action": {v: k for k, v in _FAILURE_ACTIONS.items()}.get(proto.failure_action),
            "monitor": proto.monitor or None,
            "max_failure_ratio": proto.max_failure_ratio,
        }


_NETWORKS = {"bridge": types_pb2.NETWORK_MODE_BRIDGE, "host": types_pb2.NETWORK_MODE_HOST,
             "none": types_pb2.NETWORK_MODE_NONE}  # fmt: skip
_SECCOMP = {"default": types_pb2.SECCOMP_PROFILE_DEFAULT, "unconfined": types_pb2.SECCOMP_PROFILE_UNCONFINED}


# --- the service ----------------------------------------------------------------------


class ServiceManifest(_Model):
    """One service, resolved and valid; maps one-to-one onto ``ServiceSpec``.

    ``entrypoint`` and ``command`` have Docker/compose meaning: they replace the
    image's Entrypoint and Cmd when non-empty. ``command`` travels as
    ``ServiceSpec.args``; ``read_only`` as ``read_only_rootfs``.
    """

    name: Name
    image: Image
    entrypoint: Argv = Field(default_factory=list)
    command: Argv = Field(default_factory=list)
    env: EnvMap = Field(default_factory=dict)
    replicas: Annotated[int, Strict(), Field(ge=0, le=UINT32_MAX)] = 1
    stop_grace_period: Duration = DEFAULT_STOP_GRACE_PERIOD
    stop_signal: Signal | None = None
    labels: LabelMap = Field(default_factory=dict)
    resources: Resources | None = None
    ports: list[Port] = Field(default_factory=list)
    volumes: list[Volume] = Field(default_factory=list)
    volumes_from: list[Name] = Field(default_factory=list)
    links: list[Link] = Field(default_factory=list)
    restart: Restart | None = None
    healthcheck: Healthcheck | None = None
    placement: Placement | None = None
    update: Update | None = None
    network: Literal["bridge", "host", "none"] | None = None
    user: Word | None = None
    working_dir: AbsolutePath | None = None
    read_only: StrictBool = False
    cap_add: list[Capability] = Field(default_factory=list)
    cap_drop: list[Capability] = Field(default_factory=list)
    init: StrictBool = False
    # Docker's default seccomp profile unless "unconfined" (which the cluster policy may refuse).
    seccomp: Literal["default", "unconfined"] | None = None
    devices: Annotated[list[Device], Field(max_length=MAX_DEVICES)] = Field(default_factory=list)

    @field_validator("ports")
    @classmethod
    def _ports_unique(cls, ports: list[Port]) -> list[Port]:
        _refuse_repeats([f"{p.published}/{p.protocol}" for p in ports], "host port")
        return ports

    @field_validator("volumes")
    @classmethod
    def _targets_unique(cls, volumes: list[Volume]) -> list[Volume]:
        _refuse_repeats([v.target for v in volumes], "mount target")
        return volumes

    @field_validator("devices")
    @classmethod
    def _device_targets_unique(cls, devices: list[Device]) -> list[Device]:
        _refuse_repeats([d.target or d.source for d in devices], "device path")
        return devices

    @field_validator("volumes_from")
    @classmethod
    def _volumes_from_others(cls, names: list[str], info: ValidationInfo) -> list[str]:
        if info.data.get("name") in names:
            raise ValueError("a service cannot mount its own volumes")
        _refuse_repeats(names, "service")
        return names

    @field_validator("links")
    @classmethod
    def _links_to_others(cls, links: list[Link], info: ValidationInfo) -> list[Link]:
        if any(link.service == info.data.get("name") for link in links):
            raise ValueError("a service cannot link to itself")
        _refuse_repeats([name for link in links for name in link.names], "link name")
        return links

    @field_validator("network")
    @classmethod
    def _ports_need_a_bridge(cls, network: str | None, info: ValidationInfo) -> str | None:
        if network in ("host", "none") and info.data.get("ports"):
            raise ValueError(f"network {network!r} cannot publish ports; use bridge or drop ports")
        if network in ("host", "none") and info.data.get("links"):
            raise ValueError(f"network {network!r} cannot reach linked services; use bridge or drop links")
        return network

    def to_spec(self) -> types_pb2.ServiceSpec:
        spec = types_pb2.ServiceSpec(
            name=self.name,
            image=self.image,
            entrypoint=self.entrypoint,
            args=self.command,
            env=self.env,
            replicas=self.replicas,
            stop_grace_period=self.stop_grace_period,
            stop_signal=self.stop_signal or "",
            labels=self.labels,
            ports=[types_pb2.PortMapping(host_port=p.published, container_port=p.target, protocol=p.protocol)
                   for p in self.ports],  # fmt: skip
            mounts=[v.to_proto() for v in self.volumes],
            volumes_from=self.volumes_from,
            links=[types_pb2.Link(service=link.service, alias=link.alias or "") for link in self.links],
            network=_NETWORKS[self.network] if self.network else types_pb2.NETWORK_MODE_UNSPECIFIED,
            user=self.user or "",
            working_dir=self.working_dir or "",
            read_only_rootfs=self.read_only,
            cap_add=self.cap_add,
            cap_drop=self.cap_drop,
            init=self.init,
            seccomp=_SECCOMP[self.seccomp] if self.seccomp else types_pb2.SECCOMP_PROFILE_UNSPECIFIED,
            devices=[d.to_proto() for d in self.devices],
        )
        for field in ("resources", "restart", "healthcheck", "placement", "update"):
            value = getattr(self, field)
            if value is not None:
                getattr(spec, field).CopyFrom(value.to_proto())
        return spec

    @classmethod
    def from_spec(cls, spec: types_pb2.ServiceSpec) -> ServiceManifest:
        fields: dict[str, Any] = {
            "name": spec.name,
            "image": spec.image,
            "entrypoint": list(spec.entrypoint),
            "command": list(spec.args),
            "env": dict(spec.env),
            "replicas": spec.replicas,
            "stop_grace_period": spec.stop_grace_period or DEFAULT_STOP_GRACE_PERIOD,
            "stop_signal": spec.stop_signal or None,
            "labels": dict(spec.labels),
            "ports": [{"published": p.host_port, "target": p.container_port, "protocol": p.protocol or "tcp"}
                      for p in spec.ports],  # fmt: skip
            "volumes": [Volume.fields_of(m) for m in spec.mounts],
            "volumes_from": list(spec.volumes_from),
            "links": [{"service": link.service, "alias": link.alias or None} for link in spec.links],
            "network": {v: k for k, v in _NETWORKS.items()}.get(spec.network),
            "user": spec.user or None,
            "working_dir": spec.working_dir or None,
            "read_only": spec.read_only_rootfs,
            "cap_add": list(spec.cap_add),
            "cap_drop": list(spec.cap_drop),
            "init": spec.init,
            "seccomp": {v: k for k, v in _SECCOMP.items()}.get(spec.seccomp),
            "devices": [Device.fields_of(d) for d in spec.devices],
        }
        nested = {"resources": Resources, "restart": Restart, "healthcheck": Healthcheck,
                  "placement": Placement, "update": Update}  # fmt: skip
        for field, model in nested.items():
            if spec.HasField(field):
                fields[field] = model.fields_of(getattr(spec, field))
        return cls.model_validate(fields)


def _refuse_repeats(values: list[str], what: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{what} {value!r} appears more than once")
        seen.add(value)


class ServiceDocument(ServiceManifest):
    """A service as written in a file: it may also name ``env_file``s to read."""

    env_file: Annotated[list[Text], OneOrMany] = Field(default_factory=list)

    def resolve(self, base_dir: Path) -> tuple[ServiceManifest | None, list[tuple[str, str]]]:
        """Read the env files (relative to ``base_dir``) into ``env``.

        Later files override earlier ones and ``env`` overrides them all. Returns the
        service, or None with ``(field path, reason)`` pairs for what went wrong.
        """
        merged: dict[str, str] = {}
        errors: list[tuple[str, str]] = []
        for index, name in enumerate(self.env_file):
            try:
                merged.update(read_env_file(base_dir / name))
            except (OSError, ValueError) as exc:  # ValueError covers UnicodeDecodeError
                errors.append((f"env_file[{index}]", str(exc)))
        if errors:
            return None, errors
        fields = {name: getattr(self, name) for name in ServiceManifest.model_fields}
        fields["env"] = {**merged, **self.env}
        return ServiceManifest.model_validate(fields), []


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines; blank lines and ``#`` comments are skipped.

    Spaces around the key and the value are dropped, and a value wrapped in
    matching single or double quotes loses the quotes (as in docker-compose);
    nothing else is interpreted.
    """
    env: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise OSError(f"cannot read {path}: {exc.strerror or exc}") from None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"{path} line {number}: expected KEY=VALUE, got {line!r}")
        try:
            key = check_env_key(key.strip())
            value = no_nul(value.strip())
        except ValueError as exc:
            raise ValueError(f"{path} line {number}: {exc}") from None
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key] = value
    return env
