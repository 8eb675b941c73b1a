"""The tracker and the state machine glued as the driver will glue them, on a virtual clock.

A holder stops sending keep-alives (kill -9) at `killed_ms`; a waiter keeps its session
alive. The lock must pass to the waiter no earlier than one full TTL after the last
keep-alive the current leader saw, and (ticking every `TICK_MS`) no later than a tick
after that, or after the new leader's extension when the leader changes in between.
"""

from dataclasses import dataclass, field

import pytest

from cairn.meta.leases import LeaseTracker
from cairn.meta.locks import (
    Acquire,
    Command,
    ExpireSession,
    LockStateMachine,
    OpenSession,
    Request,
    Result,
    encode_request,
)

TTL_MS = 1_000
ELECTION_TIMEOUT_MS = 300
TICK_MS = 10
KEEP_ALIVE_EVERY_MS = 250


@dataclass
class Leader:
    """What the driver does with the two cores (one replica stands for the group)."""

    machine: LockStateMachine
    tracker: LeaseTracker
    index: int = 0
    events: list[tuple[int, str, int, int]] = field(default_factory=list)  # (ms, kind, sid, token)

    def commit(self, command: Command, now_ms: int) -> Result:
        self.index += 1
        out = self.machine.apply(self.index, encode_request(Request(self.index, command)))
        assert out is not None
        result = out[1]
        if isinstance(command, OpenSession) and result.status == "ok":
            self.tracker.open(command.session_id, command.ttl_ms, now_ms)
        if isinstance(command, ExpireSession) and result.status == "ok":
            self.tracker.forget(command.session_id)
        for grant in result.released:
            self.events.append((now_ms, "release", grant.session_id, grant.token))
        for grant in result.granted:
            self.events.append((now_ms, "grant", grant.session_id, grant.token))
        return result

    def tick(self, now_ms: int) -> None:
        for session_id in self.tracker.expired(now_ms):
            self.commit(ExpireSession(session_id), now_ms)


@pytest.mark.parametrize("killed_ms", [0, 1_234, 5_000])
@pytest.mark.parametrize("leader_change_ms", [None, 600, 1_500, 7_000])
def test_lock_passes_after_the_lease_and_not_before(
    killed_ms: int, leader_change_ms: int | None
) -> None:
    leader = Leader(LockStateMachine(), LeaseTracker(ELECTION_TIMEOUT_MS, now_ms=0))
    leader.commit(OpenSession(1, TTL_MS, "holder"), 0)
    leader.commit(OpenSession(2, TTL_MS, "waiter"), 0)
    assert leader.commit(Acquire(1, "job", "exclusive", 1), 0).status == "granted"
    assert leader.commit(Acquire(2, "job", "exclusive", 1), 0).status == "queued"
    last_seen_ms = {1: 0, 2: 0}  # the last keep-alive the *current* leader accepted
    grace_end_ms = ELECTION_TIMEOUT_MS  # the first leader's grace covers sessions it opens early
    for now in range(0, 12_000, TICK_MS):
        if leader_change_ms is not None and now == leader_change_ms:
            # The old leader's memory is gone; the new one starts from the replicated state.
            start_ms = now + ELECTION_TIMEOUT_MS // 2  # our virtual clock, after an election
            sessions = [(s.session_id, s.ttl_ms) for s in leader.machine.sessions()]
            leader.tracker = LeaseTracker.for_new_leader(sessions, start_ms, ELECTION_TIMEOUT_MS)
            last_seen_ms = dict.fromkeys(last_seen_ms, -(10**9))
            grace_end_ms = start_ms + ELECTION_TIMEOUT_MS
        if now % KEEP_ALIVE_EVERY_MS == 0:
            for sid in (1, 2):
                if (sid == 2 or now < killed_ms) and leader.tracker.keep_alive(sid, now):
                    last_seen_ms[sid] = now
        leader.tick(now)
        if leader.machine.lock_info("job") is not None and leader.events:
            break
    grants = [e for e in leader.events if e[1] == "grant"]
    assert len(grants) == 1 and grants[0][2] == 2, leader.events
    granted_ms = grants[0][0]
    expected_ms = max(last_seen_ms[1] + TTL_MS, grace_end_ms + TTL_MS)
    assert granted_ms >= expected_ms  # never before the holder's lease really ran out
    assert granted_ms < expected_ms + TICK_MS  # and promptly after
    assert leader.events[0][1] == "release" and leader.events[0][3] < grants[0][3]
    assert leader.machine.has_session(2) and not leader.machine.has_session(1)
    info = leader.machine.lock_info("job")
    assert info is not None and [g.session_id for g in info.holders] == [2]
