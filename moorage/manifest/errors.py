"""What is wrong with manifests: located problems, all of them at once. No pydantic here,
so `moor` can report errors without loading the model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the manifests; ``str()`` is one line for the user."""

    file: str
    reason: str
    document: int | None = None
    path: str = ""
    line: int | None = None

    def __str__(self) -> str:
        parts = [self.file]
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.document is not None:
            parts.append(f"document {self.document}")
        if self.path:
            parts.append(self.path)
        parts.append(self.reason)
        return ": ".join(parts)


class ManifestError(Exception):
    """The manifests are invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


# --- loading -----------------------------------------------------------------
