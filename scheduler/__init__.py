"""Pure placement: (tasks, snapshot of nodes) -> plan. No I/O, no globals."""

from scheduler.model import NodeInfo, Plan, TaskRequest
from scheduler.place import place

__all__ = ["NodeInfo", "Plan", "TaskRequest", "place"]
