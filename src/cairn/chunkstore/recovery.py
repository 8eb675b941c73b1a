"""Start-up recovery: rebuild the index and repair the tail of the log.

Theory of operation
-------------------
1. Load the hint (see `hint.py`) if it is valid and agrees with the segment files;
   otherwise start from an empty index at the first segment.
2. Scan every record after the hint's position, in segment order, verifying each
   checksum, and apply it to the index. This restores the entries that a crash lost
   between the last checkpoint and the crash.
3. Damage is classified by where it is:

   * **Torn tail** - damage in the *last* segment with no valid record after it: the
     remains of a write that was not acknowledged (nothing is acknowledged before the
     fsync that covers it, and a record is appended in one `pwritev`). It is truncated
     away and reported.
   * **A torn segment header** of the last segment (a crash while creating it, before
     anything was written to it): the file is removed.
   * **Corruption in the middle** - damage followed by valid records, or damage in a
     sealed segment: it is *quarantined*, never truncated (that would destroy valid
     data after it). The bytes stay (they count as garbage, compaction drops them), the
     scan resumes at the next valid record, and the range and the id it seemed to hold
     are reported so the node can repair the chunk from another replica.
   * A sealed segment whose header is corrupt is renamed to `*.seg.quarantined`, its
     index entries dropped and reported.

Records before the hint position are not re-read here; the scrubber verifies them.
"""

import os
from dataclasses import dataclass, field

from cairn.chunkstore.hint import HINT_FILE, Hint, HintError, decode_hint
from cairn.chunkstore.index import Index, Location
from cairn.chunkstore.record import (
    KIND_PUT,
    SEGMENT_HEADER_BYTES,
    RecordError,
    decode_segment_header,
)
from cairn.chunkstore.segment import (
    ScanDamage,
    list_segment_numbers,
    pread_exact,
    scan_records,
    segment_path,
)
from cairn.runtime.fsync import fsync_directory

QUARANTINE_SUFFIX = ".quarantined"


@dataclass(frozen=True, slots=True)
class Damage:
    """A damaged byte range found at start-up, and what was done about it."""

    segment: int
    start: int
    end: int
    reason: str
    chunk_id: bytes | None
    action: str  # "truncated" | "quarantined" | "removed"


@dataclass
class RecoveryReport:
    hint_used: bool = False
    hint_problem: str = ""
    records_scanned: int = 0
    damage: list[Damage] = field(default_factory=list)
    lost_ids: list[bytes] = field(default_factory=list)

    @property
    def corrupt(self) -> list[Damage]:
        return [d for d in self.damage if d.action == "quarantined"]


@dataclass
class Recovered:
    index: Index
    sizes: dict[int, int]  # segment number -> valid end (the file size after repair)
    logical_bytes: int
    report: RecoveryReport


def recover(directory: str) -> Recovered:
    """Repair the tail, rebuild the index; see the module docstring."""
    report = RecoveryReport()
    numbers = list_segment_numbers(directory)
    sizes = {n: os.path.getsize(segment_path(directory, n)) for n in numbers}
    numbers = _drop_torn_last_header(directory, numbers, sizes, report)
    hint = _load_hint(directory, sizes, report)
    if hint is None:
        index, logical, start_seg, start_off = Index(), 0, -1, 0
    else:
        index, logical = hint.index, hint.logical_bytes
        start_seg, start_off = hint.segment, hint.offset
        report.hint_used = True
    for i, number in enumerate(numbers):
        if number < start_seg:
            continue
        is_last = i == len(numbers) - 1
        path = segment_path(directory, number)
        fd = os.open(path, os.O_RDWR)
        try:
            if number == start_seg:
                begin = start_off
            else:
                try:
                    decode_segment_header(pread_exact(fd, SEGMENT_HEADER_BYTES, 0))
                except RecordError as exc:
                    os.close(fd)
                    fd = -1
                    _quarantine_segment(directory, number, exc.reason, index, sizes, report)
                    continue
                begin = SEGMENT_HEADER_BYTES
            logical += _scan_segment(fd, number, begin, sizes, is_last, index, report)
        finally:
            if fd >= 0:
                os.close(fd)
    existing = set(sizes)
    index.keep_segments(existing)
    return Recovered(index=index, sizes=sizes, logical_bytes=logical, report=report)


def rebuild_index(directory: str) -> Index:
    """The index the segment files alone give, read-only: no hint, no repair.

    A consistency check (tests, tools): it must equal the live index of a quiescent
    store, whatever compaction dropped or copied.
    """
    index = Index()
    for number in list_segment_numbers(directory):
        fd = os.open(segment_path(directory, number), os.O_RDONLY)
        try:
            try:
                decode_segment_header(pread_exact(fd, SEGMENT_HEADER_BYTES, 0))
            except RecordError:
                continue
            for item in scan_records(fd, SEGMENT_HEADER_BYTES, os.fstat(fd).st_size):
                if isinstance(item, ScanDamage):
                    continue
                if item.header.kind == KIND_PUT:
                    loc = Location(number, item.offset, item.header.length)
                    index.apply_put(item.header.chunk_id, loc)
                else:
                    index.apply_tombstone(item.header.chunk_id)
        finally:
            os.close(fd)
    return index


def _scan_segment(
    fd: int,
    number: int,
    begin: int,
    sizes: dict[int, int],
    is_last: bool,
    index: Index,
    report: RecoveryReport,
) -> int:
    """Apply the records of one segment from `begin`; return logical bytes added."""
    logical = 0
    for item in scan_records(fd, begin, sizes[number]):
        if isinstance(item, ScanDamage):
            if item.at_tail and is_last:
                os.ftruncate(fd, item.start)
                os.fsync(fd)
                sizes[number] = item.start
                action = "truncated"
            else:
                action = "quarantined"
            report.damage.append(
                Damage(number, item.start, item.end, item.reason, item.chunk_id, action)
            )
            continue
        report.records_scanned += 1
        header = item.header
        if header.kind == KIND_PUT:
            if header.chunk_id not in index.entries:
                logical += header.length
            index.apply_put(header.chunk_id, Location(number, item.offset, header.length))
        else:
            index.apply_tombstone(header.chunk_id)
    return logical


def _drop_torn_last_header(
    directory: str, numbers: list[int], sizes: dict[int, int], report: RecoveryReport
) -> list[int]:
    """Remove a last segment whose header is incomplete (a crash while creating it)."""
    if not numbers:
        return numbers
    last = numbers[-1]
    if sizes[last] >= SEGMENT_HEADER_BYTES:
        return numbers
    os.unlink(segment_path(directory, last))
    fsync_directory(directory)
    report.damage.append(
        Damage(last, 0, sizes.pop(last), "segment header truncated", None, "removed")
    )
    return numbers[:-1]


def _quarantine_segment(
    directory: str,
    number: int,
    reason: str,
    index: Index,
    sizes: dict[int, int],
    report: RecoveryReport,
) -> None:
    path = segment_path(directory, number)
    os.rename(path, path + QUARANTINE_SUFFIX)
    fsync_directory(directory)
    report.damage.append(Damage(number, 0, sizes.pop(number), reason, None, "quarantined"))
    for chunk_id, loc in list(index.entries.items()):
        if loc.segment == number:
            index.quarantine(chunk_id, loc)
            report.lost_ids.append(chunk_id)
    index.live_bytes_by_segment.pop(number, None)


def _load_hint(directory: str, sizes: dict[int, int], report: RecoveryReport) -> Hint | None:
    path = os.path.join(directory, HINT_FILE)
    try:
        with open(path, "rb") as f:
            buf = f.read()
    except FileNotFoundError:
        report.hint_problem = "no hint file"
        return None
    try:
        hint = decode_hint(buf)
    except HintError as exc:
        report.hint_problem = str(exc)
        return None
    if sizes.get(hint.segment, -1) < hint.offset:
        report.hint_problem = "hint position is beyond the end of its segment"
        return None
    for loc in hint.index.entries.values():
        if loc.segment not in sizes or loc.offset + loc.record_bytes > sizes[loc.segment]:
            report.hint_problem = "hint names a record beyond the segment files"
            return None
    return hint
