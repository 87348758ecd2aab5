"""The scheduler's inputs and output: frozen snapshots and a plan, no I/O."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from scheduler.constraints import Attribute, Constraint


class Availability(enum.Enum):
    ACTIVE = "active"
    DRAIN = "drain"  # no new tasks; the ones it runs move off
    PAUSE = "pause"  # no new tasks; the ones it runs stay


class Strategy(enum.Enum):
    SPREAD = "spread"  # prefer the least loaded nodes
    BINPACK = "binpack"  # prefer the most loaded nodes that still fit


@dataclass(frozen=True, slots=True)
class Port:
    """A host port a task publishes."""

    number: int
    protocol: str = "tcp"

    def __str__(self) -> str:
        return f"{self.number}/{self.protocol}"


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """One node as the scheduler sees it: what it offers and what it already holds."""

    id: str
    hostname: str = ""
    ready: bool = True  # a live agent session
    availability: Availability = Availability.ACTIVE
    cpu_millis: int = 0
    memory_bytes: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)
    # reserved by the tasks the node holds
    allocated_cpu_millis: int = 0
    allocated_memory_bytes: int = 0
    used_ports: frozenset[Port] = frozenset()
    # service name -> live tasks of that service here (also: whose volumes the node holds)
    service_counts: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Requirements:
    """What every task of one service spec asks of its node (shared by its tasks)."""

    cpu_millis: int = 0
    memory_bytes: int = 0
    ports: tuple[Port, ...] = ()
    constraints: tuple[Constraint, ...] = ()
    spread: tuple[Attribute, ...] = ()
    max_replicas_per_node: int = 0  # 0 = unlimited
    volumes_from: tuple[str, ...] = ()  # services whose node this task must share


@dataclass(frozen=True, slots=True)
class TaskRequest:
    """A task waiting for a node."""

    task_id: str
    service: str
    requirements: Requirements = Requirements()


@dataclass(frozen=True, slots=True)
class Config:
    """Cluster-wide placement settings."""

    strategy: Strategy = Strategy.SPREAD
    # Ties between equally good nodes break by a shuffle seeded with this.
    seed: int = 0
    # Feasible nodes scored per task; None = 50, or 4 x log2(nodes) on fleets
    # above ~5,800 nodes (see place.sample_size).
    sample: int | None = None


@dataclass(frozen=True, slots=True)
class Reasons:
    """Why a task went nowhere: how many nodes each check rejected, most first."""

    counts: tuple[tuple[str, int], ...]

    def __str__(self) -> str:
        if not self.counts:
            return "no nodes in the cluster"
        parts = [f"{n} node{'s' if n != 1 else ''}: {reason}" for reason, n in self.counts]
        return f"no node fits ({'; '.join(parts)})"


@dataclass(frozen=True)
class Plan:
    """Where each task goes, or why it goes nowhere."""

    placements: Mapping[str, str]  # task_id -> node_id
    unplaced: Mapping[str, Reasons]  # task_id -> reasons
