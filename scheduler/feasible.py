"""Feasibility: which nodes can take a task at all, and why the others cannot.

Each filter answers one question about one node and returns a constant reason
when it rejects the node (``None`` when the node passes). The chain runs the
filters in the order of ``FILTERS``, cheapest first, and counts rejections per
reason so an unplaced task can say why ("no ready nodes (3 nodes: down)").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from scheduler.model import NodeInfo, TaskRequest

DOWN = "down"

Filter = Callable[[TaskRequest, NodeInfo], str | None]


def node_ready(task: TaskRequest, node: NodeInfo) -> str | None:
    """Only nodes with a live agent session take work."""
    return None if node.ready else DOWN


FILTERS: tuple[Filter, ...] = (node_ready,)


@dataclass(frozen=True)
class Feasibility:
    """The nodes that passed every filter, and the reason each other node failed."""

    nodes: tuple[NodeInfo, ...]
    rejected: dict[str, str]  # node_id -> reason of the first filter that rejected it

    def explain(self, total: int) -> str:
        """Why no node fits, with the distinct rejection reasons in filter order."""
        reasons = list(dict.fromkeys(self.rejected.values()))
        detail = f"{total} nodes: {', '.join(reasons)}" if reasons else f"{total} nodes"
        return f"no ready nodes ({detail})"


def feasible(task: TaskRequest, nodes: Sequence[NodeInfo], filters: Sequence[Filter] = FILTERS) -> Feasibility:
    passed: list[NodeInfo] = []
    rejected: dict[str, str] = {}
    for node in nodes:
        reason = next((r for r in (f(task, node) for f in filters) if r is not None), None)
        if reason is None:
            passed.append(node)
        else:
            rejected[node.id] = reason
    return Feasibility(tuple(passed), rejected)
