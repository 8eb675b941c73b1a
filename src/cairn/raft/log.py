"""The in-memory Raft log: a compaction offset, a stable prefix and an unstable tail.

    [ snapshot (index, term) ][ stable entries ... stable_last ][ unstable entries ... ]
                             ^ entries[0].index == snapshot_index + 1

Everything after `stable_last` has been handed to the driver in a Ready (or is about to
be). `durable_last` <= `stable_last` is what the driver has confirmed on disk: a leader
hands entries out before its own fsync ends and counts itself only up to `durable_last`.
`committed` and `applied` only grow, except that a restored snapshot moves both to its
index. The log is whole in memory: Cairn's Raft groups hold metadata, and compaction keeps
them short.
"""

from __future__ import annotations

from cairn.raft.types import Entry, Snapshot, SnapshotMeta


class RaftLog:
    def __init__(self, snapshot_meta: SnapshotMeta, entries: list[Entry], commit: int) -> None:
        self.snapshot_index = snapshot_meta.index
        self.snapshot_term = snapshot_meta.term
        self.entries: list[Entry] = list(entries)
        for offset, entry in enumerate(self.entries):
            assert entry.index == self.snapshot_index + 1 + offset, "entries must be contiguous"
        self.stable_last = self.last_index()
        self.durable_last = self.stable_last
        self.committed = max(commit, self.snapshot_index)
        assert self.committed <= self.last_index(), "commit beyond the stored log"
        self.applied = self.snapshot_index
        self.pending_snapshot: Snapshot | None = None
        """A snapshot received from the leader that the driver has not yet persisted."""

    # -- reading --------------------------------------------------------------------------

    def first_index(self) -> int:
        return self.snapshot_index + 1

    def last_index(self) -> int:
        return self.snapshot_index + len(self.entries)

    def last_term(self) -> int:
        return self.entries[-1].term if self.entries else self.snapshot_term

    def term(self, index: int) -> int | None:
        """Term of the entry at `index`; None if compacted away or not yet in the log."""
        if index == self.snapshot_index:
            return self.snapshot_term
        offset = index - self.snapshot_index - 1
        if offset < 0 or offset >= len(self.entries):
            return None
        return self.entries[offset].term

    def entry(self, index: int) -> Entry:
        entry = self.entries[index - self.snapshot_index - 1]
        assert entry.index == index
        return entry

    def match_term(self, index: int, term: int) -> bool:
        return self.term(index) == term

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """Raft §5.4.1: a candidate's log is at least as up to date as ours."""
        mine = self.last_term()
        return last_term > mine or (last_term == mine and last_index >= self.last_index())

    def slice(self, lo: int, max_entries: int, max_bytes: int) -> list[Entry] | None:
        """Entries from `lo` on, at most `max_entries` and about `max_bytes` (at least one).

        None if `lo` was compacted away (the follower needs a snapshot).
        """
        if lo <= self.snapshot_index:
            return None
        start = lo - self.snapshot_index - 1
        out: list[Entry] = []
        size = 0
        for entry in self.entries[start : start + max_entries]:
            size += entry.size_bytes()
            if out and size > max_bytes:
                break
            out.append(entry)
        return out

    def find_conflict(self, entries: tuple[Entry, ...]) -> int:
        """Index of the first entry whose term differs from ours (or is new); 0 if none."""
        for entry in entries:
            if not self.match_term(entry.index, entry.term):
                return entry.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """Largest (i, term(i)) with i <= index and term(i) <= term: the fast-backtrack hint.

        Both sides of a rejected append use it to skip a whole term per round trip
        (Raft paper §5.3, the "optimisation" paragraph; etcd's findConflictByTerm).
        """
        index = min(index, self.last_index())
        while index > self.snapshot_index:
            entry_term = self.term(index)
            assert entry_term is not None
            if entry_term <= term:
                return index, entry_term
            index -= 1
        return self.snapshot_index, self.snapshot_term

    def unstable_entries(self) -> list[Entry]:
        return self.entries[self.stable_last - self.snapshot_index :]

    def next_committed_entries(self, max_bytes: int) -> list[Entry]:
        lo = self.applied + 1
        hi = self.committed
        if lo > hi:
            return []
        start = lo - self.snapshot_index - 1
        assert start >= 0, "applied fell behind the compaction point"
        out: list[Entry] = []
        size = 0
        for entry in self.entries[start : hi - self.snapshot_index]:
            size += entry.size_bytes()
            if out and size > max_bytes:
                break
            out.append(entry)
        return out

    # -- writing --------------------------------------------------------------------------

    def append(self, entries: list[Entry] | tuple[Entry, ...]) -> int:
        """Append, truncating any conflicting suffix first. Returns the new last index."""
        if not entries:
            return self.last_index()
        first = entries[0].index
        assert first > self.committed, f"truncating committed entry {first} <= {self.committed}"
        assert first <= self.last_index() + 1, "gap in the log"
        del self.entries[first - self.snapshot_index - 1 :]
        self.entries.extend(entries)
        self.stable_last = min(self.stable_last, first - 1)
        self.durable_last = min(self.durable_last, first - 1)
        return self.last_index()

    def maybe_append(
        self, prev_index: int, prev_term: int, commit: int, entries: tuple[Entry, ...]
    ) -> int | None:
        """The follower side of AppendEntries (Raft §5.3). None if the consistency check fails."""
        if not self.match_term(prev_index, prev_term):
            return None
        last_new = prev_index + len(entries)
        conflict = self.find_conflict(entries)
        if conflict:
            self.append(entries[conflict - prev_index - 1 :])
        self.commit_to(min(commit, last_new))
        return last_new

    def commit_to(self, index: int) -> None:
        if index > self.committed:
            assert index <= self.last_index(), f"commit {index} beyond last {self.last_index()}"
            self.committed = index

    def applied_to(self, index: int) -> None:
        assert self.applied <= index <= self.committed, (self.applied, index, self.committed)
        self.applied = index

    def stable_to(self, index: int, term: int) -> None:
        if self.term(index) == term and index > self.stable_last:
            self.stable_last = index

    def durable_to(self, index: int) -> None:
        """Entries handed out up to `index` are on disk (never beyond `stable_last`)."""
        self.durable_last = max(self.durable_last, min(index, self.stable_last))

    def restore(self, snapshot: Snapshot) -> None:
        """Replace the whole log by `snapshot` (the follower side of InstallSnapshot)."""
        meta = snapshot.meta
        assert meta.index > self.committed
        self.snapshot_index = meta.index
        self.snapshot_term = meta.term
        self.entries = []
        self.committed = meta.index
        self.applied = meta.index
        self.stable_last = self.durable_last = meta.index
        self.pending_snapshot = snapshot

    def compact(self, index: int, term: int) -> None:
        """Drop entries up to `index` (already applied and captured in a snapshot)."""
        assert self.snapshot_index < index <= self.applied, (self.snapshot_index, index)
        assert index <= self.stable_last
        del self.entries[: index - self.snapshot_index]
        self.snapshot_index = index
        self.snapshot_term = term
