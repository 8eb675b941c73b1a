"""Segment files: creating, opening, positional reads and scanning records.

Theory of operation
-------------------
A store directory holds segment files named by a zero-padded decimal number
(`0000000001.seg`, ...); numbers only grow, with gaps where compaction removed segments.
The highest number is the *active* segment, the only one appended to; the others are
sealed. Every segment is opened once with one file descriptor that stays open until the
segment is retired, and all reads are `os.pread` on it, so concurrent readers need no
seek and no lock while the bytes move (the GIL is released during the syscall).

A `Segment` counts the readers that are between looking a location up in the index and
finishing their `pread` (`refs`). Compaction *retires* a segment (unlinks its file) while
readers may still hold it; its descriptor is closed only when the last reader releases it,
so a descriptor number is never reused under a reader's feet.

`scan_records` walks a byte range of a segment and yields each valid record or each
damaged range. After damage it *resynchronises*: it searches for the next offset at which
a whole record decodes and passes its checksum. Damage with no valid record after it is
marked `at_tail` (a torn write at the end of the file); damage followed by valid records
is corruption in the middle. What to do about each is the caller's decision.
"""

import errno
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from cairn.chunkstore.record import (
    RECORD_HEADER_BYTES,
    RECORD_MAGIC,
    RecordError,
    RecordHeader,
    decode_record,
    decode_record_header,
    encode_segment_header,
    verify_record,
)
from cairn.runtime.fsync import fsync_directory

SEGMENT_SUFFIX = ".seg"
RESYNC_WINDOW_BYTES = 1024 * 1024

Throttle = Callable[[int], None]


def segment_path(directory: str, number: int) -> str:
    return os.path.join(directory, f"{number:010d}{SEGMENT_SUFFIX}")


def list_segment_numbers(directory: str) -> list[int]:
    """Numbers of the segment files in `directory`, ascending."""
    numbers = []
    for name in os.listdir(directory):
        stem, dot, suffix = name.partition(".")
        if dot and "." + suffix == SEGMENT_SUFFIX and stem.isdigit():
            numbers.append(int(stem))
    return sorted(numbers)


def pread_exact(fd: int, length: int, offset: int) -> bytes:
    """Read `length` bytes at `offset`; fewer only at end of file."""
    data = os.pread(fd, length, offset)
    if len(data) == length or not data:
        return data
    parts = [data]
    got = len(data)
    while got < length:
        more = os.pread(fd, length - got, offset + got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def pwrite_all(fd: int, buffers: list[bytes | bytearray | memoryview], offset: int) -> int:
    """Write all `buffers` at `offset` (one `pwritev` normally); return bytes written.

    Raises OSError (e.g. ENOSPC) after a partial write; the caller truncates it away.
    """
    total = sum(len(b) for b in buffers)
    written = os.pwritev(fd, buffers, offset)
    while written < total:
        rest: list[bytes | bytearray | memoryview] = []
        skip = written
        for buf in buffers:
            if skip >= len(buf):
                skip -= len(buf)
                continue
            rest.append(memoryview(buf)[skip:])
            skip = 0
        n = os.pwritev(fd, rest, offset + written)
        if n == 0:  # pragma: no cover - the kernel reports ENOSPC instead
            raise OSError(errno.ENOSPC, "short write")
        written += n
    return written


class Segment:
    """One open segment file. `size` is the end of its valid bytes (the append offset)."""

    def __init__(self, directory: str, number: int, fd: int, size: int) -> None:
        self.directory = directory
        self.number = number
        self.path = segment_path(directory, number)
        self.fd = fd
        self.size = size
        self.refs = 0
        self.retired = False
        self.dropped_upto = 0  # bytes below were dropped from the page cache (store.drop_span)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def create_segment(directory: str, number: int, *, durable: bool = True) -> Segment:
    """Create a new segment file with its header; if `durable`, fsync it and the directory.

    On any error (ENOSPC included) the partial file is removed and the error re-raised.
    """
    path = segment_path(directory, number)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    header = encode_segment_header(number)
    try:
        pwrite_all(fd, [header], 0)
        if durable:
            os.fsync(fd)
            fsync_directory(directory)
    except OSError:
        os.close(fd)
        try:
            os.unlink(path)
        except OSError:
            pass
        raise
    return Segment(directory, number, fd, len(header))


def open_segment(directory: str, number: int, size: int) -> Segment:
    fd = os.open(segment_path(directory, number), os.O_RDWR)
    return Segment(directory, number, fd, size)


@dataclass(frozen=True, slots=True)
class ScannedRecord:
    """A record that decoded and passed its checksum."""

    offset: int
    header: RecordHeader
    raw_header: bytes
    payload: bytes


@dataclass(frozen=True, slots=True)
class ScanDamage:
    """Bytes [start, end) that do not hold valid records.

    `chunk_id` is the id read from a header that decoded but failed its checksum (a hint:
    the id bytes themselves may be the damaged ones). `at_tail` means no valid record
    follows the damage in the scanned range.
    """

    start: int
    end: int
    reason: str
    chunk_id: bytes | None
    at_tail: bool


def _no_throttle(_: int) -> None:
    return None


def scan_records(
    fd: int, start: int, end: int, throttle: Throttle = _no_throttle
) -> Iterator[ScannedRecord | ScanDamage]:
    """Yield the valid records and damaged ranges of bytes [start, end) of a segment."""
    offset = start
    while offset < end:
        chunk_id: bytes | None = None
        if end - offset < RECORD_HEADER_BYTES:
            reason = "record header truncated"
        else:
            header_buf = pread_exact(fd, RECORD_HEADER_BYTES, offset)
            throttle(len(header_buf))
            try:
                header = decode_record_header(header_buf)
                chunk_id = header.chunk_id
                if offset + header.record_bytes > end:
                    raise RecordError("record payload truncated")
                payload = pread_exact(fd, header.length, offset + RECORD_HEADER_BYTES)
                throttle(len(payload))
                verify_record(header, header_buf, payload)
            except RecordError as exc:
                reason = exc.reason
            else:
                yield ScannedRecord(offset, header, header_buf, payload)
                offset += header.record_bytes
                continue
        resume = resync(fd, offset + 1, end)
        if resume is None:
            yield ScanDamage(offset, end, reason, chunk_id, at_tail=True)
            return
        yield ScanDamage(offset, resume, reason, chunk_id, at_tail=False)
        offset = resume


def resync(fd: int, start: int, end: int) -> int | None:
    """The first offset in [start, end) where a whole valid record begins, or None."""
    window = start
    while window < end:
        buf = pread_exact(fd, min(RESYNC_WINDOW_BYTES, end - window), window)
        if not buf:
            return None
        found = buf.find(RECORD_MAGIC)
        while found >= 0:
            candidate = window + found
            if _valid_record_at(fd, candidate, end):
                return candidate
            found = buf.find(RECORD_MAGIC, found + 1)
        # Keep an overlap so a magic split across two windows is still seen.
        window += max(1, len(buf) - (len(RECORD_MAGIC) - 1))
        if window + len(RECORD_MAGIC) > end:
            return None
    return None


def _valid_record_at(fd: int, offset: int, end: int) -> bool:
    header_buf = pread_exact(fd, RECORD_HEADER_BYTES, offset)
    try:
        header = decode_record_header(header_buf)
        if offset + header.record_bytes > end:
            return False
        decode_record(pread_exact(fd, header.record_bytes, offset))
    except RecordError:
        return False
    return True
