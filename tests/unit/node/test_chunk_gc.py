"""Touch times, GC rounds and sweep planning (the node side of mark-and-sweep GC)."""

import pytest

from cairn.node.chunk_gc import GC_ROUNDS_MAX, TouchLog, parse_live_ids, plan_sweep
from cairn.runtime.rng import SystemRng


class ManualClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.now


def cid(n: int) -> bytes:
    return n.to_bytes(32, "big")


def test_untouched_chunks_count_as_touched_at_process_start() -> None:
    clock = ManualClock(100.0)
    touches = TouchLog(clock, SystemRng())
    clock.now = 150.0
    touches.touch([cid(1)])
    assert touches.time_of(cid(1)) == 150.0
    assert touches.time_of(cid(2)) == 100.0
    touches.forget(cid(1))
    assert touches.time_of(cid(1)) == 100.0


def test_plan_keeps_live_and_recent_chunks() -> None:
    clock = ManualClock(100.0)
    touches = TouchLog(clock, SystemRng())
    touches.touch([cid(1), cid(2)])
    clock.now = 200.0
    touches.touch([cid(3)])
    held = [(cid(n), 10 * n) for n in (1, 2, 3, 4)]  # 4: never touched -> 100
    plan = plan_sweep(held, frozenset({cid(1)}), touches, cutoff=150.0)
    assert (plan.scanned, plan.kept_live, plan.kept_recent) == (4, 1, 1)
    assert plan.victims == [(cid(2), 20), (cid(4), 40)]
    # A cutoff before the process start keeps everything that is not live.
    plan = plan_sweep(held, frozenset(), touches, cutoff=99.0)
    assert plan.victims == [] and plan.kept_recent == 4


def test_prune_only_drops_entries_older_than_cutoff() -> None:
    clock = ManualClock(100.0)
    touches = TouchLog(clock, SystemRng())
    touches.touch([cid(1)])
    clock.now = 200.0
    touches.touch([cid(2)])
    assert touches.prune_before(150.0) == 1
    assert len(touches) == 1 and touches.time_of(cid(2)) == 200.0


def test_rounds_are_remembered_with_their_start_and_bounded() -> None:
    clock = ManualClock(5.0)
    touches = TouchLog(clock, SystemRng())
    first = touches.begin_round()
    assert touches.round_start(first) == 5.0
    for _ in range(GC_ROUNDS_MAX):
        clock.now += 1
        last = touches.begin_round()
    assert touches.round_start(first) is None
    assert touches.round_start(last) == clock.now
    assert 0 <= last < 2**63


def test_parse_live_ids() -> None:
    assert parse_live_ids(memoryview(cid(1) + cid(2))) == {cid(1), cid(2)}
    assert parse_live_ids(memoryview(b"")) == frozenset()
    with pytest.raises(ValueError, match="multiple of 32"):
        parse_live_ids(memoryview(cid(1) + b"x"))
