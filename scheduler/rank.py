"""Ranking: among the feasible nodes, which one a task should go to.

Each ranker returns a raw number about one node (a count, a fraction); ``best``
normalises every ranker's numbers to 0..1 over the candidates, multiplies them
by the ranker's weight and sums them, as nova's weighers do. A negative weight
means "less is better": spreading is a negative weight on load, bin-packing a
positive one. The weights are ordered so that spreading over a label beats
spreading over nodes, which beats balancing load: each weight is larger than
the sum of those below it, so where the candidates' counts differ by one (as
when spreading: the placer samples the lowest levels first), a lower-ranked
preference only breaks ties of a higher one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from scheduler.constraints import Attribute
from scheduler.ledger import Ledger
from scheduler.model import Requirements, Strategy


class Ranker(Protocol):
    """Raw numbers about a batch of nodes, one per node."""

    def scores(self, ledger: Ledger, nodes: Sequence[int]) -> list[float]: ...


@dataclass(frozen=True, slots=True)
class ServiceLoad:
    """Tasks of the service already on the node."""

    service: str

    def scores(self, ledger: Ledger, nodes: Sequence[int]) -> list[float]:
        held = ledger.holders(self.service)
        return [held.get(n, 0) for n in nodes]


@dataclass(frozen=True, slots=True)
class SpreadLoad:
    """Tasks of the service on nodes with the same value of an attribute (same zone)."""

    service: str
    attribute: Attribute

    def scores(self, ledger: Ledger, nodes: Sequence[int]) -> list[float]:
        return [ledger.spread_count(self.service, self.attribute, n) for n in nodes]


@dataclass(frozen=True, slots=True)
class Utilisation:
    """The share of the node's CPU and memory reserved once the task is there (0..1,
    the mean over the resources the node reports)."""

    requirements: Requirements

    def scores(self, ledger: Ledger, nodes: Sequence[int]) -> list[float]:
        now = ledger.utilisation
        cpu, memory = self.requirements.cpu_millis, self.requirements.memory_bytes
        if not (cpu or memory):
            return [now[n] for n in nodes]
        cpu_scale, memory_scale = ledger.cpu_scale, ledger.memory_scale
        return [now[n] + cpu * cpu_scale[n] + memory * memory_scale[n] for n in nodes]


class TaskLoad:
    """Tasks of any service on the node."""

    def scores(self, ledger: Ledger, nodes: Sequence[int]) -> list[float]:
        tasks = ledger.tasks
        return [tasks[n] for n in nodes]


Weighted = tuple[tuple[Ranker, float], ...]

SPREAD_OVER_LABEL = -4.0
# strategy -> weights of (service load, utilisation, task load)
WEIGHTS = {
    Strategy.SPREAD: (-2.0, -1.0, -0.5),
    # Still a little anti-affinity, so replicas share a node only when packing gains.
    Strategy.BINPACK: (-0.5, 1.0, 0.5),
}


def rankers(service: str, requirements: Requirements, strategy: Strategy) -> Weighted:
    service_load, utilisation, task_load = WEIGHTS[strategy]
    return (
        *((SpreadLoad(service, a), SPREAD_OVER_LABEL) for a in requirements.spread),
        (ServiceLoad(service), service_load),
        (Utilisation(requirements), utilisation),
        (TaskLoad(), task_load),
    )


def best(candidates: Sequence[int], weighted: Weighted, ledger: Ledger) -> int:
    """The candidate with the highest weighted sum of min-max normalised scores
    (each ranker's raw numbers mapped to 0..1 over the candidates, then times
    its weight); the earliest candidate on a tie."""
    if len(candidates) == 1:
        return candidates[0]
    totals = [0.0] * len(candidates)
    for ranker, weight in weighted:
        raw = ranker.scores(ledger, candidates)
        lo, hi = min(raw), max(raw)
        if hi == lo:
            continue  # normalises to all zeros
        scale = weight / (hi - lo)
        totals = [total + (r - lo) * scale for total, r in zip(totals, raw)]
    return candidates[totals.index(max(totals))]
