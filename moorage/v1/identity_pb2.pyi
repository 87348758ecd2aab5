import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JoinRequest(_message.Message):
    __slots__ = ("token", "csr", "name")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    CSR_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    token: str
    csr: bytes
    name: str
    def __init__(self, token: _Optional[str] = ..., csr: _Optional[bytes] = ..., name: _Optional[str] = ...) -> None: ...

class JoinResponse(_message.Message):
    __slots__ = ("certificate", "ca_certificate", "name", "role", "cluster_id")
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    CA_CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    certificate: bytes
    ca_certificate: bytes
    name: str
    role: str
    cluster_id: str
    def __init__(self, certificate: _Optional[bytes] = ..., ca_certificate: _Optional[bytes] = ..., name: _Optional[str] = ..., role: _Optional[str] = ..., cluster_id: _Optional[str] = ...) -> None: ...

class RenewRequest(_message.Message):
    __slots__ = ("csr",)
    CSR_FIELD_NUMBER: _ClassVar[int]
    csr: bytes
    def __init__(self, csr: _Optional[bytes] = ...) -> None: ...

class GetJoinTokenRequest(_message.Message):
    __slots__ = ("role", "rotate", "ttl")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    ROTATE_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    role: str
    rotate: bool
    ttl: float
    def __init__(self, role: _Optional[str] = ..., rotate: _Optional[bool] = ..., ttl: _Optional[float] = ...) -> None: ...

class JoinToken(_message.Message):
    __slots__ = ("role", "token", "expires_at")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    role: str
    token: str
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, role: _Optional[str] = ..., token: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class IssueUserCertificateRequest(_message.Message):
    __slots__ = ("name", "role", "csr", "lifetime")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CSR_FIELD_NUMBER: _ClassVar[int]
    LIFETIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    role: str
    csr: bytes
    lifetime: float
    def __init__(self, name: _Optional[str] = ..., role: _Optional[str] = ..., csr: _Optional[bytes] = ..., lifetime: _Optional[float] = ...) -> None: ...

class ClusterIdentity(_message.Message):
    __slots__ = ("cluster_id", "ca_certificate", "ca_key", "created_at")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    CA_CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    CA_KEY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    cluster_id: str
    ca_certificate: bytes
    ca_key: bytes
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, cluster_id: _Optional[str] = ..., ca_certificate: _Optional[bytes] = ..., ca_key: _Optional[bytes] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class JoinTokenRecord(_message.Message):
    __slots__ = ("role", "secret", "expires_at", "created_at")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    role: str
    secret: str
    expires_at: _timestamp_pb2.Timestamp
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, role: _Optional[str] = ..., secret: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RevokedCertificate(_message.Message):
    __slots__ = ("serial", "name", "not_after", "revoked_at")
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NOT_AFTER_FIELD_NUMBER: _ClassVar[int]
    REVOKED_AT_FIELD_NUMBER: _ClassVar[int]
    serial: str
    name: str
    not_after: _timestamp_pb2.Timestamp
    revoked_at: _timestamp_pb2.Timestamp
    def __init__(self, serial: _Optional[str] = ..., name: _Optional[str] = ..., not_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revoked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class NodeKey(_message.Message):
    __slots__ = ("node_id", "public_key_sha256", "certificates")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_SHA256_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATES_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    public_key_sha256: str
    certificates: _containers.RepeatedCompositeFieldContainer[CertificateRef]
    def __init__(self, node_id: _Optional[str] = ..., public_key_sha256: _Optional[str] = ..., certificates: _Optional[_Iterable[_Union[CertificateRef, _Mapping]]] = ...) -> None: ...

class CertificateRef(_message.Message):
    __slots__ = ("serial", "not_after")
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    NOT_AFTER_FIELD_NUMBER: _ClassVar[int]
    serial: str
    not_after: _timestamp_pb2.Timestamp
    def __init__(self, serial: _Optional[str] = ..., not_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
