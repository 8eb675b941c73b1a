"""The leader's session lease tracker: keep-alives in memory, expiry as a decision to propose.

Theory of operation
-------------------
Keep-alives do not go through the Raft log (one entry per keep-alive per session would be
most of the log). Only the leader tracks them, in this table, with its own monotonic clock
passed in as `now_ms`; followers keep nothing. When a session's lease has run out the
tracker says so (`expired`), and the leader proposes `ExpireSession` (`locks.py`); the
session ends when that entry is applied, on every replica alike.

A session's deadline is the latest of

- `opened + ttl_ms` for a session opened while this leader leads,
- `keep_alive + ttl_ms` for the last keep-alive this leader saw, and
- `start + election_timeout_ms + ttl_ms` for every session, where `start` is when this
  leader took over (`for_new_leader`).

The last one is the new-leader extension (as in etcd's lease `Promote`): the new leader
has not seen the keep-alives its predecessor received, and clients need about an election
timeout to find it, so it gives every session one full TTL plus one election timeout from
its own start before expiring any. Hence no session expires *because of* a leader change,
and none ever expires before a full TTL has passed since the last keep-alive the current
leader saw. Deadlines only move later.

Per-session states (a keep-alive after the deadline is refused: the session is as good as
gone, the `ExpireSession` the leader proposes will end it):

| state | `keep_alive(now)` | `expired(now)` | `forget` |
|---|---|---|---|
| live, `now < deadline` | deadline = max(deadline, now + ttl) -> ttl | not listed | untracked |
| live, `now >= deadline` | refused (None), now expiring | listed -> expiring | untracked |
| expiring | refused (None) | listed until forgotten | untracked |
| untracked | refused (None) | not listed | no-op |

Why one election timeout is enough: a deposed leader must stop accepting keep-alives when
its leader lease lapses (the driver accepts one only while the Raft core's leader lease,
the one lease reads use, is valid), and followers grant no vote while they heard from a
leader within an election timeout. So every keep-alive the old leader accepted reached it
before the new leader's `start + election_timeout_ms` (up to clock-rate drift, which the
fencing tokens cover), and the new deadline is at least one TTL after it.

The driver calls `open` when it applies an `OpenSession`, `forget` when, after applying a
`CloseSession` or `ExpireSession`, the session is gone from the state machine, and
proposes `ExpireSession` for each session `expired` lists (it may list a session on
several ticks until the entry is applied; the driver keeps one proposal in flight per
session). A leader serves keep-alives only after it has
applied the entries of earlier terms (its first no-op), so it knows every open session.

`now_ms` comes from one monotonic clock; a value below the largest seen is treated as
that largest value (time never runs backwards here). Deadlines sit in a heap with lazy
deletion, so `expired` costs O(log n) per due or stale entry, not a scan per tick.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

ELECTION_TIMEOUT_MS_MAX = 60_000


class LeaseTracker:
    """Session deadlines on the leader; see the module docstring."""

    def __init__(self, election_timeout_ms: int, now_ms: int) -> None:
        assert 0 <= election_timeout_ms <= ELECTION_TIMEOUT_MS_MAX, election_timeout_ms
        self.election_timeout_ms = election_timeout_ms
        self.start_ms = now_ms
        self._now_ms = now_ms
        self._ttl_ms: dict[int, int] = {}
        self._deadline_ms: dict[int, int] = {}
        self._expiring: set[int] = set()
        self._heap: list[tuple[int, int]] = []
        """(deadline, session id); an entry is stale when the deadline moved or it left."""

    @classmethod
    def for_new_leader(
        cls, sessions: Iterable[tuple[int, int]], now_ms: int, election_timeout_ms: int
    ) -> LeaseTracker:
        """The tracker of a leader that took over at `now_ms`, from the replicated
        (session id, ttl ms) list: every lease extended by one election timeout."""
        tracker = cls(election_timeout_ms, now_ms)
        for session_id, ttl_ms in sessions:
            tracker.open(session_id, ttl_ms, now_ms)
        return tracker

    def _clock(self, now_ms: int) -> int:
        self._now_ms = max(self._now_ms, now_ms)
        return self._now_ms

    def _set_deadline(self, session_id: int, deadline_ms: int) -> None:
        self._deadline_ms[session_id] = deadline_ms
        heapq.heappush(self._heap, (deadline_ms, session_id))
        if len(self._heap) > 2 * len(self._deadline_ms) + 64:
            self._heap = [(d, s) for s, d in self._deadline_ms.items() if s not in self._expiring]
            heapq.heapify(self._heap)

    def open(self, session_id: int, ttl_ms: int, now_ms: int) -> None:
        """Track a session (an applied `OpenSession`, or one this leader inherited)."""
        assert ttl_ms > 0, ttl_ms
        now_ms = self._clock(now_ms)
        if session_id in self._ttl_ms:
            return
        grace_ms = self.start_ms + self.election_timeout_ms
        self._ttl_ms[session_id] = ttl_ms
        self._set_deadline(session_id, max(now_ms, grace_ms) + ttl_ms)

    def keep_alive(self, session_id: int, now_ms: int) -> int | None:
        """Renew a lease: its TTL in ms, or None when the session is unknown or expired."""
        now_ms = self._clock(now_ms)
        deadline_ms = self._deadline_ms.get(session_id)
        if deadline_ms is None or session_id in self._expiring:
            return None
        if now_ms >= deadline_ms:
            self._expiring.add(session_id)
            return None
        ttl_ms = self._ttl_ms[session_id]
        if now_ms + ttl_ms > deadline_ms:
            self._set_deadline(session_id, now_ms + ttl_ms)
        return ttl_ms

    def expired(self, now_ms: int) -> list[int]:
        """Sessions whose lease ran out (propose `ExpireSession` for each), by deadline, id."""
        now_ms = self._clock(now_ms)
        while self._heap and self._heap[0][0] <= now_ms:
            deadline_ms, session_id = heapq.heappop(self._heap)
            if self._deadline_ms.get(session_id) == deadline_ms:
                self._expiring.add(session_id)
        return sorted(self._expiring, key=lambda s: (self._deadline_ms[s], s))

    def forget(self, session_id: int) -> None:
        """Stop tracking a session (an applied `CloseSession` or `ExpireSession`)."""
        self._ttl_ms.pop(session_id, None)
        self._deadline_ms.pop(session_id, None)
        self._expiring.discard(session_id)

    def deadline_ms(self, session_id: int) -> int | None:
        """When the session's lease runs out, on this leader's clock (None: untracked)."""
        return self._deadline_ms.get(session_id)

    def __len__(self) -> int:
        return len(self._deadline_ms)

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._deadline_ms
