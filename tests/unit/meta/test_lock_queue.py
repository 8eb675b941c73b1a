"""The leader's parked acquires: what parks, in what order it leaves, what never parks."""

import pytest

from cairn.meta.lock_queue import ParkedAcquires
from cairn.meta.locks import (
    EXCLUSIVE,
    LOCK_NAME_BYTES_MAX,
    SHARED,
    WAITERS_PER_NAME_MAX,
    Acquire,
    Grant,
    LockInfo,
    Mode,
    Wait,
)


def held(name: str, *modes: Mode) -> LockInfo:
    """`name` held by sessions 100, 101, ... in `modes`."""
    holders = tuple(Grant(100 + i, name, 1, mode, 1 + i) for i, mode in enumerate(modes))
    return LockInfo(name, holders, ())


def acquire(session_id: int, name: str = "job", mode: Mode = EXCLUSIVE, rid: int = 5) -> Acquire:
    return Acquire(session_id, name, mode, rid)


def test_parks_only_what_would_queue() -> None:
    q = ParkedAcquires(total_max=100)
    assert not q.should_park(acquire(1), None, 0)  # free: the log grants it
    assert q.should_park(acquire(1), held("job", EXCLUSIVE), 0)
    assert q.should_park(acquire(1), held("job", SHARED), 0)  # a writer behind readers
    assert not q.should_park(acquire(1, mode=SHARED), held("job", SHARED), 0)  # joins them
    queued = LockInfo("job", held("job", SHARED).holders, (Wait(7, "job", 1, EXCLUSIVE),))
    assert q.should_park(acquire(1, mode=SHARED), queued, 0)  # behind the log's queue


def test_never_parks_what_the_machine_must_answer() -> None:
    q = ParkedAcquires(total_max=100)
    info = held("job", EXCLUSIVE)
    assert not q.should_park(Acquire(1, "job", EXCLUSIVE, 5, wait=False), info, 0)  # try-lock
    assert not q.should_park(acquire(1), info, None)  # no such session
    assert not q.should_park(acquire(1, rid=5), info, 5)  # stale request id
    assert not q.should_park(acquire(100), info, 0)  # the holder again: retry or re-entry
    waiting = LockInfo("job", info.holders, (Wait(1, "job", 3, EXCLUSIVE),))
    assert not q.should_park(acquire(1), waiting, 0)  # already waits in the log
    assert not q.should_park(acquire(1, name=""), held("", EXCLUSIVE), 0)
    long_name = "n" * (LOCK_NAME_BYTES_MAX + 1)
    assert not q.should_park(acquire(1, name=long_name), held(long_name, EXCLUSIVE), 0)
    assert not q.should_park(Acquire(1, "job", "upgrade", 5), info, 0)  # type: ignore[arg-type]
    q.park(acquire(1))
    assert not q.should_park(acquire(1, rid=6), info, 0)  # second request of the session


def test_once_a_name_has_parked_requests_later_ones_queue_behind_them() -> None:
    q = ParkedAcquires(total_max=100)
    q.park(acquire(1))
    # Even a lock that looks free (a release in flight) does not let a newcomer jump ahead.
    assert q.should_park(acquire(2), None, 0)
    assert q.should_park(acquire(3, mode=SHARED), held("job", SHARED), 0)


def test_limits() -> None:
    q = ParkedAcquires(total_max=3)
    for session in (1, 2, 3):
        q.park(acquire(session, name=f"n{session}"))
    assert not q.should_park(acquire(9), held("job", EXCLUSIVE), 0)  # total reached
    q = ParkedAcquires(total_max=10 * WAITERS_PER_NAME_MAX)
    for session in range(WAITERS_PER_NAME_MAX):
        q.park(acquire(session + 1))
    assert not q.should_park(acquire(10**6), held("job", EXCLUSIVE), 0)  # the name is full


def test_head_run_exclusive_alone_shared_together_in_order() -> None:
    q = ParkedAcquires(total_max=100)
    for session, mode in [(1, SHARED), (2, SHARED), (3, EXCLUSIVE), (4, SHARED)]:
        q.park(acquire(session, mode=mode))
    assert q.take_head_run("job", held("job", EXCLUSIVE).holders) == []  # not free for them
    run = q.take_head_run("job", held("job", SHARED).holders)  # readers join readers
    assert [p.command.session_id for p in run] == [1, 2]
    assert q.take_head_run("job", held("job", SHARED).holders) == []  # a writer is next
    assert [p.command.session_id for p in q.take_head_run("job", ())] == [3]
    assert [w.session_id for w in q.waiters("job")] == [4]
    assert [p.command.session_id for p in q.take_head_run("job", ())] == [4]
    assert len(q) == 0 and q.names() == [] and q.head("job") is None


def test_take_session_returns_its_requests_lowest_id_first() -> None:
    q = ParkedAcquires(total_max=100)
    q.park(acquire(1, name="b", rid=9))
    q.park(acquire(2, name="b", rid=3))
    q.park(acquire(1, name="a", rid=4))
    taken = q.take_session(1)
    assert [(p.command.name, p.command.request_id) for p in taken] == [("a", 4), ("b", 9)]
    assert q.find(1, "a") is None and q.find(2, "b") is not None
    assert q.waiters("b") == (Wait(2, "b", 3, EXCLUSIVE),)


def test_remove_and_clear() -> None:
    q = ParkedAcquires(total_max=100)
    first = q.park(acquire(1))
    second = q.park(acquire(2))
    assert q.remove(first) and not q.remove(first)
    assert q.head("job") is second
    with pytest.raises(AssertionError):
        q.park(acquire(2))  # the same request twice
    assert q.clear() == [second] and len(q) == 0
