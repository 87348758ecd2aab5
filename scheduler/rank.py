"""Ranking: among the feasible nodes, which one a task should go to."""

from __future__ import annotations

from collections.abc import Mapping


def spread_key(service: str, node_id: str, task_counts: Mapping[str, int],
               service_counts: Mapping[str, Mapping[str, int]]) -> tuple[int, int, str]:
    """Spread replicas: fewest tasks of this service, then fewest tasks, then node id.

    The node id as the last key makes every tie break the same way, so the same
    snapshot always yields the same plan.
    """
    return (service_counts[node_id].get(service, 0), task_counts[node_id], node_id)
