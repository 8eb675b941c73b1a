"""Per-follower flow control on the leader (etcd's tracker.Progress).

    state      | sends                                        | leaves when
    -----------+----------------------------------------------+------------------------------
    PROBE      | one append per heartbeat interval, then waits | an append is accepted -> REPLICATE
    REPLICATE  | appends back to back, up to the inflight     | a reject -> PROBE
               | window (count and bytes)                      |
    SNAPSHOT   | the chunks of one snapshot, nothing else     | follower acks >= its index -> PROBE
               |                                              | a chunk reject / timeout -> PROBE

`match` is the highest index known to be on the follower's disk; `next` is the next index
to send. In REPLICATE `next` runs ahead of `match` optimistically (pipelining).
"""

from __future__ import annotations

import enum
from collections import deque


class ProgressState(enum.IntEnum):
    PROBE = 0
    REPLICATE = 1
    SNAPSHOT = 2


class Inflights:
    """Appends sent and not yet acknowledged, bounded by count and by bytes."""

    def __init__(self, max_count: int, max_bytes: int) -> None:
        assert max_count > 0 and max_bytes > 0
        self.max_count = max_count
        self.max_bytes = max_bytes
        self._items: deque[tuple[int, int]] = deque()
        self._bytes = 0

    def add(self, last_index: int, size_bytes: int) -> None:
        assert not self.full()
        self._items.append((last_index, size_bytes))
        self._bytes += size_bytes

    def free_le(self, index: int) -> None:
        while self._items and self._items[0][0] <= index:
            _, size = self._items.popleft()
            self._bytes -= size

    def free_first(self) -> None:
        if self._items:
            self.free_le(self._items[0][0])

    def reset(self) -> None:
        self._items.clear()
        self._bytes = 0

    def full(self) -> bool:
        return len(self._items) >= self.max_count or self._bytes >= self.max_bytes


class Progress:
    def __init__(self, next_index: int, max_inflight: int, max_inflight_bytes: int) -> None:
        self.match = 0
        self.next = next_index
        self.state = ProgressState.PROBE
        self.probe_sent = False
        self.pending_snapshot = 0
        self.snapshot_elapsed_ticks = 0
        self.recent_active = False
        self.heartbeat_seq_acked = 0
        self.inflights = Inflights(max_inflight, max_inflight_bytes)

    def __repr__(self) -> str:
        return f"Progress(match={self.match}, next={self.next}, {self.state.name})"

    def become_probe(self) -> None:
        if self.state == ProgressState.SNAPSHOT:
            self.next = max(self.match + 1, self.pending_snapshot + 1)
        else:
            self.next = self.match + 1
        self._reset(ProgressState.PROBE)

    def become_replicate(self) -> None:
        self.next = self.match + 1
        self._reset(ProgressState.REPLICATE)

    def become_snapshot(self, snapshot_index: int) -> None:
        self._reset(ProgressState.SNAPSHOT)
        self.pending_snapshot = snapshot_index

    def _reset(self, state: ProgressState) -> None:
        self.state = state
        self.probe_sent = False
        self.pending_snapshot = 0
        self.snapshot_elapsed_ticks = 0
        self.inflights.reset()

    def maybe_update(self, index: int) -> bool:
        """The follower has `index`; False if that is old news."""
        updated = index > self.match
        if updated:
            self.match = index
            self.probe_sent = False
        self.next = max(self.next, index + 1)
        return updated

    def sent_entries(self, last_index: int, size_bytes: int) -> None:
        if self.state == ProgressState.REPLICATE:
            self.next = last_index + 1
            self.inflights.add(last_index, size_bytes)
        else:
            assert self.state == ProgressState.PROBE
            self.probe_sent = True

    def maybe_decrease_to(self, rejected: int, match_hint: int) -> bool:
        """A reject of the append at `rejected`; False if it is stale."""
        if self.state == ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, match_hint + 1), self.match + 1)
        self.probe_sent = False
        return True

    def is_paused(self) -> bool:
        if self.state == ProgressState.PROBE:
            return self.probe_sent
        if self.state == ProgressState.REPLICATE:
            return self.inflights.full()
        return True
