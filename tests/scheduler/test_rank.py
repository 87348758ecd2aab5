from __future__ import annotations

from collections.abc import Sequence

import pytest

from scheduler import Attribute, NodeInfo, Requirements, Strategy
from scheduler.ledger import Ledger
from scheduler.rank import (
    SPREAD_OVER_LABEL,
    WEIGHTS,
    Ranker,
    ServiceLoad,
    SpreadLoad,
    TaskLoad,
    Utilisation,
    Weighted,
    best,
    rankers,
)

ZONE = Attribute("labels", "zone")
NODES = [
    NodeInfo(id="a", cpu_millis=1000, memory_bytes=1000, labels={"zone": "x"}, service_counts={"web": 2, "db": 1},
             allocated_cpu_millis=500, allocated_memory_bytes=0),
    NodeInfo(id="b", cpu_millis=2000, memory_bytes=0, labels={"zone": "x"}, service_counts={"web": 1},
             allocated_cpu_millis=1000),
    NodeInfo(id="c", labels={"zone": "y"}),
    NodeInfo(id="d", cpu_millis=1000, memory_bytes=1000, service_counts={"web": 1}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("ranker", "expected"),
    [
        (ServiceLoad("web"), [2, 1, 0, 1]),
        (ServiceLoad("db"), [1, 0, 0, 0]),
        (SpreadLoad("web", ZONE), [3, 3, 0, 1]),  # d has no zone label: a group of its own
        (TaskLoad(), [3, 1, 0, 1]),
        # a: cpu (500+100)/1000, memory (0+100)/1000 -> mean 0.35; b: cpu only (1000+100)/2000;
        # c: reports nothing; d: 0.1 and 0.1
        (Utilisation(Requirements(cpu_millis=100, memory_bytes=100)), [0.35, 0.55, 0.0, 0.1]),
    ],
)
def test_ranker_raw_scores(ranker: Ranker, expected: list[float]) -> None:
    assert ranker.scores(Ledger(NODES), [0, 1, 2, 3]) == pytest.approx(expected)


def test_spread_load_follows_placements() -> None:
    ledger = Ledger(NODES)
    ranker = SpreadLoad("web", ZONE)
    assert ranker.scores(ledger, [2]) == [0]
    ledger.place(2, "web", Requirements())
    assert ranker.scores(ledger, [0, 2]) == [3, 1]


class Fixed:
    """A ranker with given raw numbers per node."""

    def __init__(self, *raw: float) -> None:
        self.raw = raw

    def scores(self, ledger: Ledger, nodes: Sequence[int]) -> list[float]:
        return [self.raw[n] for n in nodes]


@pytest.mark.parametrize(
    ("weighted", "winner"),
    [
        # raw ranges differ a thousandfold; normalised to 0..1 only the weights count
        (((Fixed(0, 1000, 400), 1.0), (Fixed(1, 0, 0.5), 2.0)), 0),
        (((Fixed(0, 1000, 400), 2.0), (Fixed(1, 0, 0.5), 1.0)), 1),
        # a constant ranker adds nothing; the middle node wins on the sum
        (((Fixed(5, 5, 5), 100.0), (Fixed(0, 0.6, 1), 1.0), (Fixed(1, 0.6, 0), 1.0)), 1),
        (((Fixed(3, 3, 3), 1.0),), 0),  # all tied: the first candidate
    ],
)
def test_best_normalises_then_weighs(weighted: Weighted, winner: int) -> None:
    assert best([0, 1, 2], weighted, Ledger(NODES)) == winner


def test_best_sums_weighted_normalised_scores_first_wins_ties() -> None:
    ledger = Ledger(NODES)
    fewer_web: Weighted = ((ServiceLoad("web"), -1.0),)
    assert best([0, 1, 2, 3], fewer_web, ledger) == 2
    assert best([0, 1, 3], fewer_web, ledger) == 1  # b and d tie: the earlier one
    assert best([0, 1, 3], ((ServiceLoad("web"), 1.0),), ledger) == 0  # positive weight stacks
    # utilisation (weight 1) cannot outweigh a difference of one task of the service (weight -2)...
    mixed: Weighted = ((ServiceLoad("web"), -2.0), (Utilisation(Requirements()), 1.0))
    assert best([1, 2], mixed, ledger) == 2
    # ...but normalised over a range of two tasks, half a step ties with it (then the earlier wins)
    assert best([0, 1, 2], mixed, ledger) == 1


def test_weights_each_outweigh_the_ones_below() -> None:
    for strategy in Strategy:
        service, utilisation, tasks = WEIGHTS[strategy]
        assert abs(SPREAD_OVER_LABEL) > abs(service) + abs(utilisation) + abs(tasks)
    service, utilisation, tasks = WEIGHTS[Strategy.SPREAD]
    assert abs(service) > abs(utilisation) + abs(tasks)
    assert utilisation < 0 < WEIGHTS[Strategy.BINPACK][1]  # spread avoids load, bin-pack seeks it


def test_rankers_per_strategy() -> None:
    requirements = Requirements(spread=(ZONE,))
    spread = rankers("web", requirements, Strategy.SPREAD)
    assert [(type(r).__name__, w) for r, w in spread] == [
        ("SpreadLoad", SPREAD_OVER_LABEL),
        ("ServiceLoad", -2.0),
        ("Utilisation", -1.0),
        ("TaskLoad", -0.5),
    ]
    assert [w for _, w in rankers("web", Requirements(), Strategy.BINPACK)] == [-0.5, 1.0, 0.5]
