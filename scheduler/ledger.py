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
        # 1/capacity (0 when the node reports none) and 1/(resources it reports),
        # so the utilisation ranker multiplies instead of branching
        self.cpu_scale = [1 / n.cpu_millis if n.cpu_millis > 0 else 0.0 for n in nodes]
        self.memory_scale = [1 / n.memory_bytes if n.memory_bytes > 0 else 0.0 for n in nodes]
        self.resource_scale = [
            1 / k if (k := (n.cpu_millis > 0) + (n.memory_bytes > 0)) else 0.0 for n in nodes
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

    def place(self, node: int, service: str, requirements: Requirements) -> None:
        self.free_cpu[node] -= requirements.cpu_millis
        self.free_memory[node] -= requirements.memory_bytes
        if requirements.ports:
            self.ports[node] = self.ports[node].union(requirements.ports)
        self.tasks[node] += 1
        held = self._services.setdefault(service, {})
        held[node] = held.get(node, 0) + 1
        for attribute, counts in self._spread.get(service, {}).items():
            counts[attribute.of(self.nodes[node])] += 1
