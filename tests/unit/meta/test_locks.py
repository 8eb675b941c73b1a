"""The lock state machine by example: grant table, FIFO, fencing, sessions, snapshots, limits."""

import pytest

from cairn.meta import locks
from cairn.meta.locks import (
    COMMAND_FORMAT_V1,
    EXCLUSIVE,
    SHARED,
    Acquire,
    AlreadyHeld,
    CheckFence,
    CloseSession,
    ExpireSession,
    Grant,
    LockInfo,
    LockStateMachine,
    MalformedCommand,
    Mode,
    NotHeld,
    OpenSession,
    Release,
    Request,
    Result,
    SessionInfo,
    Wait,
    decode_request,
    encode_request,
    error_of,
    propose_session_id,
)


def machine(*session_ids: int) -> LockStateMachine:
    m = LockStateMachine()
    for sid in session_ids:
        assert m.execute(OpenSession(sid, 1_000, f"client-{sid}")) == Result("ok")
    return m


def acquire(
    m: LockStateMachine, sid: int, name: str, mode: Mode, rid: int, wait: bool = True
) -> Result:
    return m.execute(Acquire(sid, name, mode, rid, wait))


# The grant table of the module docstring: (held modes, queued modes, new mode) -> status.
GRANT_TABLE = [
    ((), (), SHARED, "granted"),
    ((), (), EXCLUSIVE, "granted"),
    ((SHARED,), (), SHARED, "granted"),
    ((SHARED,), (), EXCLUSIVE, "queued"),
    ((SHARED,), (EXCLUSIVE,), SHARED, "queued"),
    ((SHARED,), (EXCLUSIVE,), EXCLUSIVE, "queued"),
    ((SHARED, SHARED), (), SHARED, "granted"),
    ((EXCLUSIVE,), (), SHARED, "queued"),
    ((EXCLUSIVE,), (), EXCLUSIVE, "queued"),
    ((EXCLUSIVE,), (SHARED,), SHARED, "queued"),
]


@pytest.mark.parametrize(("held", "queued", "mode", "status"), GRANT_TABLE)
@pytest.mark.parametrize("wait", [True, False])
def test_grant_table(
    held: tuple[Mode, ...], queued: tuple[Mode, ...], mode: Mode, status: str, wait: bool
) -> None:
    m = machine(1, 2, 3, 4, 5)
    sid = 1
    for held_mode in held:
        assert acquire(m, sid, "n", held_mode, 1).status == "granted"
        sid += 1
    for queued_mode in queued:
        assert acquire(m, sid, "n", queued_mode, 1).status == "queued"
        sid += 1
    expected = status if wait or status == "granted" else "refused"
    result = acquire(m, 5, "n", mode, 1, wait)
    assert result.status == expected
    info = m.lock_info("n")
    assert info is not None
    assert (5 in {g.session_id for g in info.holders}) == (expected == "granted")
    assert (5 in {w.session_id for w in info.waiters}) == (expected == "queued")
    m.check_invariants()


def test_fifo_with_a_writer_between_readers() -> None:
    m = machine(1, 2, 3, 4, 5)
    assert acquire(m, 1, "n", SHARED, 1) == Result("granted", token=1)
    assert acquire(m, 2, "n", EXCLUSIVE, 1).status == "queued"
    assert acquire(m, 3, "n", SHARED, 1).status == "queued"  # behind the writer
    assert acquire(m, 4, "n", SHARED, 1).status == "queued"
    assert acquire(m, 5, "n", EXCLUSIVE, 1).status == "queued"
    released = m.execute(Release(1, "n", 1))
    assert released.released == (Grant(1, "n", 1, SHARED, 1),)
    assert released.granted == (Grant(2, "n", 1, EXCLUSIVE, 2),)
    # The writer leaves: both readers together, the last writer waits for them.
    after_writer = m.execute(Release(2, "n", 1))
    assert after_writer.granted == (Grant(3, "n", 1, SHARED, 3), Grant(4, "n", 1, SHARED, 4))
    assert m.execute(Release(3, "n", 1)).granted == ()
    assert m.execute(Release(4, "n", 1)).granted == (Grant(5, "n", 1, EXCLUSIVE, 5),)
    assert m.execute(Release(5, "n", 1)).granted == ()
    assert m.lock_info("n") is None
    m.check_invariants()


def test_cancelling_the_head_waiter_advances_the_queue() -> None:
    m = machine(1, 2, 3)
    acquire(m, 1, "n", SHARED, 1)
    acquire(m, 2, "n", EXCLUSIVE, 7)
    acquire(m, 3, "n", SHARED, 1)
    result = m.execute(Release(2, "n", 7))  # try-lock timeout: cancel the wait
    assert result.cancelled == (Wait(2, "n", 7, EXCLUSIVE),)
    assert result.granted == (Grant(3, "n", 1, SHARED, 2),)
    m.check_invariants()


def test_close_and_expire_release_grants_and_cancel_waits() -> None:
    for end in (CloseSession, ExpireSession):
        m = machine(1, 2, 3)
        acquire(m, 1, "a", EXCLUSIVE, 1)
        acquire(m, 1, "b", SHARED, 2)
        acquire(m, 2, "a", EXCLUSIVE, 1)
        acquire(m, 2, "b", EXCLUSIVE, 2)
        acquire(m, 1, "c", SHARED, 3)  # granted, nobody else
        acquire(m, 3, "c", EXCLUSIVE, 1)
        acquire(m, 1, "c2", SHARED, 4)
        acquire(m, 3, "c2", EXCLUSIVE, 2)
        # Session 2 waits on "b" too; end session 2 first: its waits are cancelled.
        ended = m.execute(end(2))
        assert ended.cancelled == (Wait(2, "a", 1, EXCLUSIVE), Wait(2, "b", 2, EXCLUSIVE))
        assert ended.released == () and ended.granted == ()
        ended = m.execute(end(1))
        assert [g.name for g in ended.released] == ["a", "b", "c", "c2"]
        assert ended.granted == (Grant(3, "c", 1, EXCLUSIVE, 5), Grant(3, "c2", 2, EXCLUSIVE, 6))
        assert not m.has_session(1) and m.has_session(3)
        assert error_of(m.execute(end(1))) is not None
        m.check_invariants()


def test_fencing_tokens_and_check_fence() -> None:
    m = machine(1, 2)
    assert acquire(m, 1, "n", EXCLUSIVE, 1).token == 1
    assert m.execute(CheckFence("n", 1)) == Result("ok", current=True)
    assert acquire(m, 2, "n", EXCLUSIVE, 1).status == "queued"
    m.execute(ExpireSession(1))  # the holder paused past its lease
    assert m.execute(CheckFence("n", 1)) == Result("ok", current=False)
    assert m.fence_is_current("n", 2) and not m.fence_is_current("n", 1)
    assert not m.fence_is_current("other", 2)
    m.execute(Release(2, "n", 1))
    assert acquire(m, 2, "n", EXCLUSIVE, 2).token == 3  # never reused


def test_retry_is_idempotent_and_re_entry_is_refused() -> None:
    m = machine(1, 2)
    assert acquire(m, 1, "n", EXCLUSIVE, 5) == Result("granted", token=1)
    assert acquire(m, 1, "n", EXCLUSIVE, 5) == Result("granted", token=1)  # retry
    again = acquire(m, 1, "n", EXCLUSIVE, 6)
    assert again.error == "already_held" and isinstance(error_of(again), AlreadyHeld)
    assert acquire(m, 1, "n", SHARED, 5).error == "already_held"  # same id, other mode
    assert acquire(m, 2, "n", SHARED, 1).status == "queued"
    assert acquire(m, 2, "n", SHARED, 1).status == "queued"  # retry while waiting
    m.execute(Release(1, "n", 5))
    assert acquire(m, 2, "n", SHARED, 1) == Result("granted", token=2)  # retry after grant
    # A delayed retry of a request that was released cannot take the lock again.
    assert acquire(m, 1, "n", EXCLUSIVE, 5).error == "stale_request"
    assert acquire(m, 1, "n", EXCLUSIVE, 4).error == "stale_request"
    m.check_invariants()


def test_refused_try_lock_consumes_the_request_id() -> None:
    m = machine(1, 2)
    acquire(m, 1, "n", EXCLUSIVE, 1)
    assert acquire(m, 2, "n", SHARED, 3, wait=False) == Result("refused")
    assert acquire(m, 2, "n", SHARED, 3, wait=False).error == "stale_request"
    assert acquire(m, 2, "m", SHARED, 4, wait=False).status == "granted"


def test_release_must_name_the_request() -> None:
    m = machine(1, 2)
    acquire(m, 1, "n", EXCLUSIVE, 1)
    acquire(m, 2, "n", EXCLUSIVE, 1)
    for command in (Release(1, "n", 2), Release(2, "n", 2), Release(1, "x", 1)):
        result = m.execute(command)
        assert result.error == "not_held" and isinstance(error_of(result), NotHeld)
    assert m.execute(Release(1, "n", 1)).granted == (Grant(2, "n", 1, EXCLUSIVE, 2),)
    assert m.execute(Release(1, "n", 1)).error == "not_held"  # a second release


def test_sessions_open_idempotently_and_ids_are_never_reused() -> None:
    m = machine(5)
    assert m.execute(OpenSession(5, 1_000, "client-5")) == Result("ok")
    assert m.execute(OpenSession(5, 2_000, "client-5")).error == "session_exists"
    assert m.execute(OpenSession(4, 1_000)).error == "session_exists"
    m.execute(CloseSession(5))
    assert m.execute(OpenSession(5, 1_000, "client-5")).error == "session_exists"
    assert m.execute(OpenSession(6, 1_000)) == Result("ok")
    assert m.session_id_last == 6


def test_propose_session_id_increases_with_term_then_count() -> None:
    ids = [propose_session_id(t, n) for t in (1, 2, 7) for n in (1, 2, 2**32 - 1)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    m = LockStateMachine()
    for sid in ids:
        assert m.execute(OpenSession(sid, 1_000)) == Result("ok")


def test_queries() -> None:
    m = machine(1, 2, 3)
    acquire(m, 1, "b", SHARED, 1)
    acquire(m, 2, "b", SHARED, 1)
    acquire(m, 3, "b", EXCLUSIVE, 1)
    acquire(m, 1, "a", EXCLUSIVE, 2)
    assert m.locks() == [
        LockInfo("a", (Grant(1, "a", 2, EXCLUSIVE, 3),), ()),
        LockInfo(
            "b",
            (Grant(1, "b", 1, SHARED, 1), Grant(2, "b", 1, SHARED, 2)),
            (Wait(3, "b", 1, EXCLUSIVE),),
        ),
    ]
    assert [i.name for i in m.locks(prefix="b")] == ["b"]
    assert [i.name for i in m.locks(limit=1)] == ["a"]
    assert m.sessions() == [
        SessionInfo(1, 1_000, "client-1", held=2, waiting=0),
        SessionInfo(2, 1_000, "client-2", held=1, waiting=0),
        SessionInfo(3, 1_000, "client-3", held=0, waiting=1),
    ]


def test_snapshot_restore_round_trip_and_continuation() -> None:
    m = machine(1, 2, 3)
    acquire(m, 1, "n", SHARED, 1)
    acquire(m, 2, "n", EXCLUSIVE, 1)
    acquire(m, 3, "n", SHARED, 1)
    m.mark_applied(9)
    copy = LockStateMachine()
    copy.restore(m.snapshot())
    assert copy.snapshot() == m.snapshot()
    assert copy.applied_index == 9 and copy.token_last == 1 and copy.session_id_last == 3
    for replica in (m, copy):
        assert replica.execute(CloseSession(1)).granted == (Grant(2, "n", 1, EXCLUSIVE, 2),)
    assert copy.snapshot() == m.snapshot()


def test_apply_encodes_versions_and_skips_malformed_entries() -> None:
    m = LockStateMachine()
    request = Request(7, OpenSession(1, 1_000, "x"))
    data = encode_request(request)
    assert data[0] == COMMAND_FORMAT_V1 and decode_request(data) == request
    assert m.apply(1, data) == (request, Result("ok"))
    for bad in (b"", b"\x02" + data[1:], data[:-1], b"\x01\xc1", data[:1] + b"\x91\x07"):
        assert m.apply(m.applied_index + 1, bad) is None
    with pytest.raises(MalformedCommand):
        decode_request(b"\x09")
    with pytest.raises(MalformedCommand):
        encode_request(Request(1, CloseSession(2**70)))
    assert m.applied_index == 6 and m.has_session(1)
    m.mark_applied(7)
    with pytest.raises(AssertionError):
        m.mark_applied(7)
    with pytest.raises(AssertionError):
        m.apply(7, data)


def test_restore_refuses_malformed_snapshots() -> None:
    good = machine(1).snapshot()
    for bad in (b"", b"\x02" + good[1:], good[:-3], b"\x01\x00"):
        with pytest.raises(MalformedCommand):
            LockStateMachine().restore(bad)


@pytest.mark.parametrize(
    ("limit", "value", "fill", "code"),
    [
        ("SESSIONS_MAX", 3, "sessions", "too_many_sessions"),
        ("WAITERS_PER_NAME_MAX", 2, "waiters", "too_many_waiters"),
        ("LOCKS_PER_SESSION_MAX", 3, "names", "too_many_locks"),
        ("LOCK_REQUESTS_MAX", 3, "names", "too_many_locks"),
    ],
)
def test_limits(
    monkeypatch: pytest.MonkeyPatch, limit: str, value: int, fill: str, code: str
) -> None:
    monkeypatch.setattr(locks, limit, value)
    m = machine(1, 2, 3, 4) if fill != "sessions" else machine(1, 2, 3)
    if fill == "sessions":
        result = m.execute(OpenSession(4, 1_000))
    elif fill == "waiters":
        acquire(m, 1, "n", EXCLUSIVE, 1)
        acquire(m, 2, "n", EXCLUSIVE, 1)
        acquire(m, 3, "n", SHARED, 1)
        result = acquire(m, 4, "n", SHARED, 1)
        assert acquire(m, 4, "n", SHARED, 2, wait=False).status == "refused"
    else:
        for i in range(3):
            assert acquire(m, 1, f"n{i}", EXCLUSIVE, i + 1).status == "granted"
        result = acquire(m, 1, "n3", EXCLUSIVE, 4)
    assert result.status == "error" and result.error == code
    m.check_invariants()
    before = m.snapshot()
    assert m.execute(OpenSession(99, 1, "x")).status == "error"
    assert m.snapshot() == before  # a refused command changes nothing


def test_locks_per_session_limit_unpatched() -> None:
    m = machine(1)
    for i in range(locks.LOCKS_PER_SESSION_MAX):
        assert acquire(m, 1, f"n{i}", SHARED, i + 1).status == "granted"
    assert acquire(m, 1, "one-more", SHARED, 10_000).error == "too_many_locks"
    released = m.execute(CloseSession(1)).released
    assert [g.name for g in released] == sorted(f"n{i}" for i in range(len(released)))
    assert sorted(g.token for g in released) == list(range(1, locks.LOCKS_PER_SESSION_MAX + 1))
