"""The container state machine, pure: statuses, legal actions, and status re-derivation.

    create ──► CREATED ──start──► RUNNING ──(exit | stop)──► EXITED
                  │                  ▲                         │
                  │                  └──restart (the shim's policy, after back-off)
                  └────────────────remove──────────────────────┴──► (gone)

``exec`` needs RUNNING. ``stop`` of an EXITED container only cancels pending restarts (the goal
already holds); ``remove`` of a RUNNING container needs ``force``. Everything else off this
chart raises InvalidState.
"""

from __future__ import annotations

import enum

from agent.runtime.errors import InvalidState


class ContainerStatus(enum.StrEnum):
    CREATED = "created"
    RUNNING = "running"
    EXITED = "exited"


class Action(enum.StrEnum):
    START = "start"
    STOP = "stop"
    REMOVE = "remove"
    FORCE_REMOVE = "force-remove"
    EXEC = "exec in"


_LEGAL: dict[Action, frozenset[ContainerStatus]] = {
    Action.START: frozenset({ContainerStatus.CREATED}),
    Action.STOP: frozenset({ContainerStatus.RUNNING, ContainerStatus.EXITED}),
    Action.REMOVE: frozenset({ContainerStatus.CREATED, ContainerStatus.EXITED}),
    Action.FORCE_REMOVE: frozenset(ContainerStatus),
    Action.EXEC: frozenset({ContainerStatus.RUNNING}),
}


def check(container_id: str, status: ContainerStatus, action: Action) -> None:
    """Raise InvalidState unless ``action`` is legal from ``status``."""
    if status not in _LEGAL[action]:
        raise InvalidState(container_id, status.value, action.value)


def derive_status(recorded: ContainerStatus, shim_alive: bool, init_alive: bool) -> ContainerStatus:
    """The true status from the recorded one and what the kernel says.

    A container recorded RUNNING is running while its shim (still draining logs, about to
    record the exit) or its PID 1 (the shim was killed) lives; with both gone it has exited
    even though nobody could record it.
    """
    if recorded is ContainerStatus.RUNNING and not (shim_alive or init_alive):
        return ContainerStatus.EXITED
    return recorded
