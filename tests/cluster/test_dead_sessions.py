"""A partitioned host's session is ended by the controller long before its node's lease runs out:
the cut veth sends no FIN, but the controller's pings and writes to the host fail, and the session's
end is carried through (its routes ended, "agent session ended" logged) although gRPC cancels the
handler meanwhile. A peer that stays silent without any error is tests/controller/test_dead_sessions.py."""

from __future__ import annotations

import json
from pathlib import Path

from moorage.localcluster.procs import wait_for
from tests.cluster.conftest import ClusterFactory

NODE_TTL = 600.0  # the node stays up all along: the lease plays no part
ENDED_WITHIN = 40.0  # generous: a few seconds of pings, on a loaded machine


def sessions_ended(log: Path, node: str) -> int:
    """How many "agent session ended" records of ``node`` the controller's JSON log holds."""
    count = 0
    for line in log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("event") == "agent session ended" and entry.get("node") == node:
            count += 1
    return count


def test_a_partitioned_hosts_session_is_ended_by_the_controller(cluster_factory: ClusterFactory) -> None:
    cluster = cluster_factory(hosts=2, node_ttl=NODE_TTL)
    victim = cluster.agent("h2")
    log = cluster.base / "controller.log"
    before = sessions_ended(log, victim.name)
    cluster.partition(victim)
    try:
        wait_for(lambda: sessions_ended(log, victim.name) > before, ENDED_WITHIN, "the controller to end h2's session")
    finally:
        cluster.heal(victim)
