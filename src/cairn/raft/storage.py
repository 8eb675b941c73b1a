"""Durable storage of one Raft group: the WAL and the snapshot files, behind the Ready
contract of the core.

`GroupStorage.open` recovers what the core needs to restart (hard state, latest valid
snapshot, entries after it). `begin_persist(ready)` does step 1-2 of the Ready contract:
save an incoming snapshot atomically and compact the WAL to it, buffer the entries and
hard state, then one `sync_async()` (group commit: concurrent groups and proposals share
fsyncs). Only when that is done may the driver send the Ready's replies and votes.
"""

import asyncio
from dataclasses import dataclass
from pathlib import Path

import msgspec

from cairn.raft.snapshot_store import SnapshotStore
from cairn.raft.types import (
    ConfState,
    Entry,
    EntryType,
    HardState,
    Ready,
    Snapshot,
    SnapshotMeta,
)
from cairn.raft.wal import Wal, WalCorrupt, WalEntry
from cairn.raft.wal_record import HardState as WalHardState


class _StoredConf(msgspec.Struct, frozen=True):
    voters: list[int]
    learners: list[int]


def encode_conf(conf: ConfState) -> bytes:
    return msgspec.msgpack.encode(_StoredConf(sorted(conf.voters), sorted(conf.learners)))


def decode_conf(data: bytes) -> ConfState:
    stored = msgspec.msgpack.decode(data, type=_StoredConf)
    return ConfState(frozenset(stored.voters), frozenset(stored.learners))


@dataclass(frozen=True)
class Recovered:
    hard_state: HardState | None
    snapshot: Snapshot | None
    entries: list[Entry]


class GroupStorage:
    def __init__(self, directory: Path, wal: Wal, snapshots: SnapshotStore) -> None:
        self.directory = directory
        self.wal = wal
        self.snapshots = snapshots

    @classmethod
    def open(cls, directory: Path) -> tuple["GroupStorage", Recovered]:
        directory.mkdir(parents=True, exist_ok=True)
        snapshots = SnapshotStore(directory / "snap")
        wal, state = Wal.open(directory / "wal")
        stored = snapshots.load_latest()
        floor = state.snapshot_mark.index if state.snapshot_mark is not None else 0
        if floor and (stored is None or stored.index < floor):
            # The WAL was compacted up to `floor`, so entries below it exist only in a
            # snapshot; if that snapshot is gone or corrupt, starting would silently lose
            # committed entries. Refuse; an operator can restore this node from a peer.
            wal.close()
            found = "none" if stored is None else f"index {stored.index}"
            raise WalCorrupt(
                str(directory), 0, f"WAL compacted to {floor} but newest valid snapshot is {found}"
            )
        snapshot = None
        if stored is not None:
            meta = SnapshotMeta(stored.index, stored.term, decode_conf(stored.config))
            snapshot = Snapshot(meta, stored.data)
        floor = snapshot.meta.index if snapshot is not None else 0
        entries = [
            Entry(term=e.term, index=e.index, type=EntryType(e.kind), data=e.data)
            for e in state.entries
            if e.index > floor
        ]
        hs = state.hard_state
        hard_state = HardState(hs.term, hs.vote, hs.commit) if hs.term or hs.commit else None
        return cls(directory, wal, snapshots), Recovered(hard_state, snapshot, entries)

    def save_snapshot_file(self, snapshot: Snapshot) -> None:
        """Write `snapshot` atomically and durably (blocking; safe to run in a thread)."""
        meta = snapshot.meta
        self.snapshots.save(meta.index, meta.term, encode_conf(meta.conf), snapshot.data)

    def save_snapshot(self, snapshot: Snapshot) -> None:
        """Write `snapshot` durably, then mark the WAL compacted up to it (buffered)."""
        self.save_snapshot_file(snapshot)
        self.wal.compact(snapshot.meta.index, snapshot.meta.term)

    def stage(self, ready: Ready) -> bool:
        """Buffer what `ready` asks to persist; True if a sync is needed.

        A change of the commit index alone needs no fsync (as in etcd's `MustSync`): the
        commit index can be re-learned from the leader and is never below what a restart
        recovers from the log, so its record rides along with the next sync. New entries,
        a snapshot, or a new term or vote must be durable before any message goes out.
        """
        if ready.snapshot is not None:
            self.save_snapshot(ready.snapshot)
        if ready.entries:
            self.wal.append([WalEntry(e.index, e.term, e.data, int(e.type)) for e in ready.entries])
        term_or_vote_changed = False
        if ready.hard_state is not None:
            hs = ready.hard_state
            durable = self.wal.durable_hard_state
            term_or_vote_changed = (hs.term, hs.vote) != (durable.term, durable.vote)
            self.wal.set_hard_state(WalHardState(hs.term, hs.vote, hs.commit))
        return bool(ready.entries) or ready.snapshot is not None or term_or_vote_changed

    @property
    def durable_term(self) -> int:
        return self.wal.durable_hard_state.term

    def begin_persist(self, ready: Ready, inline: bool = False) -> "asyncio.Future[None] | None":
        """Steps 1-2 of the Ready contract: stage `ready` and start making it durable.
        None if it already is (nothing to sync, or synced `inline`: written and fsynced
        on the event loop's thread), else a future that resolves once it is."""
        if not self.stage(ready) or (inline and self.wal.sync_inline()):
            return None
        return asyncio.ensure_future(self.wal.sync_async())

    def close(self) -> None:
        self.wal.close()
