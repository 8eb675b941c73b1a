"""The Raft write-ahead log: segmented files, group commit, crash recovery.

Theory of operation
-------------------
The WAL stores what the Raft core hands its driver to persist: log entries (opaque
bytes with an index and a term), the hard state (term, vote, commit), truncations of a
conflicting suffix, and compaction marks. It knows nothing else about Raft.

*Records, not edits.* Everything is appended as a framed record (`wal_record` has the
format). Overwriting a suffix of the log (a follower whose log conflicts with the leader's)
appends a TRUNCATE record and then the new entries; compaction appends a SNAPSHOT mark.
Nothing already written is ever changed in place, so a crash can only tear the tail.

*Group commit.* `append`, `set_hard_state` and `compact` only encode and buffer records
(after checking them against the replay rules in `wal_record.LogState`, so a record the
log could not replay is refused up front). `sync()` writes everything buffered with one
write and one fdatasync. Nothing is durable, and nothing may be acknowledged, before
`sync()` returns. The asyncio driver calls `await sync_async()`, which runs the write and
fsync in a thread; callers that arrive while a sync is in flight wait for it and then
share the next one, so N concurrent proposals cost about two fsyncs, not N.

*The driver's contract* (as in etcd's `Ready`): persist the hard state and the entries of a
step, `sync`, and only then send the messages of that step. In particular a vote is
granted only after the new term and vote are durable: `set_hard_state(hs)`, `sync()`,
then send the vote response. `durable_hard_state` says what is on disk, so the driver can
assert it before sending. `set_hard_state` refuses to change the vote within a term.

*Segments.* The log is a sequence of files `<number>.wal`, each with a header. When the
next record would take the current segment past `segment_size_bytes_max`, the writer
ends it with a SEAL record and fsyncs it, creates the next one (and fsyncs the directory),
and starts it with a preamble: the current hard state and snapshot mark. So every segment
carries the state that older segments held, and `compact(index, term)` can delete whole
segments: once its SNAPSHOT mark is durable, every segment (but the last) whose entries
all lie at or below the mark is removed, and the directory is fsynced. The seal lets
recovery tell a complete older segment from one that lost its tail at a record boundary.

*Recovery.* `Wal.open` replays every segment in order. A record that fails to decode in
the last segment, with no valid record anywhere after it, is a torn tail: a write that was
never acknowledged. The file is cut there and `RecoveredState.torn_tail` says so. Any other
damage — a bad record in a segment that is not the last or followed by a valid record, a
record the writer could not have produced, an older segment without its seal, a missing
segment — raises `WalCorrupt` with the file and offset: the log may have held
acknowledged data, and only an operator (or a snapshot from a peer) can decide what
replaces it. docs/design/raft-wal.md has the table and the known limits.

Limits: a record payload is at most `RECORD_PAYLOAD_BYTES_MAX`; recovery reads one segment
at a time into memory and returns every entry above the floor in memory.
"""

import asyncio
import fcntl
import itertools
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cairn.raft.wal_record import (
    SEAL_RECORD_BYTES,
    SEGMENT_HEADER_BYTES,
    Compaction,
    HardState,
    LogRuleError,
    LogState,
    Record,
    RecordError,
    Seal,
    SnapshotMark,
    WalCorrupt,
    WalEntry,
    WalError,
    decode_record,
    decode_segment_header,
    encode_compaction,
    encode_entry,
    encode_hard_state,
    encode_seal,
    encode_segment_header,
    encode_truncate,
    find_valid_record,
)
from cairn.runtime.fsync import fsync_directory

__all__ = [
    "SEGMENT_SIZE_BYTES_MAX_DEFAULT",
    "HardState",
    "RecoveredState",
    "SnapshotMark",
    "TornTail",
    "Wal",
    "WalCorrupt",
    "WalEntry",
    "WalError",
    "WalStats",
]

SEGMENT_SIZE_BYTES_MAX_DEFAULT = 64 * 1024 * 1024
SEGMENT_SIZE_BYTES_MIN = 64
_SEGMENT_NAME = re.compile(r"^(\d{20})\.wal$")
_LOCK_NAME = "LOCK"
_fdatasync = getattr(os, "fdatasync", os.fsync)


def _segment_name(number: int) -> str:
    return f"{number:020d}.wal"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


@dataclass(frozen=True, slots=True)
class TornTail:
    """A torn tail that recovery cut off: never-acknowledged bytes of an interrupted write."""

    path: str
    offset: int
    bytes_dropped: int
    reason: str


@dataclass(frozen=True, slots=True)
class RecoveredState:
    """What `Wal.open` found: hand it to the Raft core before it takes any step."""

    hard_state: HardState
    snapshot_mark: SnapshotMark | None
    entries: list[WalEntry]
    torn_tail: TornTail | None


@dataclass(slots=True)
class WalStats:
    """Counters for metrics and for tests of group commit."""

    syncs: int = 0
    fsyncs: int = 0
    bytes_written: int = 0
    segments_created: int = 0
    segments_removed: int = 0


@dataclass(slots=True)
class _Segment:
    number: int
    path: Path
    max_entry_index: int  # highest entry index written in it (0: none), truncated or not
    sealed: bool = False  # ends with its SEAL record: the next segment takes the writes


@dataclass(frozen=True, slots=True)
class _Pending:
    frame: bytes
    record: Record


@dataclass(frozen=True, slots=True)
class _Batch:
    items: list[_Pending]
    seq: int  # records buffered up to and including this batch
    hard_state: HardState
    last_index: int


class Wal:
    """A segmented write-ahead log in one directory. Open it with `Wal.open`."""

    def __init__(
        self,
        directory: Path,
        segment_size_bytes_max: int,
        lock_fd: int,
        state: LogState,
        segments: list[_Segment],
    ) -> None:
        """Private: use `Wal.open`."""
        self._dir = directory
        self._segment_size_bytes_max = segment_size_bytes_max
        self._lock_fd = lock_fd
        self._state = state  # the log as buffered (ahead of the disk until sync)
        self._segments = segments
        self._pending: list[_Pending] = []
        self._buffered_seq = 0
        self._durable_seq = 0
        self._durable_hard_state = state.hard_state
        self._durable_last_index = state.last_index
        self._inflight: asyncio.Future[None] | None = None
        self._failed: BaseException | None = None
        self._closed = False
        self.stats = WalStats()
        # Writer state: touched only by _write_batch (one at a time).
        self._written_hard_state = state.hard_state
        self._written_compaction = state.compaction
        self._fd = -1
        self._segment_bytes = 0
        self._segment_has_records = False

    # -- opening ----------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        directory: str | os.PathLike[str],
        segment_size_bytes_max: int = SEGMENT_SIZE_BYTES_MAX_DEFAULT,
    ) -> tuple["Wal", RecoveredState]:
        """Open (or create) the WAL in `directory`, recover it, and lock it.

        Raises `WalCorrupt` when the log is damaged anywhere but its torn tail, and
        `WalError` when another process holds the directory.
        """
        if segment_size_bytes_max < SEGMENT_SIZE_BYTES_MIN:
            raise ValueError(f"segment_size_bytes_max must be >= {SEGMENT_SIZE_BYTES_MIN}")
        path = Path(directory)
        if not path.is_dir():
            path.mkdir(parents=True)
            fsync_directory(path.parent)
        lock_fd = _lock_directory(path)
        try:
            state, segments, torn = _recover(path)
            live = LogState(
                keep_data=False,
                hard_state=state.hard_state,
                compaction=state.compaction,
                first_index=state.first_index,
                terms=list(state.terms),
            )
            wal = cls(path, segment_size_bytes_max, lock_fd, live, segments)
            wal._open_last_segment()
        except BaseException:
            os.close(lock_fd)
            raise
        return wal, RecoveredState(state.hard_state, state.mark, state.entries(), torn)

    def _open_last_segment(self) -> None:
        if not self._segments:
            self._create_segment(1)
            return
        last = self._segments[-1]
        if last.sealed:  # a crash came after the seal, before the next segment existed
            self._create_segment(last.number + 1)
            return
        self._fd = os.open(last.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        self._segment_bytes = os.fstat(self._fd).st_size
        self._segment_has_records = self._segment_bytes > SEGMENT_HEADER_BYTES

    # -- what the Raft core sees ------------------------------------------------------

    @property
    def hard_state(self) -> HardState:
        """The hard state as buffered (may be ahead of the disk)."""
        return self._state.hard_state

    @property
    def durable_hard_state(self) -> HardState:
        """The hard state known to be on disk: check it before sending a vote response."""
        return self._durable_hard_state

    @property
    def snapshot_mark(self) -> SnapshotMark | None:
        return self._state.mark

    @property
    def first_index(self) -> int:
        """Index of the first entry held (the floor + 1; == last_index + 1 when empty)."""
        return self._state.floor_index + 1

    @property
    def last_index(self) -> int:
        """Index of the last entry as buffered; the floor when the log is empty."""
        return self._state.last_index

    @property
    def durable_last_index(self) -> int:
        """Index of the last entry known to be on disk."""
        return self._durable_last_index

    def term_at(self, index: int) -> int | None:
        """Term of the entry at `index` (the floor term at the floor), None if not held."""
        return self._state.term_at(index)

    @property
    def has_unsynced(self) -> bool:
        return bool(self._pending)

    # -- buffering --------------------------------------------------------------------

    def append(self, entries: Sequence[WalEntry]) -> None:
        """Buffer entries. An index at or below `last_index` truncates the log from there.

        Raises ValueError (nothing buffered) if the entries are not consecutive, start
        above `last_index + 1` or at/below the floor, or have a term below the previous.
        """
        self._check_usable()
        if not entries:
            return
        first = entries[0].index
        if not self._state.floor_index < first <= self._state.last_index + 1:
            raise ValueError(
                f"entry {first} outside ({self._state.floor_index}, {self._state.last_index + 1}]"
            )
        previous_term = self._state.term_at(first - 1)
        assert previous_term is not None
        for i, entry in enumerate(entries):
            if entry.index != first + i:
                raise ValueError(f"entries not consecutive at {entry.index}")
            if entry.term < previous_term:
                raise ValueError(f"entry {entry.index} term {entry.term} < {previous_term}")
            previous_term = entry.term
        pending = []
        if first <= self._state.last_index:
            pending.append(_Pending(encode_truncate(first - 1), first - 1))
        pending.extend(_Pending(encode_entry(e), e) for e in entries)
        for item in pending:
            self._state.apply(item.record)  # checked above: cannot raise
        self._buffer(pending)

    def set_hard_state(self, hs: HardState) -> None:
        """Buffer a new hard state (no-op if unchanged). `sync()` before acting on it.

        Raises ValueError if the term goes back or the vote changes within a term.
        """
        self._check_usable()
        if hs == self._state.hard_state:
            return
        frame = encode_hard_state(hs)
        try:
            self._state.apply(hs)
        except LogRuleError as exc:
            raise ValueError(str(exc)) from exc
        self._buffer([_Pending(frame, hs)])

    def compact(self, index: int, term: int) -> None:
        """Record that a snapshot up to (`index`, `term`) is durable; free the log below it.

        Call only after the snapshot itself is saved (SnapshotStore.save returned). If the
        log holds `index` with `term`, the entries after it stay; otherwise (a follower that
        installed a leader's snapshot) the whole log is dropped and the next entry is
        `index + 1`. Buffered like the rest: the next sync makes the mark durable and then
        deletes the segments whose entries all lie at or below `index`. A no-op if `index`
        is not above the current floor.
        """
        self._check_usable()
        if index <= self._state.floor_index:
            return
        compaction = self._state.compaction_for(index, term)
        frame = encode_compaction(compaction)
        self._state.apply(compaction)
        self._buffer([_Pending(frame, compaction)])

    def _buffer(self, items: list[_Pending]) -> None:
        self._pending.extend(items)
        self._buffered_seq += len(items)

    def _check_usable(self) -> None:
        if self._closed:
            raise WalError("the WAL is closed")
        if self._failed is not None:
            raise WalError(f"an earlier WAL write failed; reopen to recover: {self._failed!r}")

    # -- syncing ----------------------------------------------------------------------

    def sync(self) -> None:
        """Write everything buffered and fsync it. When this returns, it is durable.

        Blocking: from asyncio use `sync_async`. Do not mix the two concurrently.
        """
        self._check_usable()
        assert self._inflight is None, "sync() while sync_async() is in flight"
        batch = self._take_batch()
        if batch is None:
            return
        try:
            self._write_batch(batch)
        except BaseException as exc:
            self._failed = exc
            raise
        self._made_durable(batch)

    async def sync_async(self) -> None:
        """Make everything buffered before this call durable, without blocking the loop.

        The write and fsync run in a thread. Concurrent callers are coalesced: whoever
        arrives while a sync is in flight waits for it, then all of them share one more.
        A failed write fails every waiter and every later call (fsync errors cannot be
        retried safely: reopen the WAL to recover from what is really on disk).
        """
        self._check_usable()
        target = self._buffered_seq
        while self._durable_seq < target:
            if self._inflight is None:
                self._inflight = asyncio.ensure_future(self._sync_in_thread())
            await asyncio.shield(self._inflight)

    def sync_inline(self) -> bool:
        """Write and fsync what is buffered on the calling thread, blocking it; False
        (nothing done) when a threaded sync is in flight, so the caller awaits that."""
        self._check_usable()
        if self._inflight is not None:
            return False
        batch = self._take_batch()
        if batch is None:
            return True
        try:
            self._write_batch(batch)
        except BaseException as exc:
            self._failed = exc
            raise
        self._made_durable(batch)
        return True

    async def _sync_in_thread(self) -> None:
        try:
            self._check_usable()
            batch = self._take_batch()
            if batch is None:
                return
            try:
                await asyncio.to_thread(self._write_batch, batch)
            except BaseException as exc:
                self._failed = exc
                raise
            self._made_durable(batch)
        finally:
            self._inflight = None

    def _take_batch(self) -> _Batch | None:
        if not self._pending:
            return None
        items, self._pending = self._pending, []
        return _Batch(items, self._buffered_seq, self._state.hard_state, self._state.last_index)

    def _made_durable(self, batch: _Batch) -> None:
        self._durable_seq = batch.seq
        self._durable_hard_state = batch.hard_state
        self._durable_last_index = batch.last_index

    # -- the writer (one batch at a time, possibly in a worker thread) ----------------

    def _write_batch(self, batch: _Batch) -> None:
        chunk: list[bytes] = []
        compacted = False
        for item in batch.items:
            size = len(item.frame)
            limit = self._segment_size_bytes_max
            if self._segment_has_records and self._segment_bytes + size + SEAL_RECORD_BYTES > limit:
                self._write(chunk)
                chunk = []
                self._roll()
            chunk.append(item.frame)
            self._segment_bytes += size
            self._segment_has_records = True
            record = item.record
            if isinstance(record, WalEntry):
                segment = self._segments[-1]
                segment.max_entry_index = max(segment.max_entry_index, record.index)
            elif isinstance(record, HardState):
                self._written_hard_state = record
            elif isinstance(record, Compaction):
                self._written_compaction = record
                compacted = True
        self._write(chunk)
        _fdatasync(self._fd)
        self.stats.fsyncs += 1
        self.stats.syncs += 1
        if compacted:
            self._remove_compacted_segments()

    def _write(self, frames: list[bytes]) -> None:
        if frames:
            data = b"".join(frames)
            _write_all(self._fd, data)
            self.stats.bytes_written += len(data)

    def _roll(self) -> None:
        """Seal the current segment (durably) and start the next one with a preamble."""
        current = self._segments[-1]
        self._write([encode_seal(Seal(current.number + 1))])
        current.sealed = True
        _fdatasync(self._fd)
        self.stats.fsyncs += 1
        os.close(self._fd)
        self._fd = -1
        self._create_segment(current.number + 1)

    def _create_segment(self, number: int) -> None:
        path = self._dir / _segment_name(number)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
        self._fd = os.open(path, flags, 0o644)
        self._segments.append(_Segment(number, path, 0))
        preamble = [encode_segment_header(number)]
        if self._written_hard_state != HardState():
            preamble.append(encode_hard_state(self._written_hard_state))
        if self._written_compaction is not None:
            preamble.append(encode_compaction(self._written_compaction))
        self._write(preamble)
        self._segment_bytes = sum(len(p) for p in preamble)
        self._segment_has_records = False
        _fdatasync(self._fd)
        fsync_directory(self._dir)
        self.stats.fsyncs += 2
        self.stats.segments_created += 1

    def _remove_compacted_segments(self) -> None:
        mark = self._written_compaction
        assert mark is not None
        removed = 0
        while len(self._segments) > 1 and self._segments[0].max_entry_index <= mark.index:
            os.unlink(self._segments.pop(0).path)
            removed += 1
        if removed:
            fsync_directory(self._dir)
            self.stats.fsyncs += 1
            self.stats.segments_removed += removed

    # -- closing ----------------------------------------------------------------------

    def segment_paths(self) -> list[Path]:
        """The segment files, oldest first (for tests and `cairn` diagnostics)."""
        return [s.path for s in self._segments]

    def close(self) -> None:
        """Close the files and release the lock. Records not yet synced are discarded,
        exactly as a crash would discard them: call `sync()` first to keep them."""
        if self._closed:
            return
        assert self._inflight is None, "close() while sync_async() is in flight"
        self._closed = True
        self._pending = []
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        os.close(self._lock_fd)


def _lock_directory(path: Path) -> int:
    fd = os.open(path / _LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        os.close(fd)
        raise WalError(f"{path} is locked by another open WAL") from exc
    return fd


def _list_segments(path: Path) -> list[tuple[int, Path]]:
    found = []
    for child in path.iterdir():
        match = _SEGMENT_NAME.match(child.name)
        if match:
            found.append((int(match.group(1)), child))
    found.sort()
    for (a, _), (b, pb) in itertools.pairwise(found):
        if b != a + 1:
            raise WalCorrupt(str(pb), 0, f"segment {a + 1} is missing before {b}")
    return found


def _recover(path: Path) -> tuple[LogState, list[_Segment], TornTail | None]:
    """Replay every segment; cut a torn tail of the last one; refuse anything else."""
    state = LogState(keep_data=True)
    segments: list[_Segment] = []
    found = _list_segments(path)
    torn: TornTail | None = None
    for position, (number, seg_path) in enumerate(found):
        is_last = position == len(found) - 1
        buf = seg_path.read_bytes()
        try:
            if decode_segment_header(buf) != number:
                raise WalCorrupt(str(seg_path), 0, "segment number does not match file name")
        except RecordError as exc:
            if is_last and find_valid_record(buf, 0) is None:
                # Torn while being created: it held nothing that was ever acknowledged.
                torn = TornTail(str(seg_path), 0, len(buf), exc.reason)
                seg_path.unlink()
                fsync_directory(path)
                break
            raise WalCorrupt(str(seg_path), 0, exc.reason) from exc
        end, max_index, sealed, reason = _replay_segment(state, seg_path, number, buf, is_last)
        if not is_last and not sealed:
            raise WalCorrupt(str(seg_path), end, "segment not sealed: its tail is missing")
        segments.append(_Segment(number, seg_path, max_index, sealed))
        if end < len(buf):
            torn = TornTail(str(seg_path), end, len(buf) - end, reason)
            fd = os.open(seg_path, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.ftruncate(fd, end)
                os.fsync(fd)
            finally:
                os.close(fd)
    problem = state.check_complete()
    if problem is not None:
        where = str(segments[0].path) if segments else str(path)
        raise WalCorrupt(where, SEGMENT_HEADER_BYTES, problem)
    return state, segments, torn


def _replay_segment(
    state: LogState, seg_path: Path, number: int, buf: bytes, is_last: bool
) -> tuple[int, int, bool, str]:
    """Apply the records of one segment; return (end of valid data, max entry index,
    whether it is sealed, why the data stops early)."""
    offset = SEGMENT_HEADER_BYTES
    max_index = 0
    while offset < len(buf):
        try:
            record, next_offset = decode_record(buf, offset)
        except RecordError as exc:
            if is_last and find_valid_record(buf, offset + 1) is None:
                return offset, max_index, False, exc.reason
            raise WalCorrupt(str(seg_path), offset, exc.reason) from exc
        try:
            state.apply(record)
        except LogRuleError as exc:
            raise WalCorrupt(str(seg_path), offset, str(exc)) from exc
        if isinstance(record, WalEntry):
            max_index = max(max_index, record.index)
        elif isinstance(record, Seal):
            if record.next_segment != number + 1 or next_offset != len(buf):
                raise WalCorrupt(str(seg_path), offset, "seal is not the end of the segment")
            return next_offset, max_index, True, ""
        offset = next_offset
    return offset, max_index, False, ""
