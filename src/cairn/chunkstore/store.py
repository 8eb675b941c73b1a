"""`ChunkStore`: one node's chunk storage engine, a thread-safe synchronous API.

Theory of operation
-------------------
Chunks are appended as records to the active segment (see `record.py`, `segment.py`)
and found through an in-memory index (`index.py`) that start-up rebuilds from a hint
checkpoint plus the records after it (`recovery.py`). Nothing is ever overwritten in
place; deletes append tombstones; compaction (`compaction.py`) copies live records out
of segments with much garbage and removes those files.

Concurrency. One lock (`_lock`) guards the index, the segment table and the append
offset; it is held only for bookkeeping and the `pwritev` of one record, never while
reading a payload or waiting for an fsync. Readers look a location up under the lock,
pin the segment (`Segment.refs`) and `pread` outside it. Any number of threads may call
any method; `AsyncChunkStore` (`aio.py`) runs these calls on a thread pool for asyncio.

Durability (`fsync` policy):

* `always` - every put/delete fsyncs its own record before returning (under the lock).
* `batch` (default) - *group commit*: each appended record gets a sequence number; a
  writer then waits until the durable sequence covers it. The first waiter becomes the
  leader, captures the highest appended sequence and fsyncs once; writers that appended
  meanwhile are covered by that fsync or by the next leader's. So concurrent writers
  share one fsync and no call returns before its record is durable.
* `none` - no fsync, fdatasync or directory fsync at all, only on an explicit `sync()`
  (for tests and benchmarks: safe against a killed process, whose writes the page cache
  keeps, not against a power loss).

Records are made durable with `fdatasync`, which flushes the data and the file size
(what is needed to read the data back) but not timestamps: on this machine's ext4 it
costs one device flush (~4 ms) where `fsync` of a growing file costs two (~8 ms).
Segment creation and the hint use `fsync` on the file and its directory.

Page cache (`cache_behind_bytes`). Once records are durable, the store tells the kernel
to drop their pages (`posix_fadvise(DONTNEED)`), keeping only the last
`cache_behind_bytes` of the active segment cached, as Swift's object server drops what
it wrote. A store writes far more than it rereads soon, and a page cache that grows
with every write costs a first touch of fresh memory per page: on this machine (a VM
whose memory the host backs lazily) that was 0.8-1.0 ms of CPU per MiB per replica,
against 0.33 on recycled pages; 16 MiB PUTs went from 65-77 to 90-96 MB/s at c=1
(docs/design/chunkstore.md). Dropping clean pages changes nothing on disk.

`has` never reports a chunk whose record is not yet durable: it waits for the group
commit in flight (a gateway that skips an upload because of `has` must be able to rely
on it). A put of an id that is already live writes nothing (deduplication) but is only
acknowledged once that earlier record is durable; its bytes still count as logical.

Failure. ENOSPC while appending truncates the partial record away and raises
`StoreFull`; the index is untouched, so the store stays consistent and readable, and the
next put simply tries again. A failed fsync is different: what reached the disk is then
unknown, so the store refuses writes (`StoreFailed`) until reopened, and reopening
re-verifies the tail.
"""

import errno
import fcntl
import mmap
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Literal

from cairn.base.checksum import Buffer
from cairn.chunkstore.errors import (
    ChunkCorrupt,
    ChunkNotFound,
    ChunkTooLarge,
    InvalidChunkId,
    StoreClosed,
    StoreFailed,
    StoreFull,
    StoreLocked,
)
from cairn.chunkstore.hint import HINT_FILE, Hint, encode_hint
from cairn.chunkstore.index import Index, Location
from cairn.chunkstore.partition import PartitionFn, partition_fn
from cairn.chunkstore.record import (
    CHUNK_BYTES_MAX,
    CHUNK_ID_BYTES,
    KIND_PUT,
    KIND_TOMBSTONE,
    RECORD_HEADER_BYTES,
    SEGMENT_HEADER_BYTES,
    RecordError,
    decode_record,
    encode_record_header,
)
from cairn.chunkstore.recovery import RecoveryReport, recover
from cairn.chunkstore.segment import Segment, create_segment, open_segment, pread_exact, pwrite_all
from cairn.runtime.fsync import fsync_directory

FsyncPolicy = Literal["always", "batch", "none"]
FSYNC_POLICIES: tuple[FsyncPolicy, ...] = ("always", "batch", "none")
LOCK_FILE = "LOCK"
CACHE_BEHIND_BYTES_DEFAULT = 256 * 1024 * 1024
PAGE_BYTES = mmap.PAGESIZE
DROP_STEP_BYTES = 4 * 1024 * 1024  # drop in steps: one fadvise per few MiB, not per sync
CorruptCallback = Callable[[bytes, str], None]


@dataclass(frozen=True, slots=True)
class StoreOptions:
    """Tunables of a store; every limit carries its unit."""

    segment_bytes_max: int = 256 * 1024 * 1024
    fsync: FsyncPolicy = "batch"
    checkpoint_on_roll: bool = True
    cache_behind_bytes: int | None = CACHE_BEHIND_BYTES_DEFAULT
    """Durable bytes behind the write head kept in the page cache; None keeps all."""

    def __post_init__(self) -> None:
        if self.fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync must be one of {FSYNC_POLICIES}, got {self.fsync!r}")
        if self.cache_behind_bytes is not None and self.cache_behind_bytes < 0:
            raise ValueError("cache_behind_bytes must be >= 0 (or None to keep all)")
        smallest = SEGMENT_HEADER_BYTES + RECORD_HEADER_BYTES
        if self.segment_bytes_max < smallest:
            raise ValueError(f"segment_bytes_max must be at least {smallest}")


@dataclass(frozen=True, slots=True)
class StoreUsage:
    """Capacity and usage figures, in bytes unless named otherwise.

    `logical_bytes` counts every acknowledged put, duplicates included (deduplication
    makes a duplicate free), since the store was created; puts of duplicates after the
    last checkpoint are not counted again after a crash. `live_bytes` is the payload of
    live chunks; `stored_bytes` the size of all segment files; `garbage_bytes` what
    compaction could reclaim (dead records, tombstones, damaged ranges).
    """

    chunk_count: int
    logical_bytes: int
    live_bytes: int
    stored_bytes: int
    garbage_bytes: int
    segment_count: int
    capacity_bytes: int
    free_bytes: int

    @property
    def dedup_ratio(self) -> float:
        return self.logical_bytes / self.live_bytes if self.live_bytes else 1.0


@dataclass(frozen=True, slots=True)
class SegmentStats:
    number: int
    size_bytes: int
    live_bytes: int
    active: bool

    @property
    def garbage_bytes(self) -> int:
        return self.size_bytes - SEGMENT_HEADER_BYTES - self.live_bytes


def check_chunk_id(chunk_id: bytes) -> None:
    if not isinstance(chunk_id, bytes) or len(chunk_id) != CHUNK_ID_BYTES:
        length = len(chunk_id) if isinstance(chunk_id, bytes | bytearray) else "?"
        raise InvalidChunkId(f"a chunk id is {CHUNK_ID_BYTES} bytes, got {length}")


class ChunkStore:
    """See the module docstring. Open with `ChunkStore.open(directory)`."""

    def __init__(
        self,
        directory: str,
        options: StoreOptions,
        lock_fd: int,
        index: Index,
        segments: dict[int, Segment],
        logical_bytes: int,
        report: RecoveryReport,
        on_corrupt: CorruptCallback | None,
    ) -> None:
        self.directory = directory
        self.options = options
        self.recovery_report = report
        self._lock_fd = lock_fd
        self._index = index
        self._segments = segments
        self._active = segments[max(segments)]
        self._logical_bytes = logical_bytes
        self._on_corrupt = on_corrupt
        self._corrupt: list[tuple[bytes, str]] = []
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._checkpoint_lock = threading.Lock()
        self._appended_seq = 0
        self._durable_seq = 0
        self._failed: str | None = None
        self._closed = False
        self._durable = options.fsync != "none"

    # ----------------------------------------------------------------- open/close

    @classmethod
    def open(
        cls,
        directory: str,
        options: StoreOptions | None = None,
        *,
        on_corrupt: CorruptCallback | None = None,
    ) -> "ChunkStore":
        """Open (creating if needed) the store in `directory` and recover it."""
        options = options or StoreOptions()
        os.makedirs(directory, exist_ok=True)
        lock_fd = os.open(os.path.join(directory, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            raise StoreLocked(f"{directory} is open in another process") from None
        try:
            recovered = recover(directory)
            segments = {n: open_segment(directory, n, size) for n, size in recovered.sizes.items()}
            if not segments:
                segments[1] = create_segment(directory, 1)
        except BaseException:
            os.close(lock_fd)
            raise
        store = cls(
            directory,
            options,
            lock_fd,
            recovered.index,
            segments,
            recovered.logical_bytes,
            recovered.report,
            on_corrupt,
        )
        for damage in recovered.report.damage:
            if damage.action == "quarantined" and damage.chunk_id is not None:
                store._report_corrupt(damage.chunk_id, f"at start-up: {damage.reason}")
        for chunk_id in recovered.report.lost_ids:
            store._report_corrupt(chunk_id, "at start-up: segment quarantined")
        return store

    def close(self) -> None:
        """Write a checkpoint (durably unless the policy is `none`), release the directory."""
        if self._closed:
            return
        if self._failed is None:
            self.checkpoint()
        with self._lock:
            self._closed = True
            for seg in self._segments.values():
                if seg.refs == 0:
                    seg.close()
            self._segments.clear()
        os.close(self._lock_fd)

    def __enter__(self) -> "ChunkStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- writes

    def put(self, chunk_id: bytes, data: Buffer) -> bool:
        """Store a chunk durably; False if it was already stored (deduplicated)."""
        check_chunk_id(chunk_id)
        if len(data) > CHUNK_BYTES_MAX:
            raise ChunkTooLarge(f"chunk is {len(data)} bytes; the limit is {CHUNK_BYTES_MAX}")
        header = encode_record_header(KIND_PUT, chunk_id, data)
        rolled = False
        with self._lock:
            self._check_writable()
            if chunk_id in self._index.entries:
                self._logical_bytes += len(data)
                seq = self._appended_seq
                stored = False
            else:
                rolled = self._roll_if_full(RECORD_HEADER_BYTES + len(data))
                offset, seq = self._append(header, data)
                self._index.apply_put(chunk_id, Location(self._active.number, offset, len(data)))
                self._logical_bytes += len(data)
                stored = True
        self._wait_durable(seq)
        if rolled and self.options.checkpoint_on_roll:
            self.checkpoint()
        return stored

    def delete(self, chunk_id: bytes) -> bool:
        """Delete a chunk (append a tombstone); False if it was not stored."""
        check_chunk_id(chunk_id)
        header = encode_record_header(KIND_TOMBSTONE, chunk_id, b"")
        rolled = False
        with self._lock:
            self._check_writable()
            if chunk_id not in self._index.entries:
                return False
            rolled = self._roll_if_full(RECORD_HEADER_BYTES)
            _, seq = self._append(header, b"")
            self._index.apply_tombstone(chunk_id)
        self._wait_durable(seq)
        if rolled and self.options.checkpoint_on_roll:
            self.checkpoint()
        return True

    def sync(self) -> None:
        """Make every appended record durable now, whatever the policy."""
        with self._lock:
            self._check_open()
            seq = self._appended_seq
        self._wait_durable(seq, force=True)

    # ----------------------------------------------------------------- reads

    def has(self, chunk_ids: Iterable[bytes]) -> set[bytes]:
        """The subset of `chunk_ids` that is stored durably."""
        ids = list(chunk_ids)
        for chunk_id in ids:
            check_chunk_id(chunk_id)
        with self._lock:
            self._check_open()
            present = {cid for cid in ids if cid in self._index.entries}
            seq = self._appended_seq
        if present:
            self._wait_durable(seq)
        return present

    def get(self, chunk_id: bytes) -> bytes:
        """The chunk's bytes, checksum verified. Raises ChunkNotFound or ChunkCorrupt."""
        check_chunk_id(chunk_id)
        with self._lock:
            self._check_open()
            loc = self._index.get(chunk_id)
            if loc is None:
                raise ChunkNotFound(chunk_id.hex())
            seg = self._pin(loc.segment)
        try:
            buf = pread_exact(seg.fd, loc.record_bytes, loc.offset)
        finally:
            self._unpin(seg)
        try:
            header, payload = decode_record(buf)
            if header.kind != KIND_PUT or header.chunk_id != chunk_id:
                raise RecordError("record does not match the index")
        except RecordError as exc:
            self.quarantine(chunk_id, loc, exc.reason)
            raise ChunkCorrupt(chunk_id, exc.reason) from None
        return bytes(payload)

    def verify(self, chunk_id: bytes, loc: Location) -> bool:
        """Re-read and check one record (for the scrubber); quarantine it if corrupt.

        Returns False if it was corrupt, True if valid or no longer at `loc`.
        """
        with self._lock:
            if self._closed or self._index.get(chunk_id) != loc:
                return True
            seg = self._pin(loc.segment)
        try:
            buf = pread_exact(seg.fd, loc.record_bytes, loc.offset)
        finally:
            self._unpin(seg)
        try:
            header, _ = decode_record(buf)
            if header.kind != KIND_PUT or header.chunk_id != chunk_id:
                raise RecordError("record does not match the index")
        except RecordError as exc:
            self.quarantine(chunk_id, loc, exc.reason)
            return False
        return True

    def ids(
        self,
        partition: int | None = None,
        *,
        partition_count: int | None = None,
        partition_of: PartitionFn | None = None,
    ) -> Iterator[bytes]:
        """Live chunk ids, optionally only those of one partition.

        Give `partition_count` (the rule of `partition.py`) or `partition_of` (any
        function id -> partition). The ids are a snapshot taken at the call.
        """
        with self._lock:
            self._check_open()
            snapshot = list(self._index.entries)
        if partition is None:
            return iter(snapshot)
        if partition_of is None:
            if partition_count is None:
                raise ValueError("give partition_count or partition_of with partition")
            partition_of = partition_fn(partition_count)
        fn = partition_of
        return (cid for cid in snapshot if fn(cid) == partition)

    def live_locations(self) -> list[tuple[bytes, Location]]:
        """A snapshot of (id, location) of every live chunk (for the scrubber)."""
        with self._lock:
            self._check_open()
            return list(self._index.entries.items())

    def __len__(self) -> int:
        with self._lock:
            return len(self._index.entries)

    # ----------------------------------------------------------------- figures

    def usage(self) -> StoreUsage:
        with self._lock:
            self._check_open()
            stored = sum(seg.size for seg in self._segments.values())
            live_records = sum(self._index.live_bytes_by_segment.values())
            usage = StoreUsage(
                chunk_count=len(self._index.entries),
                logical_bytes=self._logical_bytes,
                live_bytes=self._index.live_payload_bytes,
                stored_bytes=stored,
                garbage_bytes=stored - live_records - SEGMENT_HEADER_BYTES * len(self._segments),
                segment_count=len(self._segments),
                capacity_bytes=0,
                free_bytes=0,
            )
        st = os.statvfs(self.directory)
        return replace(
            usage,
            capacity_bytes=st.f_blocks * st.f_frsize,
            free_bytes=st.f_bavail * st.f_frsize,
        )

    def segment_stats(self) -> list[SegmentStats]:
        with self._lock:
            self._check_open()
            return [
                SegmentStats(
                    number=n,
                    size_bytes=seg.size,
                    live_bytes=self._index.live_bytes_by_segment.get(n, 0),
                    active=seg is self._active,
                )
                for n, seg in sorted(self._segments.items())
            ]

    def corrupt_chunks(self) -> list[tuple[bytes, str]]:
        """Every (id, reason) found corrupt since open: quarantined, never served."""
        with self._lock:
            return list(self._corrupt)

    # ----------------------------------------------------------------- checkpoint

    def checkpoint(self) -> None:
        """Write a hint file covering everything appended so far (made durable first)."""
        with self._checkpoint_lock:
            with self._lock:
                self._check_open()
                seq = self._appended_seq
                position = (self._active.number, self._active.size)
                snapshot = self._index.copy()
                logical = self._logical_bytes
            if self._durable:
                self._wait_durable(seq, force=True)
            body = encode_hint(Hint(position[0], position[1], logical, snapshot))
            path = os.path.join(self.directory, HINT_FILE)
            tmp = path + ".tmp"
            try:
                with open(tmp, "wb") as f:
                    f.write(body)
                    f.flush()
                    if self._durable:
                        os.fsync(f.fileno())
                os.replace(tmp, path)
                if self._durable:
                    fsync_directory(self.directory)
            except OSError:
                # A missing or stale hint costs only start-up time; never fail a write.
                try:
                    os.unlink(tmp)
                except OSError:
                    pass

    # ----------------------------------------------------------------- compaction hooks

    def relocate(self, chunk_id: bytes, old: Location, header: bytes, payload: bytes) -> bool:
        """Copy a verified live record to the active segment if `old` is still current."""
        rolled = False
        with self._lock:
            self._check_writable()
            if self._index.get(chunk_id) != old:
                return False
            rolled = self._roll_if_full(RECORD_HEADER_BYTES + len(payload))
            assert self._active.number != old.segment, "compacting the active segment"
            offset, _ = self._append(header, payload)
            new = Location(self._active.number, offset, len(payload))
            self._index.relocate(chunk_id, old, new)
        if rolled and self.options.checkpoint_on_roll:
            self.checkpoint()
        return True

    def carry_tombstone(self, chunk_id: bytes, segment: int) -> bool:
        """Re-append a tombstone from `segment` if an older put of its id survives."""
        with self._lock:
            self._check_writable()
            if not self._index.tombstone_needed(chunk_id, segment):
                return False
            self._roll_if_full(RECORD_HEADER_BYTES)
            self._append(encode_record_header(KIND_TOMBSTONE, chunk_id, b""), b"")
            return True

    def retire_segment(self, number: int) -> None:
        """Remove a sealed segment whose live records were all relocated.

        The caller made the relocations durable and wrote a checkpoint first.
        """
        with self._lock:
            self._check_open()
            seg = self._segments[number]
            assert seg is not self._active, number
            assert self._index.live_bytes_by_segment.get(number, 0) == 0, number
            del self._segments[number]
            self._index.forget_segment(number)
            seg.retired = True
            os.unlink(seg.path)
            if seg.refs == 0:
                seg.close()
        if self._durable:
            fsync_directory(self.directory)

    def pin_segment(self, number: int) -> Segment | None:
        """Pin a segment for reading outside the lock; None if it is gone."""
        with self._lock:
            if number not in self._segments:
                return None
            return self._pin(number)

    def unpin_segment(self, seg: Segment) -> None:
        self._unpin(seg)

    def quarantine(self, chunk_id: bytes, loc: Location, reason: str) -> None:
        """A corrupt live record: drop it from the index (never serve it) and report."""
        with self._lock:
            dropped = self._index.quarantine(chunk_id, loc)
        if dropped:
            self._report_corrupt(chunk_id, reason)

    # ----------------------------------------------------------------- internals

    def _report_corrupt(self, chunk_id: bytes, reason: str) -> None:
        with self._lock:
            self._corrupt.append((chunk_id, reason))
        if self._on_corrupt is not None:
            self._on_corrupt(chunk_id, reason)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed(self.directory)

    def _check_writable(self) -> None:
        self._check_open()
        if self._failed is not None:
            raise StoreFailed(self._failed)

    def _pin(self, number: int) -> Segment:
        seg = self._segments[number]
        seg.refs += 1
        return seg

    def _unpin(self, seg: Segment) -> None:
        with self._lock:
            seg.refs -= 1
            if seg.refs == 0 and (seg.retired or self._closed):
                seg.close()

    def _append(self, header: bytes, payload: Buffer) -> tuple[int, int]:
        """Append one record to the active segment (lock held); return (offset, seq)."""
        seg = self._active
        offset = seg.size
        try:
            pwrite_all(seg.fd, [header, payload] if payload else [header], offset)
        except OSError as exc:
            self._undo_append(seg, offset, exc)
            raise  # pragma: no cover - _undo_append always raises
        seg.size = offset + len(header) + len(payload)
        self._appended_seq += 1
        if self.options.fsync == "always":
            try:
                os.fdatasync(seg.fd)
            except OSError as exc:
                self._failed = f"fdatasync failed: {exc}"
                raise StoreFailed(self._failed) from exc
            self._durable_seq = self._appended_seq
            self._drop_behind(seg, seg.size)
        return offset, self._appended_seq

    def _undo_append(self, seg: Segment, offset: int, exc: OSError) -> None:
        try:
            os.ftruncate(seg.fd, offset)
        except OSError as trunc_exc:  # pragma: no cover - shrinking needs no space
            self._failed = f"cannot truncate a partial record: {trunc_exc}"
            raise StoreFailed(self._failed) from exc
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StoreFull(
                f"disk full: no space for a record in {self.directory}; "
                "the store is consistent and readable, and writes work again once "
                "space is freed"
            ) from exc
        raise exc

    def _roll_if_full(self, record_bytes: int) -> bool:
        """Start a new active segment if this record would overflow the current one."""
        seg = self._active
        if seg.size + record_bytes <= self.options.segment_bytes_max:
            return False
        if seg.size == SEGMENT_HEADER_BYTES:
            return False  # an oversized record gets a segment of its own
        # Seal: the old segment is durable before any record lands in the new one, so
        # only the last segment can ever have a torn tail.
        if self._durable:
            try:
                os.fdatasync(seg.fd)
            except OSError as exc:
                self._failed = f"fdatasync failed: {exc}"
                raise StoreFailed(self._failed) from exc
            self._durable_seq = self._appended_seq
            self._drop_behind(seg, seg.size, whole=True)
        try:
            new = create_segment(self.directory, seg.number + 1, durable=self._durable)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StoreFull(
                    f"disk full: cannot create a new segment in {self.directory}; "
                    "the store is consistent and readable"
                ) from exc
            raise
        self._segments[new.number] = new
        self._active = new
        return True

    def _drop_behind(self, seg: Segment, durable_end: int, *, whole: bool = False) -> None:
        """Drop the page cache of `seg` below `durable_end` (all of it if `whole`, else
        all but the last `cache_behind_bytes`). Only under the lock or the sync lock,
        and only for bytes already fdatasync'ed: clean pages, so nothing is written."""
        window = self.options.cache_behind_bytes
        if window is None:
            return
        span = drop_span(seg.dropped_upto, durable_end, 0 if whole else window)
        if span is None:
            return
        offset, length = span
        try:
            os.posix_fadvise(seg.fd, offset, length, os.POSIX_FADV_DONTNEED)
        except OSError:  # a hint: the data is durable whether or not the kernel drops it
            return
        seg.dropped_upto = offset + length

    def _wait_durable(self, seq: int, *, force: bool = False) -> None:
        """Return once record `seq` is durable (group commit for the `batch` policy)."""
        policy = self.options.fsync
        if seq <= self._durable_seq or (policy == "none" and not force):
            return
        if policy == "always" and not force:  # pragma: no cover - always fsyncs in _append
            return
        with self._sync_lock:
            if seq <= self._durable_seq:
                return
            with self._lock:
                if self._failed is not None:
                    raise StoreFailed(self._failed)
                target = self._appended_seq
                seg = self._pin(self._active.number)
                synced_end = seg.size
            try:
                os.fdatasync(seg.fd)
            except OSError as exc:
                with self._lock:
                    self._failed = f"fdatasync failed: {exc}"
                raise StoreFailed(self._failed) from exc
            else:
                self._drop_behind(seg, synced_end)
            finally:
                self._unpin(seg)
            with self._lock:
                self._durable_seq = max(self._durable_seq, target)


def drop_span(dropped_upto: int, durable_end: int, window: int) -> tuple[int, int] | None:
    """(offset, length) of the durable bytes to drop from the page cache now: everything
    from `dropped_upto` to `window` bytes before `durable_end`, once that is at least
    `DROP_STEP_BYTES` (or, with no window, whatever is left). The kernel drops only whole
    pages, so each span starts at the page that holds `dropped_upto`: the page the last
    span ended inside is dropped with the next one."""
    start = dropped_upto - dropped_upto % PAGE_BYTES
    length = durable_end - window - start
    if durable_end - window <= dropped_upto or (window and length < DROP_STEP_BYTES):
        return None
    return start, length
