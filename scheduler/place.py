"""``place``: the scheduler's one entry point — feasibility, then ranking, per task.

How a task finds its node (the hot path, cost independent of the fleet size
once its spec has been seen):

1. Its *group* (service + requirements) is looked up. A new group evaluates
   the node checks (alive, availability, constraints) over the fleet once per
   distinct constraint set, and files the eligible nodes into *levels* by how
   many tasks of the service they hold (spread) or into one level (bin-pack),
   each in a seeded shuffled order.
2. The levels are walked from the lowest: each node goes through the fit
   checks (resources, ports, ...) until ``sample`` feasible nodes are found —
   Kubernetes' percentageOfNodesToScore, sized like Nomad's log2(n) limit.
   A node that fails a fit check is dropped from the group for good: a plan
   only adds to nodes, so it would fail again.
3. The sampled nodes are ranked (``rank.best``); the winner is booked in the
   ``Ledger`` and moves up one level in every group of its service.

A group with nothing left to walk fits nowhere: ``feasible.explain`` counts
the reasons once, and every later task of the group reuses them.
Tasks with ``volumes_from`` skip the levels: their candidates are the few
nodes holding the services they need.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from scheduler.constraints import Constraint
from scheduler.feasible import Check, explain, fit_checks, node_checks
from scheduler.ledger import Ledger
from scheduler.model import Config, NodeInfo, Plan, Reasons, Requirements, Strategy, TaskRequest
from scheduler.rank import Weighted, best, rankers

MIN_SAMPLE = 50
LOG_FACTOR = 4


def sample_size(nodes: int, config: Config) -> int:
    """Feasible nodes to score per task: ``config.sample``, else every node up to
    ``MIN_SAMPLE``, then ``LOG_FACTOR * log2(nodes)`` (52 at 5,000 nodes)."""
    if config.sample is not None:
        return max(1, config.sample)
    return max(MIN_SAMPLE, math.ceil(LOG_FACTOR * math.log2(max(nodes, 2))))


@dataclass
class _Group:
    service: str
    requirements: Requirements
    static: tuple[Check, ...]
    fits: tuple[Check, ...]
    weighted: Weighted
    # tasks of the service on the node -> nodes still worth visiting, in walk order
    levels: dict[int, dict[int, None]] = field(default_factory=dict)
    exhausted: Reasons | None = None


class _Placer:
    def __init__(self, nodes: Sequence[NodeInfo], config: Config) -> None:
        self.ledger = Ledger(sorted(nodes, key=lambda n: n.id))
        self.walk = list(range(len(self.ledger.nodes)))
        random.Random(config.seed).shuffle(self.walk)
        self.position = {node: i for i, node in enumerate(self.walk)}
        self.sample = sample_size(len(self.walk), config)
        self.strategy = config.strategy
        self._eligible: dict[tuple[Constraint, ...], dict[int, None]] = {}
        self._groups: dict[tuple[str, Requirements], _Group] = {}
        self._by_service: dict[str, list[_Group]] = {}

    def place(self, task: TaskRequest) -> int | Reasons:
        group = self._group(task)
        if group.exhausted is not None:
            return group.exhausted
        node = self._colocated(group) if group.requirements.volumes_from else self._walk(group)
        if node is None:
            reasons = explain(self.ledger, group.static + group.fits)
            if not group.requirements.volumes_from:
                group.exhausted = reasons  # fit checks only get stricter as the plan grows
            return reasons
        before = self.ledger.count(task.service, node)
        self.ledger.place(node, task.service, group.requirements)
        if self.strategy is Strategy.SPREAD:
            for other in self._by_service[task.service]:
                _promote(other.levels, node, before)
        return node

    def _group(self, task: TaskRequest) -> _Group:
        key = (task.service, task.requirements)
        group = self._groups.get(key)
        if group is None:
            r = task.requirements
            group = _Group(
                task.service, r, node_checks(r), fit_checks(task.service, r), rankers(task.service, r, self.strategy)
            )
            if not r.volumes_from:
                group.levels = self._levels(task.service, self._eligible_for(r.constraints, group.static))
            self._groups[key] = group
            self._by_service.setdefault(task.service, []).append(group)
        return group

    def _eligible_for(self, constraints: tuple[Constraint, ...], static: tuple[Check, ...]) -> dict[int, None]:
        """Nodes passing every node check, in walk order (computed once per constraint set)."""
        eligible = self._eligible.get(constraints)
        if eligible is None:
            self._eligible[constraints] = eligible = dict.fromkeys(_passing(self.ledger, static, self.walk))
        return eligible

    def _levels(self, service: str, eligible: dict[int, None]) -> dict[int, dict[int, None]]:
        levels = {0: dict(eligible)}
        if self.strategy is not Strategy.SPREAD:
            return levels
        for node in sorted(self.ledger.holders(service), key=self.position.__getitem__):
            if node in eligible:
                del levels[0][node]
                levels.setdefault(self.ledger.count(service, node), {})[node] = None
        return levels

    def _walk(self, group: _Group) -> int | None:
        """Up to ``sample`` feasible nodes from the lowest levels up, then the best of them."""
        found: list[int] = []
        dropped: list[tuple[int, list[int]]] = []
        for count in sorted(group.levels):
            remaining = iter(group.levels[count])
            while len(found) < self.sample:
                batch = list(itertools.islice(remaining, self.sample - len(found)))
                if not batch:
                    break
                fit = _passing(self.ledger, group.fits, batch)
                if len(fit) < len(batch):
                    kept = set(fit)
                    dropped.append((count, [n for n in batch if n not in kept]))
                found += fit
            if len(found) == self.sample:
                break
        for count, nodes in dropped:
            level = group.levels[count]
            for node in nodes:
                del level[node]
            if not level:
                del group.levels[count]
        return best(found, group.weighted, self.ledger) if found else None

    def _colocated(self, group: _Group) -> int | None:
        """The best of the nodes holding the first service in ``volumes_from``
        (the fit checks test the others)."""
        holders = sorted(self.ledger.holders(group.requirements.volumes_from[0]), key=self.position.__getitem__)
        candidates = _passing(self.ledger, group.static + group.fits, holders)
        return best(candidates[: self.sample], group.weighted, self.ledger) if candidates else None


def _passing(ledger: Ledger, checks: tuple[Check, ...], nodes: list[int]) -> list[int]:
    for check in checks:
        nodes = check.keep(ledger, nodes)
    return nodes


def _promote(levels: dict[int, dict[int, None]], node: int, count: int) -> None:
    """``node`` now holds one more task of the group's service: move it up a level."""
    level = levels.get(count)
    if level is None or node not in level:
        return
    del level[node]
    if not level:
        del levels[count]
    levels.setdefault(count + 1, {})[node] = None


def _by_dependency(tasks: Sequence[TaskRequest]) -> list[TaskRequest]:
    """Tasks in a stable order where a service comes before those mounting its volumes."""
    needs = {t.service: t.requirements.volumes_from for t in tasks}
    depth: dict[str, int] = {}

    def of(service: str, path: frozenset[str]) -> int:
        if service not in needs or service in path:
            return 0
        if service not in depth:
            depth[service] = 1 + max((of(p, path | {service}) for p in needs[service]), default=-1)
        return depth[service]

    return sorted(tasks, key=lambda t: of(t.service, frozenset()))


def place(tasks: Sequence[TaskRequest], nodes: Sequence[NodeInfo], config: Config = Config()) -> Plan:
    """Place ``tasks`` on ``nodes``; the same inputs and seed give the same plan,
    whatever the order of ``nodes``. Tasks the nodes already run are part of the
    nodes' allocations and never move (see ``stability.must_move``)."""
    placer = _Placer(nodes, config)
    placements: dict[str, str] = {}
    unplaced: dict[str, Reasons] = {}
    for task in _by_dependency(tasks):
        result = placer.place(task)
        if isinstance(result, Reasons):
            unplaced[task.task_id] = result
        else:
            placements[task.task_id] = placer.ledger.nodes[result].id
    return Plan(placements=placements, unplaced=unplaced)
