"""ReadIndex (Raft dissertation §6.4) and the leader-lease bookkeeping behind it.

ReadIndex: the leader records its commit index for a read, then proves it is still the
leader by a round of heartbeats acknowledged by a quorum. Every heartbeat round has a
sequence number; a read waits for the first round sent after it was asked for. Once a
quorum has acknowledged that round, no other leader can have committed anything newer
at that moment, so the read may be served once the state machine has applied the recorded
index.

Lease (dissertation §6.4.1): with check-quorum, a follower that heard from its leader less
than `election_timeout_ticks` ago ignores vote requests. So once a quorum acknowledged a
heartbeat sent at leader tick `t`, no other leader can be elected before that quorum's
timers run out, i.e. not before about `t + election_timeout_ticks` on their clocks. The
leader serves reads without a round trip until tick `t + election_timeout_ticks -
max_clock_drift_ticks`. That is safe only if clocks tick at rates that differ by less than
the drift allowance over one election timeout. Two things would break it and are closed
off: a leadership transfer (voters of a TimeoutNow campaign ignore their lease), so a leader
that has sent TimeoutNow serves no lease reads for the rest of its term (the message may
arrive after the transfer was aborted); and a restarted voter, which forgot its leader, so a
node ignores vote requests for one election timeout after it boots.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from cairn.raft.types import ReadState


@dataclass(slots=True)
class _PendingRead:
    heartbeat_seq: int
    index: int
    ctx: bytes


class ReadOnly:
    def __init__(self, max_pending_reads: int) -> None:
        self.max_pending_reads = max_pending_reads
        self._pending: deque[_PendingRead] = deque()
        self._sent_tick: dict[int, int] = {}

    def full(self) -> bool:
        return len(self._pending) >= self.max_pending_reads

    def add(self, heartbeat_seq: int, index: int, ctx: bytes) -> None:
        assert not self.full()
        self._pending.append(_PendingRead(heartbeat_seq, index, ctx))

    def heartbeat_sent(self, heartbeat_seq: int, tick: int) -> None:
        self._sent_tick[heartbeat_seq] = tick

    def release(self, quorum_seq: int) -> list[ReadState]:
        """Reads whose heartbeat round a quorum acknowledged (in the order they were asked)."""
        out: list[ReadState] = []
        while self._pending and self._pending[0].heartbeat_seq <= quorum_seq:
            read = self._pending.popleft()
            out.append(ReadState(read.index, read.ctx))
        return out

    def lease_start_tick(self, quorum_seq: int) -> int | None:
        """Leader tick at which the newest quorum-acknowledged round was sent."""
        tick = self._sent_tick.get(quorum_seq)
        stale = [seq for seq in self._sent_tick if seq < quorum_seq]
        for seq in stale:
            del self._sent_tick[seq]
        return tick

    def reset(self) -> None:
        self._pending.clear()
        self._sent_tick.clear()
