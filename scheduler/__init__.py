"""Pure placement: (tasks, snapshot of nodes, config) -> plan. No I/O, no globals.

The pipeline (see ``place``): node checks and fit checks (``feasible``) with a
constant reason each, then normalised weighted rankers (``rank``), over an
incremental ``Ledger`` of what the plan has placed so far.
"""

from scheduler.constraints import Attribute, Constraint, ConstraintError, parse_attribute, parse_constraint
from scheduler.model import (
    Availability,
    Config,
    NodeInfo,
    Plan,
    Port,
    Reasons,
    Requirements,
    Strategy,
    TaskRequest,
)
from scheduler.place import place
from scheduler.stability import must_move

__all__ = [
    "Attribute",
    "Availability",
    "Config",
    "Constraint",
    "ConstraintError",
    "NodeInfo",
    "Plan",
    "Port",
    "Reasons",
    "Requirements",
    "Strategy",
    "TaskRequest",
    "must_move",
    "parse_attribute",
    "parse_constraint",
    "place",
]
