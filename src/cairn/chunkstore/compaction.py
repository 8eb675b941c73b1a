"""Background compaction: copy the live records out of mostly-garbage segments, then
delete those segments.

Theory of operation
-------------------
A sealed segment's garbage is its size minus its header minus the record bytes the index
still points at (dead puts, tombstones, damaged ranges). When garbage is at least
`garbage_ratio_min` of a segment, the compactor walks its records (rate limited, in
`io_bytes_per_s_max` counting reads and writes) and for each:

* a valid **put** that the index still points at is appended again to the active
  segment, with its original, already verified header and payload, and the index is
  moved to the copy - atomically with respect to writers, under the store lock, and
  only if the index still points at the old place (a concurrent delete wins);
* a **tombstone** is appended again only while an older put of its id survives in
  another segment (`Index.tombstone_needed`), otherwise dropped;
* dead records are skipped; a live record that fails its checksum is quarantined
  (reported, dropped from the index), never copied.

Then the copies are made durable and a checkpoint is written, and only then is the old
file unlinked. A crash at any point leaves either the old file (whose records are older
than the copies, so replaying the log gives the same index) or a checkpoint that no
longer needs it. Readers that pinned the old segment keep reading it until they finish
(see `segment.py`), so compaction is safe with concurrent reads and writes.
"""

from dataclasses import dataclass

from cairn.chunkstore.errors import StoreClosed
from cairn.chunkstore.index import Location
from cairn.chunkstore.pacing import PeriodicWorker, RateLimiter
from cairn.chunkstore.record import KIND_PUT, SEGMENT_HEADER_BYTES
from cairn.chunkstore.segment import ScanDamage, scan_records
from cairn.chunkstore.store import ChunkStore
from cairn.runtime.clock import Clock


@dataclass
class CompactionResult:
    segments_compacted: int = 0
    records_moved: int = 0
    tombstones_kept: int = 0
    bytes_reclaimed: int = 0
    corrupt_ids: list[bytes] | None = None


class Compactor:
    """Compacts the segments of one store; `run_once()` or a background `start()`."""

    def __init__(
        self,
        store: ChunkStore,
        *,
        garbage_ratio_min: float = 0.5,
        io_bytes_per_s_max: int = 64 * 1024 * 1024,
        interval_s: float = 60.0,
        clock: Clock | None = None,
    ) -> None:
        assert 0.0 <= garbage_ratio_min <= 1.0, garbage_ratio_min
        self.store = store
        self.garbage_ratio_min = garbage_ratio_min
        self._worker = PeriodicWorker("chunkstore-compactor", self._step, interval_s)
        self._limiter = RateLimiter(io_bytes_per_s_max, clock=clock, stop=self._worker.stop_event)

    def candidates(self) -> list[int]:
        """Sealed segments whose garbage ratio is at least `garbage_ratio_min`."""
        chosen = []
        for stats in self.store.segment_stats():
            body = stats.size_bytes - SEGMENT_HEADER_BYTES
            if stats.active or body <= 0 or stats.garbage_bytes <= 0:
                continue
            if stats.garbage_bytes >= self.garbage_ratio_min * body:
                chosen.append(stats.number)
        return chosen

    def run_once(self) -> CompactionResult:
        result = CompactionResult(corrupt_ids=[])
        for number in self.candidates():
            self.compact_segment(number, result)
        return result

    def compact_segment(self, number: int, result: CompactionResult | None = None) -> None:
        result = result if result is not None else CompactionResult(corrupt_ids=[])
        store = self.store
        seg = store.pin_segment(number)
        if seg is None:
            return
        size = seg.size
        try:
            for item in scan_records(seg.fd, SEGMENT_HEADER_BYTES, size, self._limiter.consume):
                if isinstance(item, ScanDamage):
                    continue  # live records inside it are quarantined below
                header = item.header
                if header.kind == KIND_PUT:
                    loc = Location(number, item.offset, header.length)
                    if store.relocate(header.chunk_id, loc, item.raw_header, item.payload):
                        self._limiter.consume(header.record_bytes)
                        result.records_moved += 1
                elif store.carry_tombstone(header.chunk_id, number):
                    result.tombstones_kept += 1
        finally:
            store.unpin_segment(seg)
        for chunk_id, loc in store.live_locations():
            if loc.segment == number:
                store.quarantine(chunk_id, loc, "unreadable while compacting")
                if result.corrupt_ids is not None:
                    result.corrupt_ids.append(chunk_id)
        store.checkpoint()
        store.retire_segment(number)
        result.segments_compacted += 1
        result.bytes_reclaimed += size

    def start(self) -> None:
        self._worker.start()

    def stop(self) -> None:
        self._worker.stop()

    @property
    def errors(self) -> list[BaseException]:
        return self._worker.errors

    def _step(self) -> None:
        try:
            self.run_once()
        except StoreClosed:
            self._worker.stop_event.set()
