import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SeccompProfile(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SECCOMP_PROFILE_UNSPECIFIED: _ClassVar[SeccompProfile]
    SECCOMP_PROFILE_DEFAULT: _ClassVar[SeccompProfile]
    SECCOMP_PROFILE_UNCONFINED: _ClassVar[SeccompProfile]

class NetworkMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NETWORK_MODE_UNSPECIFIED: _ClassVar[NetworkMode]
    NETWORK_MODE_BRIDGE: _ClassVar[NetworkMode]
    NETWORK_MODE_HOST: _ClassVar[NetworkMode]
    NETWORK_MODE_NONE: _ClassVar[NetworkMode]

class TaskState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_STATE_UNSPECIFIED: _ClassVar[TaskState]
    TASK_STATE_NEW: _ClassVar[TaskState]
    TASK_STATE_PENDING: _ClassVar[TaskState]
    TASK_STATE_ASSIGNED: _ClassVar[TaskState]
    TASK_STATE_PREPARING: _ClassVar[TaskState]
    TASK_STATE_STARTING: _ClassVar[TaskState]
    TASK_STATE_RUNNING: _ClassVar[TaskState]
    TASK_STATE_COMPLETE: _ClassVar[TaskState]
    TASK_STATE_FAILED: _ClassVar[TaskState]
    TASK_STATE_SHUTDOWN: _ClassVar[TaskState]
    TASK_STATE_REJECTED: _ClassVar[TaskState]

class TaskHealth(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_HEALTH_UNSPECIFIED: _ClassVar[TaskHealth]
    TASK_HEALTH_STARTING: _ClassVar[TaskHealth]
    TASK_HEALTH_HEALTHY: _ClassVar[TaskHealth]
    TASK_HEALTH_UNHEALTHY: _ClassVar[TaskHealth]

class NodeState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NODE_STATE_UNSPECIFIED: _ClassVar[NodeState]
    NODE_STATE_READY: _ClassVar[NodeState]
    NODE_STATE_DOWN: _ClassVar[NodeState]

class NodeAvailability(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NODE_AVAILABILITY_UNSPECIFIED: _ClassVar[NodeAvailability]
    NODE_AVAILABILITY_ACTIVE: _ClassVar[NodeAvailability]
    NODE_AVAILABILITY_DRAIN: _ClassVar[NodeAvailability]
    NODE_AVAILABILITY_PAUSE: _ClassVar[NodeAvailability]
SECCOMP_PROFILE_UNSPECIFIED: SeccompProfile
SECCOMP_PROFILE_DEFAULT: SeccompProfile
SECCOMP_PROFILE_UNCONFINED: SeccompProfile
NETWORK_MODE_UNSPECIFIED: NetworkMode
NETWORK_MODE_BRIDGE: NetworkMode
NETWORK_MODE_HOST: NetworkMode
NETWORK_MODE_NONE: NetworkMode
TASK_STATE_UNSPECIFIED: TaskState
TASK_STATE_NEW: TaskState
TASK_STATE_PENDING: TaskState
TASK_STATE_ASSIGNED: TaskState
TASK_STATE_PREPARING: TaskState
TASK_STATE_STARTING: TaskState
TASK_STATE_RUNNING: TaskState
TASK_STATE_COMPLETE: TaskState
TASK_STATE_FAILED: TaskState
TASK_STATE_SHUTDOWN: TaskState
TASK_STATE_REJECTED: TaskState
TASK_HEALTH_UNSPECIFIED: TaskHealth
TASK_HEALTH_STARTING: TaskHealth
TASK_HEALTH_HEALTHY: TaskHealth
TASK_HEALTH_UNHEALTHY: TaskHealth
NODE_STATE_UNSPECIFIED: NodeState
NODE_STATE_READY: NodeState
NODE_STATE_DOWN: NodeState
NODE_AVAILABILITY_UNSPECIFIED: NodeAvailability
NODE_AVAILABILITY_ACTIVE: NodeAvailability
NODE_AVAILABILITY_DRAIN: NodeAvailability
NODE_AVAILABILITY_PAUSE: NodeAvailability

class Resources(_message.Message):
    __slots__ = ("cpu_millis", "memory_bytes")
    CPU_MILLIS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    cpu_millis: int
    memory_bytes: int
    def __init__(self, cpu_millis: _Optional[int] = ..., memory_bytes: _Optional[int] = ...) -> None: ...

class ResourceRequirements(_message.Message):
    __slots__ = ("reservations", "limits", "pids_limit")
    RESERVATIONS_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    PIDS_LIMIT_FIELD_NUMBER: _ClassVar[int]
    reservations: Resources
    limits: Resources
    pids_limit: int
    def __init__(self, reservations: _Optional[_Union[Resources, _Mapping]] = ..., limits: _Optional[_Union[Resources, _Mapping]] = ..., pids_limit: _Optional[int] = ...) -> None: ...

class PortMapping(_message.Message):
    __slots__ = ("host_port", "container_port", "protocol")
    HOST_PORT_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_PORT_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    host_port: int
    container_port: int
    protocol: str
    def __init__(self, host_port: _Optional[int] = ..., container_port: _Optional[int] = ..., protocol: _Optional[str] = ...) -> None: ...

class Mount(_message.Message):
    __slots__ = ("type", "source", "target", "read_only")
    class Type(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        TYPE_UNSPECIFIED: _ClassVar[Mount.Type]
        TYPE_VOLUME: _ClassVar[Mount.Type]
        TYPE_BIND: _ClassVar[Mount.Type]
        TYPE_TMPFS: _ClassVar[Mount.Type]
    TYPE_UNSPECIFIED: Mount.Type
    TYPE_VOLUME: Mount.Type
    TYPE_BIND: Mount.Type
    TYPE_TMPFS: Mount.Type
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    READ_ONLY_FIELD_NUMBER: _ClassVar[int]
    type: Mount.Type
    source: str
    target: str
    read_only: bool
    def __init__(self, type: _Optional[_Union[Mount.Type, str]] = ..., source: _Optional[str] = ..., target: _Optional[str] = ..., read_only: _Optional[bool] = ...) -> None: ...

class Link(_message.Message):
    __slots__ = ("service", "alias")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    service: str
    alias: str
    def __init__(self, service: _Optional[str] = ..., alias: _Optional[str] = ...) -> None: ...

class RestartPolicy(_message.Message):
    __slots__ = ("condition", "max_attempts", "delay", "window")
    class Condition(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        CONDITION_UNSPECIFIED: _ClassVar[RestartPolicy.Condition]
        CONDITION_NONE: _ClassVar[RestartPolicy.Condition]
        CONDITION_ON_FAILURE: _ClassVar[RestartPolicy.Condition]
        CONDITION_ANY: _ClassVar[RestartPolicy.Condition]
    CONDITION_UNSPECIFIED: RestartPolicy.Condition
    CONDITION_NONE: RestartPolicy.Condition
    CONDITION_ON_FAILURE: RestartPolicy.Condition
    CONDITION_ANY: RestartPolicy.Condition
    CONDITION_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    DELAY_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    condition: RestartPolicy.Condition
    max_attempts: int
    delay: float
    window: float
    def __init__(self, condition: _Optional[_Union[RestartPolicy.Condition, str]] = ..., max_attempts: _Optional[int] = ..., delay: _Optional[float] = ..., window: _Optional[float] = ...) -> None: ...

class HealthCheck(_message.Message):
    __slots__ = ("exec", "tcp", "http", "interval", "timeout", "retries", "start_period")
    EXEC_FIELD_NUMBER: _ClassVar[int]
    TCP_FIELD_NUMBER: _ClassVar[int]
    HTTP_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    RETRIES_FIELD_NUMBER: _ClassVar[int]
    START_PERIOD_FIELD_NUMBER: _ClassVar[int]
    exec: ExecProbe
    tcp: TcpProbe
    http: HttpProbe
    interval: float
    timeout: float
    retries: int
    start_period: float
    def __init__(self, exec: _Optional[_Union[ExecProbe, _Mapping]] = ..., tcp: _Optional[_Union[TcpProbe, _Mapping]] = ..., http: _Optional[_Union[HttpProbe, _Mapping]] = ..., interval: _Optional[float] = ..., timeout: _Optional[float] = ..., retries: _Optional[int] = ..., start_period: _Optional[float] = ...) -> None: ...

class ExecProbe(_message.Message):
    __slots__ = ("command",)
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    command: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, command: _Optional[_Iterable[str]] = ...) -> None: ...

class TcpProbe(_message.Message):
    __slots__ = ("port",)
    PORT_FIELD_NUMBER: _ClassVar[int]
    port: int
    def __init__(self, port: _Optional[int] = ...) -> None: ...

class HttpProbe(_message.Message):
    __slots__ = ("port", "path")
    PORT_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    port: int
    path: str
    def __init__(self, port: _Optional[int] = ..., path: _Optional[str] = ...) -> None: ...

class Placement(_message.Message):
    __slots__ = ("constraints", "spread", "max_replicas_per_node")
    CONSTRAINTS_FIELD_NUMBER: _ClassVar[int]
    SPREAD_FIELD_NUMBER: _ClassVar[int]
    MAX_REPLICAS_PER_NODE_FIELD_NUMBER: _ClassVar[int]
    constraints: _containers.RepeatedScalarFieldContainer[str]
    spread: _containers.RepeatedScalarFieldContainer[str]
    max_replicas_per_node: int
    def __init__(self, constraints: _Optional[_Iterable[str]] = ..., spread: _Optional[_Iterable[str]] = ..., max_replicas_per_node: _Optional[int] = ...) -> None: ...

class UpdatePolicy(_message.Message):
    __slots__ = ("parallelism", "delay", "order", "failure_action", "monitor", "max_failure_ratio")
    class Order(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        ORDER_UNSPECIFIED: _ClassVar[UpdatePolicy.Order]
        ORDER_STOP_FIRST: _ClassVar[UpdatePolicy.Order]
        ORDER_START_FIRST: _ClassVar[UpdatePolicy.Order]
    ORDER_UNSPECIFIED: UpdatePolicy.Order
    ORDER_STOP_FIRST: UpdatePolicy.Order
    ORDER_START_FIRST: UpdatePolicy.Order
    class FailureAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        FAILURE_ACTION_UNSPECIFIED: _ClassVar[UpdatePolicy.FailureAction]
        FAILURE_ACTION_PAUSE: _ClassVar[UpdatePolicy.FailureAction]
        FAILURE_ACTION_ROLLBACK: _ClassVar[UpdatePolicy.FailureAction]
        FAILURE_ACTION_CONTINUE: _ClassVar[UpdatePolicy.FailureAction]
    FAILURE_ACTION_UNSPECIFIED: UpdatePolicy.FailureAction
    FAILURE_ACTION_PAUSE: UpdatePolicy.FailureAction
    FAILURE_ACTION_ROLLBACK: UpdatePolicy.FailureAction
    FAILURE_ACTION_CONTINUE: UpdatePolicy.FailureAction
    PARALLELISM_FIELD_NUMBER: _ClassVar[int]
    DELAY_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    FAILURE_ACTION_FIELD_NUMBER: _ClassVar[int]
    MONITOR_FIELD_NUMBER: _ClassVar[int]
    MAX_FAILURE_RATIO_FIELD_NUMBER: _ClassVar[int]
    parallelism: int
    delay: float
    order: UpdatePolicy.Order
    failure_action: UpdatePolicy.FailureAction
    monitor: float
    max_failure_ratio: float
    def __init__(self, parallelism: _Optional[int] = ..., delay: _Optional[float] = ..., order: _Optional[_Union[UpdatePolicy.Order, str]] = ..., failure_action: _Optional[_Union[UpdatePolicy.FailureAction, str]] = ..., monitor: _Optional[float] = ..., max_failure_ratio: _Optional[float] = ...) -> None: ...

class Device(_message.Message):
    __slots__ = ("host_path", "container_path", "permissions")
    HOST_PATH_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_PATH_FIELD_NUMBER: _ClassVar[int]
    PERMISSIONS_FIELD_NUMBER: _ClassVar[int]
    host_path: str
    container_path: str
    permissions: str
    def __init__(self, host_path: _Optional[str] = ..., container_path: _Optional[str] = ..., permissions: _Optional[str] = ...) -> None: ...

class ServiceSpec(_message.Message):
    __slots__ = ("name", "image", "entrypoint", "args", "env", "replicas", "stop_grace_period", "labels", "resources", "ports", "mounts", "volumes_from", "links", "restart", "healthcheck", "stop_signal", "placement", "update", "network", "user", "working_dir", "read_only_rootfs", "cap_add", "cap_drop", "init", "seccomp", "devices")
    class EnvEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    ENTRYPOINT_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    STOP_GRACE_PERIOD_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    MOUNTS_FIELD_NUMBER: _ClassVar[int]
    VOLUMES_FROM_FIELD_NUMBER: _ClassVar[int]
    LINKS_FIELD_NUMBER: _ClassVar[int]
    RESTART_FIELD_NUMBER: _ClassVar[int]
    HEALTHCHECK_FIELD_NUMBER: _ClassVar[int]
    STOP_SIGNAL_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_FIELD_NUMBER: _ClassVar[int]
    UPDATE_FIELD_NUMBER: _ClassVar[int]
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    WORKING_DIR_FIELD_NUMBER: _ClassVar[int]
    READ_ONLY_ROOTFS_FIELD_NUMBER: _ClassVar[int]
    CAP_ADD_FIELD_NUMBER: _ClassVar[int]
    CAP_DROP_FIELD_NUMBER: _ClassVar[int]
    INIT_FIELD_NUMBER: _ClassVar[int]
    SECCOMP_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    name: str
    image: str
    entrypoint: _containers.RepeatedScalarFieldContainer[str]
    args: _containers.RepeatedScalarFieldContainer[str]
    env: _containers.ScalarMap[str, str]
    replicas: int
    stop_grace_period: float
    labels: _containers.ScalarMap[str, str]
    resources: ResourceRequirements
    ports: _containers.RepeatedCompositeFieldContainer[PortMapping]
    mounts: _containers.RepeatedCompositeFieldContainer[Mount]
    volumes_from: _containers.RepeatedScalarFieldContainer[str]
    links: _containers.RepeatedCompositeFieldContainer[Link]
    restart: RestartPolicy
    healthcheck: HealthCheck
    stop_signal: str
    placement: Placement
    update: UpdatePolicy
    network: NetworkMode
    user: str
    working_dir: str
    read_only_rootfs: bool
    cap_add: _containers.RepeatedScalarFieldContainer[str]
    cap_drop: _containers.RepeatedScalarFieldContainer[str]
    init: bool
    seccomp: SeccompProfile
    devices: _containers.RepeatedCompositeFieldContainer[Device]
    def __init__(self, name: _Optional[str] = ..., image: _Optional[str] = ..., entrypoint: _Optional[_Iterable[str]] = ..., args: _Optional[_Iterable[str]] = ..., env: _Optional[_Mapping[str, str]] = ..., replicas: _Optional[int] = ..., stop_grace_period: _Optional[float] = ..., labels: _Optional[_Mapping[str, str]] = ..., resources: _Optional[_Union[ResourceRequirements, _Mapping]] = ..., ports: _Optional[_Iterable[_Union[PortMapping, _Mapping]]] = ..., mounts: _Optional[_Iterable[_Union[Mount, _Mapping]]] = ..., volumes_from: _Optional[_Iterable[str]] = ..., links: _Optional[_Iterable[_Union[Link, _Mapping]]] = ..., restart: _Optional[_Union[RestartPolicy, _Mapping]] = ..., healthcheck: _Optional[_Union[HealthCheck, _Mapping]] = ..., stop_signal: _Optional[str] = ..., placement: _Optional[_Union[Placement, _Mapping]] = ..., update: _Optional[_Union[UpdatePolicy, _Mapping]] = ..., network: _Optional[_Union[NetworkMode, str]] = ..., user: _Optional[str] = ..., working_dir: _Optional[str] = ..., read_only_rootfs: _Optional[bool] = ..., cap_add: _Optional[_Iterable[str]] = ..., cap_drop: _Optional[_Iterable[str]] = ..., init: _Optional[bool] = ..., seccomp: _Optional[_Union[SeccompProfile, str]] = ..., devices: _Optional[_Iterable[_Union[Device, _Mapping]]] = ...) -> None: ...

class Service(_message.Message):
    __slots__ = ("spec", "version", "created_at", "updated_at", "message", "update_status", "previous_spec")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_STATUS_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_SPEC_FIELD_NUMBER: _ClassVar[int]
    spec: ServiceSpec
    version: int
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    message: str
    update_status: UpdateStatus
    previous_spec: ServiceSpec
    def __init__(self, spec: _Optional[_Union[ServiceSpec, _Mapping]] = ..., version: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., message: _Optional[str] = ..., update_status: _Optional[_Union[UpdateStatus, _Mapping]] = ..., previous_spec: _Optional[_Union[ServiceSpec, _Mapping]] = ...) -> None: ...

class UpdateStatus(_message.Message):
    __slots__ = ("state", "message", "started_at", "completed_at")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[UpdateStatus.State]
        STATE_UPDATING: _ClassVar[UpdateStatus.State]
        STATE_PAUSED: _ClassVar[UpdateStatus.State]
        STATE_COMPLETED: _ClassVar[UpdateStatus.State]
        STATE_ROLLBACK_STARTED: _ClassVar[UpdateStatus.State]
        STATE_ROLLBACK_COMPLETED: _ClassVar[UpdateStatus.State]
    STATE_UNSPECIFIED: UpdateStatus.State
    STATE_UPDATING: UpdateStatus.State
    STATE_PAUSED: UpdateStatus.State
    STATE_COMPLETED: UpdateStatus.State
    STATE_ROLLBACK_STARTED: UpdateStatus.State
    STATE_ROLLBACK_COMPLETED: UpdateStatus.State
    STATE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    state: UpdateStatus.State
    message: str
    started_at: _timestamp_pb2.Timestamp
    completed_at: _timestamp_pb2.Timestamp
    def __init__(self, state: _Optional[_Union[UpdateStatus.State, str]] = ..., message: _Optional[str] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Task(_message.Message):
    __slots__ = ("id", "service", "slot", "node_id", "desired_state", "observed_state", "container_id", "exit_code", "message", "spec", "created_at", "updated_at", "started_at", "finished_at", "version", "address", "health", "restarts")
    ID_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    SLOT_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    DESIRED_STATE_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_STATE_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_ID_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    RESTARTS_FIELD_NUMBER: _ClassVar[int]
    id: str
    service: str
    slot: int
    node_id: str
    desired_state: TaskState
    observed_state: TaskState
    container_id: str
    exit_code: int
    message: str
    spec: ServiceSpec
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    started_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    version: int
    address: str
    health: TaskHealth
    restarts: int
    def __init__(self, id: _Optional[str] = ..., service: _Optional[str] = ..., slot: _Optional[int] = ..., node_id: _Optional[str] = ..., desired_state: _Optional[_Union[TaskState, str]] = ..., observed_state: _Optional[_Union[TaskState, str]] = ..., container_id: _Optional[str] = ..., exit_code: _Optional[int] = ..., message: _Optional[str] = ..., spec: _Optional[_Union[ServiceSpec, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., version: _Optional[int] = ..., address: _Optional[str] = ..., health: _Optional[_Union[TaskHealth, str]] = ..., restarts: _Optional[int] = ...) -> None: ...

class Node(_message.Message):
    __slots__ = ("id", "hostname", "address", "resources", "labels", "state", "registered_at", "last_seen", "version", "availability", "subnet", "agent_version")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    AVAILABILITY_FIELD_NUMBER: _ClassVar[int]
    SUBNET_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    id: str
    hostname: str
    address: str
    resources: Resources
    labels: _containers.ScalarMap[str, str]
    state: NodeState
    registered_at: _timestamp_pb2.Timestamp
    last_seen: _timestamp_pb2.Timestamp
    version: int
    availability: NodeAvailability
    subnet: str
    agent_version: str
    def __init__(self, id: _Optional[str] = ..., hostname: _Optional[str] = ..., address: _Optional[str] = ..., resources: _Optional[_Union[Resources, _Mapping]] = ..., labels: _Optional[_Mapping[str, str]] = ..., state: _Optional[_Union[NodeState, str]] = ..., registered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_seen: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., version: _Optional[int] = ..., availability: _Optional[_Union[NodeAvailability, str]] = ..., subnet: _Optional[str] = ..., agent_version: _Optional[str] = ...) -> None: ...

class LogEntry(_message.Message):
    __slots__ = ("time", "stream", "line", "task_id", "slot", "node_id")
    TIME_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    SLOT_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    time: _timestamp_pb2.Timestamp
    stream: str
    line: str
    task_id: str
    slot: int
    node_id: str
    def __init__(self, time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., stream: _Optional[str] = ..., line: _Optional[str] = ..., task_id: _Optional[str] = ..., slot: _Optional[int] = ..., node_id: _Optional[str] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("time", "kind", "action", "id", "service", "node_id", "message")
    TIME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    time: _timestamp_pb2.Timestamp
    kind: str
    action: str
    id: str
    service: str
    node_id: str
    message: str
    def __init__(self, time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., kind: _Optional[str] = ..., action: _Optional[str] = ..., id: _Optional[str] = ..., service: _Optional[str] = ..., node_id: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...
