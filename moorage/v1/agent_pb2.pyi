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
    __slots__ = ("register", "status", "logs")
    REGISTER_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LOGS_FIELD_NUMBER: _ClassVar[int]
    register: Register
    status: TaskStatus
    logs: LogChunk
    def __init__(self, register: _Optional[_Union[Register, _Mapping]] = ..., status: _Optional[_Union[TaskStatus, _Mapping]] = ..., logs: _Optional[_Union[LogChunk, _Mapping]] = ...) -> None: ...

class ControllerMessage(_message.Message):
    __slots__ = ("registered", "assignments", "logs_query")
    REGISTERED_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    LOGS_QUERY_FIELD_NUMBER: _ClassVar[int]
    registered: Registered
    assignments: Assignments
    logs_query: LogsQuery
    def __init__(self, registered: _Optional[_Union[Registered, _Mapping]] = ..., assignments: _Optional[_Union[Assignments, _Mapping]] = ..., logs_query: _Optional[_Union[LogsQuery, _Mapping]] = ...) -> None: ...

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
    __slots__ = ("node_id",)
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    def __init__(self, node_id: _Optional[str] = ...) -> None: ...

class Assignments(_message.Message):
    __slots__ = ("version", "tasks")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    version: int
    tasks: _containers.RepeatedCompositeFieldContainer[_types_pb2.Task]
    def __init__(self, version: _Optional[int] = ..., tasks: _Optional[_Iterable[_Union[_types_pb2.Task, _Mapping]]] = ...) -> None: ...

class TaskStatus(_message.Message):
    __slots__ = ("task_id", "state", "container_id", "exit_code", "message", "started_at", "finished_at")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_ID_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    state: _types_pb2.TaskState
    container_id: str
    exit_code: int
    message: str
    started_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    def __init__(self, task_id: _Optional[str] = ..., state: _Optional[_Union[_types_pb2.TaskState, str]] = ..., container_id: _Optional[str] = ..., exit_code: _Optional[int] = ..., message: _Optional[str] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class LogsQuery(_message.Message):
    __slots__ = ("request_id", "task_id", "follow", "tail", "cancel")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    TAIL_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    task_id: str
    follow: bool
    tail: int
    cancel: bool
    def __init__(self, request_id: _Optional[str] = ..., task_id: _Optional[str] = ..., follow: _Optional[bool] = ..., tail: _Optional[int] = ..., cancel: _Optional[bool] = ...) -> None: ...

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
