"""The fence decision of an agent cut off from its controllers (pure: times are passed in)."""

from __future__ import annotations

from agent.fence import Fence


def test_no_fence_before_the_first_registration() -> None:
    fence = Fence()
    assert not fence.due(1_000.0), "a restarted agent that reached no controller keeps its containers"
    assert not fence.fenced


def test_fences_once_when_silence_outlasts_the_ttl() -> None:
    fence = Fence()
    fence.heard(10.0)
    fence.registered(2.0)
    assert not fence.due(12.0), "exactly the TTL is not yet too long"
    assert fence.due(12.1)
    assert fence.fenced
    assert not fence.due(20.0), "one fence per silence"


def test_any_message_restarts_the_clock() -> None:
    fence = Fence()
    fence.heard(10.0)
    fence.registered(2.0)
    fence.heard(11.5)  # e.g. a heartbeat answer
    assert not fence.due(13.0)
    assert fence.due(13.6)


def test_a_new_registration_lifts_the_fence() -> None:
    fence = Fence()
    fence.heard(0.0)
    fence.registered(2.0)
    assert fence.due(5.0)
    fence.heard(30.0)
    fence.registered(3.0)
    assert not fence.fenced
    assert not fence.due(33.0)
    assert fence.due(33.1)


def test_a_ttl_of_zero_never_fences() -> None:
    fence = Fence()
    fence.registered(0.0)  # a controller that does not tell its TTL
    assert not fence.due(1e9)
