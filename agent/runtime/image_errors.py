"""Errors of the image side, beneath the runtime's one tree (errors.py):

    RuntimeFailure
    ├── ImageInUse                 removal refused: a container still uses the image
    ├── RegistryError              a registry refused or failed a request; ``reason`` is its word
    └── BuildError                 a Containerfile that does not parse, or a step that failed

Kept apart from errors.py only because that file belongs to the container side; they may
move there.
"""

from __future__ import annotations

from agent.runtime.errors import RuntimeFailure


class ImageInUse(RuntimeFailure):
    def __init__(self, reference: str, why: str) -> None:
        super().__init__(f"image {reference} is in use: {why}")
        self.reference = reference


class RegistryError(RuntimeFailure):
    def __init__(self, registry: str, reason: str, status: int = 0) -> None:
        super().__init__(f"registry {registry}: {reason}")
        self.registry = registry
        self.reason = reason
        self.status = status


class BuildError(RuntimeFailure):
    """``where`` is ``file:line: INSTRUCTION`` for parse errors and the step for failed steps."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason
