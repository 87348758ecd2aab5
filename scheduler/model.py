"""The scheduler's inputs and output: immutable snapshots, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class NodeInfo:
    """One node as the scheduler sees it, with the tasks it already holds."""

    id: str
    ready: bool
    cpu_millis: int = 0
    memory_bytes: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)
    task_count: int = 0
    # service name -> live tasks of that service on this node
    service_counts: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskRequest:
    """A task waiting for a node."""

    task_id: str
    service: str


@dataclass(frozen=True)
class Plan:
    """Where each task goes, or why it goes nowhere."""

    placements: Mapping[str, str]  # task_id -> node_id
    unplaced: Mapping[str, str]  # task_id -> reason
