"""The in-memory index: chunk id -> location of its live record, plus what compaction needs.

Theory of operation
-------------------
The index is rebuilt at start from the hint file (a checkpoint of this structure) and the
records appended after it, and afterwards changed only by applying the same events the
log holds: a put, a tombstone, a relocation by compaction, a quarantine of a corrupt
record. Applying the log in order always gives the same index, so recovery and the live
store share this code.

Besides `entries` it keeps two derived facts:

* `live_bytes_by_segment`: the record bytes (header + payload) of the live records of each
  segment; a segment's garbage is its file size minus its header minus this.
* `dead_puts`: for each id, the segments that still hold a *dead* put record of it (one
  that a tombstone, a relocation or a quarantine superseded). A tombstone must survive
  compaction exactly while an older put of its id survives somewhere, or a restart would
  resurrect the chunk; `tombstone_needed` answers that question.

Pure: no IO, no locks (the store holds its lock around every call).
"""

from dataclasses import dataclass, field
from typing import NamedTuple

from cairn.chunkstore.record import RECORD_HEADER_BYTES


class Location(NamedTuple):
    """Where a live chunk's record starts, and its payload length in bytes."""

    segment: int
    offset: int
    length: int

    @property
    def record_bytes(self) -> int:
        return RECORD_HEADER_BYTES + self.length


@dataclass
class Index:
    entries: dict[bytes, Location] = field(default_factory=dict)
    dead_puts: dict[bytes, set[int]] = field(default_factory=dict)
    live_bytes_by_segment: dict[int, int] = field(default_factory=dict)
    live_payload_bytes: int = 0

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, chunk_id: bytes) -> Location | None:
        return self.entries.get(chunk_id)

    def apply_put(self, chunk_id: bytes, location: Location) -> None:
        """A put record at `location`; an older live record of the id becomes dead."""
        old = self.entries.get(chunk_id)
        if old is not None:
            self._unlink(chunk_id, old)
        self.entries[chunk_id] = location
        seg = location.segment
        self.live_bytes_by_segment[seg] = (
            self.live_bytes_by_segment.get(seg, 0) + location.record_bytes
        )
        self.live_payload_bytes += location.length

    def apply_tombstone(self, chunk_id: bytes) -> Location | None:
        """A tombstone: the live record (if any) becomes dead. Returns its location."""
        old = self.entries.pop(chunk_id, None)
        if old is not None:
            self._account_removed(chunk_id, old)
        return old

    def relocate(self, chunk_id: bytes, old: Location, new: Location) -> None:
        """Compaction copied the live record at `old` to `new`."""
        assert self.entries.get(chunk_id) == old, (chunk_id.hex(), old)
        self.apply_put(chunk_id, new)

    def quarantine(self, chunk_id: bytes, location: Location) -> bool:
        """Drop a corrupt live record from the index; False if it is no longer live."""
        if self.entries.get(chunk_id) != location:
            return False
        self.apply_tombstone(chunk_id)
        return True

    def tombstone_needed(self, chunk_id: bytes, compacting_segment: int) -> bool:
        """Must a tombstone of `chunk_id` found in `compacting_segment` be kept?"""
        if chunk_id in self.entries:
            return False
        holders = self.dead_puts.get(chunk_id, set())
        return any(seg != compacting_segment for seg in holders)

    def forget_segment(self, segment: int) -> None:
        """The segment file is gone: it holds no dead puts any more."""
        assert self.live_bytes_by_segment.get(segment, 0) == 0, segment
        self.live_bytes_by_segment.pop(segment, None)
        emptied = []
        for chunk_id, holders in self.dead_puts.items():
            holders.discard(segment)
            if not holders:
                emptied.append(chunk_id)
        for chunk_id in emptied:
            del self.dead_puts[chunk_id]

    def keep_segments(self, existing: set[int]) -> None:
        """Forget dead puts in segments that no longer exist (after loading a hint)."""
        for chunk_id in list(self.dead_puts):
            holders = self.dead_puts[chunk_id] & existing
            if holders:
                self.dead_puts[chunk_id] = holders
            else:
                del self.dead_puts[chunk_id]

    def copy(self) -> "Index":
        return Index(
            entries=dict(self.entries),
            dead_puts={k: set(v) for k, v in self.dead_puts.items()},
            live_bytes_by_segment=dict(self.live_bytes_by_segment),
            live_payload_bytes=self.live_payload_bytes,
        )

    def _unlink(self, chunk_id: bytes, old: Location) -> None:
        del self.entries[chunk_id]
        self._account_removed(chunk_id, old)

    def _account_removed(self, chunk_id: bytes, old: Location) -> None:
        seg = old.segment
        left = self.live_bytes_by_segment[seg] - old.record_bytes
        assert left >= 0, (seg, left)
        self.live_bytes_by_segment[seg] = left
        self.live_payload_bytes -= old.length
        self.dead_puts.setdefault(chunk_id, set()).add(seg)
