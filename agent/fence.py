"""Self-fencing: an agent cut off from every controller stops its containers.

A controller answers every heartbeat that renewed the node's lease, and marks
the node down (replacing its tasks elsewhere) once the lease has gone a node
TTL unrenewed. So an agent that has heard nothing from any controller for a
node TTL must assume its tasks already run elsewhere, and stops them: Nomad's
``stop_after_client_disconnect``, made the default. Without it a partitioned
host would run its slots twice until the partition heals (Swarm's behaviour).

The clock only runs once this process has registered (and learnt the TTL), so
an agent restarted while its controllers are out of reach re-adopts its
containers instead of stopping them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Fence:
    """When the agent last heard a controller, and whether it has fenced itself since."""

    ttl: float = 0.0  # the controller's node TTL; 0 (not registered yet, or told 0): never fence
    heard_at: float = 0.0
    fenced: bool = False

    def registered(self, ttl: float) -> None:
        """A session was opened (and heard): fence after the controller's TTL; a fence lifts."""
        self.ttl, self.fenced = ttl, False

    def heard(self, now: float) -> None:
        self.heard_at = now

    def silence(self, now: float) -> float:
        return now - self.heard_at

    def due(self, now: float) -> bool:
        """Whether to fence now: once per silence, when it first lasts longer than the TTL."""
        if self.fenced or self.ttl <= 0 or self.silence(now) <= self.ttl:
            return False
        self.fenced = True
        return True
