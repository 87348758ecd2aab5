"""Incremental bookkeeping of one plan: what each node holds as tasks are placed.

Checks and rankers read these numbers instead of re-scanning the snapshot, and
``place`` updates them in O(ports + spread attributes) per task. Nodes are
referred to by their position (an ``int``): fast to hash, and deterministic to
iterate, unlike strings under hash randomisation.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from scheduler.constraints import Attribute
from scheduler.model import NodeInfo, Port, Requirements


class Ledger:
    def __init__(self, nodes: Sequence[NodeInfo]) -> None:
        self.nodes = nodes
        self.index = {n.id: i for i, n in enumerate(nodes)}
        self.free_cpu = [n.cpu_millis - n.allocated_cpu_millis for n in nodes]
        self.free_memory = [n.memory_bytes - n.allocated_memory_bytes for n in nodes]
        self.ports: list[frozenset[Port]] = [n.used_ports for n in nodes]
        self.tasks = [sum(n.service_counts.values()) for n in nodes]
        # Utilisation: the mean share of CPU and memory reserved, over the resources
        # the node reports (0 if none); the per-node scales let the ranker add a
        # task's share with two multiplications instead of branching.
        self.cpu_scale = [_share_scale(n.cpu_millis, n) for n in nodes]
        self.memory_scale = [_share_scale(n.memory_bytes, n) for n in nodes]
        self.utilisation = [
            (n.allocated_cpu_millis * c + n.allocated_memory_bytes * m)
            for n, c, m in zip(nodes, self.cpu_scale, self.memory_scale)
        ]
        self._services: dict[str, dict[int, int]] = {}
        for i, node in enumerate(nodes):
            for service, count in node.service_counts.items():
                if count > 0:
                    self._services.setdefault(service, {})[i] = count
        # service -> attribute -> value -> live tasks (built on first use)
        self._spread: dict[str, dict[Attribute, Counter[str | None]]] = {}

    def holders(self, service: str) -> Mapping[int, int]:
        """Nodes holding live tasks of ``service``, with how many."""
        return self._services.get(service, {})

    def count(self, service: str, node: int) -> int:
        return self._services.get(service, {}).get(node, 0)

    def spread_count(self, service: str, attribute: Attribute, node: int) -> int:
        """Live tasks of ``service`` on nodes sharing ``node``'s value of ``attribute``."""
        return self._value_counts(service, attribute)[attribute.of(self.nodes[node])]

    def _value_counts(self, service: str, attribute: Attribute) -> Counter[str | None]:
        per_attribute = self._spread.setdefault(service, {})
        counts = per_attribute.get(attribute)
        if counts is None:
            counts = per_attribute[attribute] = Counter()
            for i, n in self.holders(service).items():
                counts[attribute.of(self.nodes[i])] += n
        return counts

    def share(self, node: int, requirements: Requirements) -> float:
        """How much of the node's utilisation ``requirements`` would add."""
        return requirements.cpu_millis * self.cpu_scale[node] + requirements.memory_bytes * self.memory_scale[node]

    def place(self, node: int, service: str, requirements: Requirements) -> None:
        self.free_cpu[node] -= requirements.cpu_millis
        self.free_memory[node] -= requirements.memory_bytes
        self.utilisation[node] += self.share(node, requirements)
        if requirements.ports:
            self.ports[node] = self.ports[node].union(requirements.ports)
        self.tasks[node] += 1
        held = self._services.setdefault(service, {})
        held[node] = held.get(node, 0) + 1
        for attribute, counts in self._spread.get(service, {}).items():
            counts[attribute.of(self.nodes[node])] += 1


def _share_scale(capacity: int, node: NodeInfo) -> float:
    """1 / (capacity x resources the node reports), or 0 when it reports no capacity."""
    reported = (node.cpu_millis > 0) + (node.memory_bytes > 0)
    return 1 / (capacity * reported) if capacity > 0 else 0.0
