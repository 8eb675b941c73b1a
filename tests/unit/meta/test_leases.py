"""The leader's lease tracker: never expires early, new-leader extension, expiry order."""

from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.meta.leases import LeaseTracker


def test_expires_exactly_one_ttl_after_the_last_keep_alive() -> None:
    t = LeaseTracker(election_timeout_ms=0, now_ms=0)
    t.open(1, 1_000, now_ms=0)
    assert t.keep_alive(1, now_ms=600) == 1_000
    assert t.deadline_ms(1) == 1_600
    assert t.expired(1_599) == []
    assert t.keep_alive(1, now_ms=1_599) == 1_000
    assert t.expired(2_598) == []
    assert t.expired(2_599) == [1]
    assert t.keep_alive(1, now_ms=2_599) is None  # too late: the expiry is being proposed
    assert t.expired(2_600) == [1]  # listed until the applied expiry makes the driver forget
    t.forget(1)
    assert t.expired(10_000) == [] and 1 not in t and len(t) == 0


def test_a_keep_alive_at_the_deadline_is_refused_and_sticks() -> None:
    t = LeaseTracker(election_timeout_ms=0, now_ms=0)
    t.open(1, 1_000, now_ms=0)
    assert t.keep_alive(1, now_ms=1_000) is None
    assert t.keep_alive(1, now_ms=1_000) is None
    assert t.expired(1_000) == [1]


def test_new_leader_extends_every_lease_by_one_election_timeout() -> None:
    t = LeaseTracker.for_new_leader(
        [(1, 1_000), (2, 5_000)], now_ms=10_000, election_timeout_ms=300
    )
    assert t.start_ms == 10_000
    assert (t.deadline_ms(1), t.deadline_ms(2)) == (11_300, 15_300)
    # A keep-alive inside the grace period never shortens a lease.
    assert t.keep_alive(2, now_ms=10_100) == 5_000
    assert t.deadline_ms(2) == 15_300
    # A session opened during the grace period gets it too.
    t.open(3, 1_000, now_ms=10_200)
    assert t.deadline_ms(3) == 11_300
    assert t.keep_alive(2, now_ms=11_000) == 5_000
    assert t.deadline_ms(2) == 16_000
    assert t.expired(11_299) == []
    assert t.expired(11_300) == [1, 3]
    t.open(4, 1_000, now_ms=12_000)
    assert t.deadline_ms(4) == 13_000


def test_expired_lists_by_deadline_then_session_id() -> None:
    t = LeaseTracker(election_timeout_ms=0, now_ms=0)
    for sid, ttl in [(5, 300), (2, 300), (9, 200), (1, 900), (7, 250)]:
        t.open(sid, ttl, now_ms=0)
    assert t.expired(250) == [9, 7]
    assert t.expired(300) == [9, 7, 2, 5]
    t.forget(7)
    assert t.expired(5_000) == [9, 2, 5, 1]


def test_open_twice_and_unknown_sessions() -> None:
    t = LeaseTracker(election_timeout_ms=0, now_ms=0)
    t.open(1, 1_000, now_ms=0)
    t.open(1, 9_000, now_ms=500)  # an entry applied again: no change
    assert t.deadline_ms(1) == 1_000
    assert t.keep_alive(2, now_ms=1) is None
    assert t.deadline_ms(2) is None
    t.forget(2)  # no-op


def test_time_never_runs_backwards() -> None:
    t = LeaseTracker(election_timeout_ms=0, now_ms=0)
    t.open(1, 1_000, now_ms=0)
    assert t.expired(1_000) == [1]
    assert t.expired(10) == [1]  # an older reading counts as the newest one seen
    assert t.keep_alive(1, now_ms=10) is None


def test_keep_alives_do_not_grow_the_heap_without_bound() -> None:
    t = LeaseTracker(election_timeout_ms=0, now_ms=0)
    for sid in (1, 2, 3):
        t.open(sid, 1_000, now_ms=0)
    for now in range(1, 20_000, 3):
        for sid in (1, 2, 3):
            assert t.keep_alive(sid, now) == 1_000
    assert len(t._heap) <= 2 * len(t) + 64 + 1
    assert t.expired(19_999) == []
    assert t.expired(21_000) == [1, 2, 3]


STEP = st.one_of(
    st.tuples(st.just("open"), st.integers(1, 6), st.integers(1, 2_000)),
    st.tuples(st.just("keep_alive"), st.integers(1, 7), st.just(0)),
    st.tuples(st.just("forget"), st.integers(1, 7), st.just(0)),
    st.tuples(st.just("expired"), st.just(0), st.just(0)),
)


@settings(max_examples=300, deadline=None)
@given(
    election_timeout_ms=st.integers(0, 1_000),
    start_ms=st.integers(0, 10**6),
    inherited=st.dictionaries(st.integers(1, 6), st.integers(1, 2_000), max_size=4),
    steps=st.lists(st.tuples(STEP, st.integers(-50, 700)), max_size=60),
)
def test_tracker_against_a_model(
    election_timeout_ms: int,
    start_ms: int,
    inherited: dict[int, int],
    steps: list[tuple[tuple[str, int, int], int]],
) -> None:
    """Deadline = latest of (open or leader start + election timeout) + ttl and last
    accepted keep-alive + ttl; listed exactly when now >= deadline, never earlier."""
    t = LeaseTracker.for_new_leader(inherited.items(), start_ms, election_timeout_ms)
    grace_ms = start_ms + election_timeout_ms
    ttl = dict(inherited)
    deadline = {sid: grace_ms + ttl_ms for sid, ttl_ms in inherited.items()}
    last_keep_alive: dict[int, int] = {}
    now = start_ms
    for (op, sid, ttl_ms), dt in steps:
        passed = now + dt  # dt < 0: an older reading, which the tracker treats as `now`
        if op != "forget":
            now = max(now, passed)
        if op == "open":
            t.open(sid, ttl_ms, passed)
            if sid not in ttl:
                ttl[sid] = ttl_ms
                deadline[sid] = max(now, grace_ms) + ttl_ms
        elif op == "keep_alive":
            answer = t.keep_alive(sid, passed)
            if sid in deadline and now < deadline[sid]:
                assert answer == ttl[sid]
                deadline[sid] = max(deadline[sid], now + ttl[sid])
                last_keep_alive[sid] = now
            else:
                assert answer is None
        elif op == "forget":
            t.forget(sid)
            ttl.pop(sid, None)
            deadline.pop(sid, None)
            last_keep_alive.pop(sid, None)
        else:
            listed = t.expired(passed)
            due = sorted((d, s) for s, d in deadline.items() if now >= d)
            assert listed == [s for _, s in due]
            for s in listed:  # safety: never before a full TTL since the last keep-alive
                assert now >= last_keep_alive.get(s, -(10**9)) + ttl[s]
                assert now >= grace_ms + ttl[s]
        for s, d in deadline.items():
            assert t.deadline_ms(s) == d
        assert len(t) == len(deadline)
