"""Feasibility: which nodes can take a task at all, and why the others cannot.

Each check is a tiny object with one question and a constant ``reason``. Two chains:

* ``node_checks`` ask about facts of the node that no placement changes (alive?
  drained? labels?). The placer evaluates them once per distinct set of
  constraints, not once per task.
* ``fit_checks`` ask about what the plan has put on the node so far (free CPU,
  ports...). Except for ``volumes_from``, once a fit check fails for a task it
  fails for every later task of the same spec, since a plan only ever adds to
  a node; the placer relies on that to never visit such a node again.

Each chain has one fixed order, cheapest and broadest first, and holds only
the checks a task actually needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from scheduler.constraints import Constraint
from scheduler.ledger import Ledger
from scheduler.model import Availability, Port, Reasons, Requirements

DOWN = "down"
DRAINED = "drained"
PAUSED = "paused"
MAX_REPLICAS = "max replicas per node reached"
INSUFFICIENT_CPU = "insufficient cpu"
INSUFFICIENT_MEMORY = "insufficient memory"


class Check(Protocol):
    """One question about a node; ``keep`` answers it for a batch of nodes at once
    (one list comprehension instead of a call per node) and returns those that pass."""

    reason: str

    def keep(self, ledger: Ledger, nodes: list[int]) -> list[int]: ...


class Ready:
    """Does the node have a live agent session?"""

    reason = DOWN

    def keep(self, ledger: Ledger, nodes: list[int]) -> list[int]:
        info = ledger.nodes
        return [n for n in nodes if info[n].ready]


class NotDrained:
    """Has the operator not drained the node?"""

    reason = DRAINED

    def keep(self, ledger: Ledger, nodes: list[int]) -> list[int]:
        info = ledger.nodes
        return [n for n in nodes if info[n].availability is not Availability.DRAIN]


class NotPaused:
    """Has the operator not paused the node (no new tasks, existing ones stay)?"""

    reason = PAUSED

    def keep(self, ledger: Ledger, nodes: list[int]) -> list[int]:
        info = ledger.nodes
        return [n for n in nodes if info[n].availability is not Availability.PAUSE]


@dataclass(frozen=True, slots=True)
class Satisfies:
    """Does the node satisfy one placement constraint?"""

    constraint: Constraint

    @property
    def reason(self) -> str:
        return f"constraint {self.constraint} not met"

    def keep(self, ledger: Ledger, nodes: list[int]) -> list[int]:
        info, matches = ledger.nodes, self.constraint.matches
        return [n for n in nodes if matches(info[n])]


@dataclass(frozen=True, slots=True)
class HoldsVolumesOf:
    """Does the node hold a container of the service whose volumes the task mounts?"""

    service: str

    @property
    def reason(self) -> str:
        return f"no container of {self.service} (volumes_from)"

    def keep(self, ledger: Ledger, nodes: list[int]) -> list[int]:
        holders = ledger.holders(self.service)
        return [n for n in nodes if n in holders]


@dataclass(frozen=True, slots=True)
class BelowMaxReplicas:
    """Does the node hold fewer than ``limit`` tasks of the service?"""

    service: str
    limit: int
    reason = MAX_REPLICAS

    def keep(self, ledger: Ledger, nodes: list[int]) -> list[int]:
        holders, limit = ledger.holders(self.service), self.limit
        return [n for n in nodes if holders.get(n, 0) < limit]


@dataclass(frozen=True, slots=True)
class CpuFits:
    """Is the node's unreserved CPU at least the task's reservation?"""

    millis: int
    reason = INSUFFICIENT_CPU

    def keep(self, ledger: Ledger, nodes: list[int]) -> list[int]:
        free, needed = ledger.free_cpu, self.millis
        return [n for n in nodes if free[n] >= needed]


@dataclass(frozen=True, slots=True)
class MemoryFits:
    """Is the node's unreserved memory at least the task's reservation?"""

    memory_bytes: int
    reason = INSUFFICIENT_MEMORY

    def keep(self, ledger: Ledger, nodes: list[int]) -> list[int]:
        free, needed = ledger.free_memory, self.memory_bytes
        return [n for n in nodes if free[n] >= needed]


@dataclass(frozen=True, slots=True)
class PortFree:
    """Is this host port free on the node?"""

    port: Port

    @property
    def reason(self) -> str:
        return f"port {self.port} in use"

    def keep(self, ledger: Ledger, nodes: list[int]) -> list[int]:
        used, port = ledger.ports, self.port
        return [n for n in nodes if port not in used[n]]


READY, NOT_DRAINED, NOT_PAUSED = Ready(), NotDrained(), NotPaused()


def node_checks(requirements: Requirements) -> tuple[Check, ...]:
    # 1-3: one attribute each, and the reasons an operator most wants to see first.
    # 4: constraints, a label lookup each.
    return (READY, NOT_DRAINED, NOT_PAUSED, *(Satisfies(c) for c in requirements.constraints))


def fit_checks(service: str, requirements: Requirements) -> tuple[Check, ...]:
    r = requirements
    checks: list[Check] = [HoldsVolumesOf(s) for s in r.volumes_from]  # 5: co-location narrows the most
    if r.max_replicas_per_node:
        checks.append(BelowMaxReplicas(service, r.max_replicas_per_node))  # 6: one dict lookup
    if r.cpu_millis > 0:
        checks.append(CpuFits(r.cpu_millis))  # 7: one comparison
    if r.memory_bytes > 0:
        checks.append(MemoryFits(r.memory_bytes))  # 8: one comparison
    checks += [PortFree(p) for p in r.ports]  # 9: a set lookup per port
    return tuple(checks)


def explain(ledger: Ledger, checks: Sequence[Check]) -> Reasons:
    """Run the whole chain over every node and count the first reason each fails for.

    Only called for a task that fits nowhere, so its O(nodes) cost is paid once
    per unplaceable spec, not per placement.
    """
    counts: list[tuple[str, int]] = []
    survivors = list(range(len(ledger.nodes)))
    for check in checks:
        kept = check.keep(ledger, survivors)
        if len(kept) < len(survivors):
            counts.append((check.reason, len(survivors) - len(kept)))
        survivors = kept
    merged: dict[str, int] = {}
    for reason, n in counts:  # several checks may share a reason
        merged[reason] = merged.get(reason, 0) + n
    # most nodes first; sorted() is stable, so ties keep the chain's order
    return Reasons(tuple(sorted(merged.items(), key=lambda item: -item[1])))
