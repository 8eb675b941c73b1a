"""The leader's in-memory wait queue: acquires that wait for a held lock outside the log.

Theory of operation
-------------------
In the plain protocol every `Acquire` is a log entry, granted or queued by the lock
machine, and the `Release` that hands the lock over grants the queue's head. Under
contention that is two replication rounds per hand-over (the queued acquire's own, and
the release's), and the first can hold up the second: on a follower its fsync may be in
progress when the `Release` arrives.

So the root leader keeps an acquire that would only queue in memory, per name in arrival
order ("parked"), and proposes it when the lock is about to be free for it: right behind
the `Release` (or session end) that frees it, in the same batch, so the two entries share
one replication round and one fsync. The machine still decides everything: a parked
acquire is an ordinary `Acquire` when it reaches the log, granted if the lock is free for
it and queued otherwise. This class only decides *when* to propose; a wrong guess costs
speed, never safety. (Measured in docs/design/locks.md, "Measured, stop 13": alone it is
within the noise; with the Raft change that stops an empty append per commit, the pair
is faster in every interleaved run.)

Rules (the module's tests pin each):

- **Park only what would queue**, and only requests the machine would accept: a live
  session, a request id above the session's last, a valid name and mode, no grant or wait
  of the session on the name already (those go to the log, which answers retries and
  errors), room left (`WAITERS_PER_NAME_MAX` per name, `total_max` in all). A request
  parks if the name already has parked requests (FIFO behind them), or waiters in the
  log's queue (behind them too: they are granted first, so the log's queue drains), or
  holders that do not admit its mode.
- **Promote the head run** when a release would free the lock for it and the log's queue
  is empty: the head alone if exclusive, else every shared request up to the first
  exclusive one. The caller proposes them, in order, after the release.
- **One session's requests reach the log in request-id order**: the machine refuses an id
  not above the session's last (`stale_request`), and parking reorders. Before a session's
  new acquire is proposed, the caller promotes that session's parked requests
  (`take_session`), lowest id first.
- **Leader change**: the queue is the leader's alone; it is dropped with leadership and the
  clients retry with the same request ids on the new leader. FIFO across a leader change
  is therefore best-effort (order of the retries), where the log's queue keeps it exactly.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from cairn.meta.locks import (
    MODES,
    REQUEST_ID_MAX,
    SHARED,
    WAITERS_PER_NAME_MAX,
    Acquire,
    Grant,
    LockInfo,
    Wait,
    admits,
    lock_name_problem,
)


@dataclass(eq=False)
class Parked:
    """One acquire waiting in the leader's memory."""

    command: Acquire

    @property
    def key(self) -> tuple[int, str, int]:
        c = self.command
        return (c.session_id, c.name, c.request_id)


class ParkedAcquires:
    """Parked acquires per lock name, FIFO (see the module docstring)."""

    def __init__(self, total_max: int) -> None:
        self.total_max = total_max
        self._by_name: dict[str, deque[Parked]] = {}
        self._by_key: dict[tuple[int, str, int], Parked] = {}
        self._by_session: dict[int, dict[str, Parked]] = {}

    def __len__(self) -> int:
        return len(self._by_key)

    def names(self) -> list[str]:
        return list(self._by_name)

    def find(self, session_id: int, name: str) -> Parked | None:
        """The session's parked request for `name`, if any."""
        return self._by_session.get(session_id, {}).get(name)

    def waiters(self, name: str) -> tuple[Wait, ...]:
        """Parked requests of `name` in queue order, as the machine lists its waiters."""
        return tuple(
            Wait(p.command.session_id, name, p.command.request_id, p.command.mode)
            for p in self._by_name.get(name, ())
        )

    def head(self, name: str) -> Parked | None:
        queue = self._by_name.get(name)
        return queue[0] if queue else None

    def should_park(
        self, command: Acquire, info: LockInfo | None, request_id_last: int | None
    ) -> bool:
        """Should `command` wait here rather than go to the log? `info` is the name's
        applied state, `request_id_last` the session's (None: no live session)."""
        if (
            not command.wait
            or command.wait is not True
            or request_id_last is None
            or isinstance(command.request_id, bool)
            or not isinstance(command.request_id, int)
            or not request_id_last < command.request_id <= REQUEST_ID_MAX
            or command.mode not in MODES
            or lock_name_problem(command.name) is not None
            or self.find(command.session_id, command.name) is not None
            or len(self._by_key) >= self.total_max
        ):
            return False
        queue = self._by_name.get(command.name)
        if queue:
            return len(queue) < WAITERS_PER_NAME_MAX
        if info is None:
            return False
        session_id = command.session_id
        sessions = {g.session_id for g in info.holders} | {w.session_id for w in info.waiters}
        if session_id in sessions:
            return False  # a retry or a re-entry: the machine answers it
        return bool(info.waiters) or not admits(info.holders, command.mode)

    def park(self, command: Acquire) -> Parked:
        parked = Parked(command)
        assert parked.key not in self._by_key, parked.key
        self._by_name.setdefault(command.name, deque()).append(parked)
        self._by_key[parked.key] = parked
        self._by_session.setdefault(command.session_id, {})[command.name] = parked
        return parked

    def remove(self, parked: Parked) -> bool:
        """Take `parked` out (False: it was not here any more)."""
        if self._by_key.pop(parked.key, None) is None:
            return False
        name = parked.command.name
        queue = self._by_name[name]
        queue.remove(parked)
        if not queue:
            del self._by_name[name]
        mine = self._by_session[parked.command.session_id]
        del mine[name]
        if not mine:
            del self._by_session[parked.command.session_id]
        return True

    def take_head_run(self, name: str, holders: tuple[Grant, ...]) -> list[Parked]:
        """Remove and return the requests at the head of `name`'s queue that `holders`
        (the holders the lock will have) admit: the head alone if exclusive, else the run
        of shared requests; none if the head does not fit."""
        run: list[Parked] = []
        queue = self._by_name.get(name)
        while queue:
            head = queue[0]
            mode = head.command.mode
            if not admits(holders, mode) or (run and mode != SHARED):
                break
            run.append(head)
            self.remove(head)
            if mode != SHARED:
                break
        return run

    def take_session(self, session_id: int) -> list[Parked]:
        """Remove and return every request of the session, lowest request id first."""
        taken = sorted(
            self._by_session.get(session_id, {}).values(), key=lambda p: p.command.request_id
        )
        for parked in taken:
            self.remove(parked)
        return taken

    def clear(self) -> list[Parked]:
        """Remove and return everything (leadership lost)."""
        everything = list(self._by_key.values())
        self._by_name.clear()
        self._by_key.clear()
        self._by_session.clear()
        return everything
