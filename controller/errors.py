"""The controller's errors; etcd and gRPC errors are converted to these at the edges.

    ControllerError
    ├── NotFoundError           an object a request names does not exist
    ├── InvalidSpecError        a service spec failed validation (names service and field)
    ├── ConflictError           a compare-and-swap lost against a concurrent write
    ├── FailedPreconditionError the request is refused in the object's current state
    └── StoreError              etcd failed the request
        └── StoreUnavailableError   no etcd endpoint answered
"""

from __future__ import annotations


class ControllerError(Exception):
    """Base of every error the controller raises on purpose."""


class NotFoundError(ControllerError):
    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f"{kind} {name!r} not found")
        self.kind = kind
        self.name = name


class InvalidSpecError(ControllerError):
    def __init__(self, service: str, field: str, reason: str) -> None:
        super().__init__(f"service {service!r}: {field}: {reason}")
        self.service = service
        self.field = field
        self.reason = reason


class ConflictError(ControllerError):
    """The keys a transaction compared changed since they were read."""


class FailedPreconditionError(ControllerError):
    """The request cannot be done in the current state of what it names (the message says why)."""


class StoreError(ControllerError):
    """etcd rejected or failed a request."""


class StoreUnavailableError(StoreError):
    """No etcd endpoint could be reached."""
