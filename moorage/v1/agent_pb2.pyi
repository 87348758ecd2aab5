import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from moorage.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AgentMessage(_message.Message):
    __slots__ = ("register", "status", "logs", "heartbeat", "exec")
    REGISTER_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LOGS_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    EXEC_FIELD_NUMBER: _ClassVar[int]
    register: Register
    status: TaskStatus
    logs: LogChunk
    heartbeat: Heartbeat
    exec: ExecChunk
    def __init__(self, register: _Optional[_Union[Register, _Mapping]] = ..., status: _Optional[_Union[TaskStatus, _Mapping]] = ..., logs: _Optional[_Union[LogChunk, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., exec: _Optional[_Union[ExecChunk, _Mapping]] = ...) -> None: ...

class ControllerMessage(_message.Message):
    __slots__ = ("registered", "assignments", "logs_query", "peers", "exec", "heartbeat")
    REGISTERED_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    LOGS_QUERY_FIELD_NUMBER: _ClassVar[int]
    PEERS_FIELD_NUMBER: _ClassVar[int]
    EXEC_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    registered: Registered
    assignments: Assignments
    logs_query: LogsQuery
    peers: Peers
    exec: ExecRelay
    heartbeat: Heartbeat
    def __init__(self, registered: _Optional[_Union[Registered, _Mapping]] = ..., assignments: _Optional[_Union[Assignments, _Mapping]] = ..., logs_query: _Optional[_Union[LogsQuery, _Mapping]] = ..., peers: _Optional[_Union[Peers, _Mapping]] = ..., exec: _Optional[_Union[ExecRelay, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ...) -> None: ...

class Register(_message.Message):
    __slots__ = ("node_id", "hostname", "address", "resources", "labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    hostname: str
    address: str
    resources: _types_pb2.Resources
    labels: _containers.ScalarMap[str, str]
    def __init__(self, node_id: _Optional[str] = ..., hostname: _Optional[str] = ..., address: _Optional[str] = ..., resources: _Optional[_Union[_types_pb2.Resources, _Mapping]] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Registered(_message.Message):
    __slots__ = ("node_id", "subnet", "cluster_cidr", "heartbeat_interval", "masquerade", "node_ttl")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    SUBNET_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_CIDR_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    MASQUERADE_FIELD_NUMBER: _ClassVar[int]
    NODE_TTL_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    subnet: str
    cluster_cidr: str
    heartbeat_interval: float
    masquerade: bool
    node_ttl: float
    def __init__(self, node_id: _Optional[str] = ..., subnet: _Optional[str] = ..., cluster_cidr: _Optional[str] = ..., heartbeat_interval: _Optional[float] = ..., masquerade: _Optional[bool] = ..., node_ttl: _Optional[float] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Peers(_message.Message):
    __slots__ = ("nodes",)
    NODES_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[_types_pb2.Node]
    def __init__(self, nodes: _Optional[_Iterable[_Union[_types_pb2.Node, _Mapping]]] = ...) -> None: ...

class Assignments(_message.Message):
    __slots__ = ("version", "tasks", "endpoints")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    version: int
    tasks: _containers.RepeatedCompositeFieldContainer[_types_pb2.Task]
    endpoints: _containers.RepeatedCompositeFieldContainer[ServiceEndpoints]
    def __init__(self, version: _Optional[int] = ..., tasks: _Optional[_Iterable[_Union[_types_pb2.Task, _Mapping]]] = ..., endpoints: _Optional[_Iterable[_Union[ServiceEndpoints, _Mapping]]] = ...) -> None: ...

class ServiceEndpoints(_message.Message):
    __slots__ = ("service", "endpoints")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    service: str
    endpoints: _containers.RepeatedCompositeFieldContainer[Endpoint]
    def __init__(self, service: _Optional[str] = ..., endpoints: _Optional[_Iterable[_Union[Endpoint, _Mapping]]] = ...) -> None: ...

class Endpoint(_message.Message):
    __slots__ = ("task_id", "node_id", "address", "healthy")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    node_id: str
    address: str
    healthy: bool
    def __init__(self, task_id: _Optional[str] = ..., node_id: _Optional[str] = ..., address: _Optional[str] = ..., healthy: _Optional[bool] = ...) -> None: ...

class TaskStatus(_message.Message):
    __slots__ = ("task_id", "state", "container_id", "exit_code", "message", "started_at", "finished_at", "address", "health", "restarts")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_ID_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    RESTARTS_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    state: _types_pb2.TaskState
    container_id: str
    exit_code: int
    message: str
    started_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    address: str
    health: _types_pb2.TaskHealth
    restarts: int
    def __init__(self, task_id: _Optional[str] = ..., state: _Optional[_Union[_types_pb2.TaskState, str]] = ..., container_id: _Optional[str] = ..., exit_code: _Optional[int] = ..., message: _Optional[str] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., address: _Optional[str] = ..., health: _Optional[_Union[_types_pb2.TaskHealth, str]] = ..., restarts: _Optional[int] = ...) -> None: ...

class LogsQuery(_message.Message):
    __slots__ = ("request_id", "task_id", "follow", "tail", "cancel", "since")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    TAIL_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    task_id: str
    follow: bool
    tail: int
    cancel: bool
    since: _timestamp_pb2.Timestamp
    def __init__(self, request_id: _Optional[str] = ..., task_id: _Optional[str] = ..., follow: _Optional[bool] = ..., tail: _Optional[int] = ..., cancel: _Optional[bool] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ExecRelay(_message.Message):
    __slots__ = ("request_id", "start", "stdin", "resize", "close")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    STDIN_FIELD_NUMBER: _ClassVar[int]
    RESIZE_FIELD_NUMBER: _ClassVar[int]
    CLOSE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    start: ExecStartRelay
    stdin: bytes
    resize: TerminalSizeRelay
    close: bool
    def __init__(self, request_id: _Optional[str] = ..., start: _Optional[_Union[ExecStartRelay, _Mapping]] = ..., stdin: _Optional[bytes] = ..., resize: _Optional[_Union[TerminalSizeRelay, _Mapping]] = ..., close: _Optional[bool] = ...) -> None: ...

class ExecStartRelay(_message.Message):
    __slots__ = ("task_id", "command", "tty", "env", "rows", "cols")
    class EnvEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    TTY_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    COLS_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    command: _containers.RepeatedScalarFieldContainer[str]
    tty: bool
    env: _containers.ScalarMap[str, str]
    rows: int
    cols: int
    def __init__(self, task_id: _Optional[str] = ..., command: _Optional[_Iterable[str]] = ..., tty: _Optional[bool] = ..., env: _Optional[_Mapping[str, str]] = ..., rows: _Optional[int] = ..., cols: _Optional[int] = ...) -> None: ...

class TerminalSizeRelay(_message.Message):
    __slots__ = ("rows", "cols")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    COLS_FIELD_NUMBER: _ClassVar[int]
    rows: int
    cols: int
    def __init__(self, rows: _Optional[int] = ..., cols: _Optional[int] = ...) -> None: ...

class ExecChunk(_message.Message):
    __slots__ = ("request_id", "stdout", "stderr", "exit_code", "error")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    STDOUT_FIELD_NUMBER: _ClassVar[int]
    STDERR_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    stdout: bytes
    stderr: bytes
    exit_code: int
    error: str
    def __init__(self, request_id: _Optional[str] = ..., stdout: _Optional[bytes] = ..., stderr: _Optional[bytes] = ..., exit_code: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class LogChunk(_message.Message):
    __slots__ = ("request_id", "entries", "eof", "error")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    EOF_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    entries: _containers.RepeatedCompositeFieldContainer[_types_pb2.LogEntry]
    eof: bool
    error: str
    def __init__(self, request_id: _Optional[str] = ..., entries: _Optional[_Iterable[_Union[_types_pb2.LogEntry, _Mapping]]] = ..., eof: _Optional[bool] = ..., error: _Optional[str] = ...) -> None: ...
