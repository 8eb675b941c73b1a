"""Formats of the Raft write-ahead log, and the replay rules: pure code, no IO.

Theory of operation
-------------------
A WAL segment file opens with a segment header and then holds records back to back::

    segment header (24 bytes, little endian)
        magic  b"CWAL"      4
        version u16         2   (WAL_VERSION)
        reserved u16        2   (zero)
        segment number u64  8   (equals the number in the file name)
        reserved u32        4   (zero)
        crc32c u32          4   (over the 20 bytes before it)

    record header (16 bytes, little endian), then `length` payload bytes
        magic  b"CWRC"      4
        type u8             1   (RecordType)
        flags u8            1   (zero)
        reserved u16        2   (zero)
        length u32          4   (payload bytes, at most RECORD_PAYLOAD_BYTES_MAX)
        crc32c u32          4   (over header bytes 0..12, then the payload)

Payloads by type (all integers u64 little endian):

    ENTRY       index, term, kind u8, then the opaque entry bytes
    HARD_STATE  term, vote (node id, 0 = none), commit
    TRUNCATE    last kept index: every entry above it is gone
    SNAPSHOT    index, term, keep_log u8: the log is compacted up to this snapshot (the
                "floor"); keep_log says whether the entries above it stay (the log held
                the snapshot's last entry) or all go (a follower installed a snapshot)
    SEAL        number of the next segment: the last record of every segment but the
                newest, so a segment that lost its tail is caught even at a record boundary

The checksum covers the header as well as the payload, so a flipped bit in a type or a
length is caught like one in the data. Zero bytes never decode (the magic fails), so a
zero-filled tail left by a crash reads as torn, not as records.

`LogState` holds the replay rules: applying the records of a log in order gives the hard
state, the floor and the entries above it. The writer applies each record to its own
`LogState` before it buffers it, and recovery applies the records it reads to a fresh one,
so a log the writer accepted always replays to the same state, and a log the writer could
not have produced (an entry out of sequence, a truncation below the floor) is refused.
"""

import enum
import re
import struct
from dataclasses import dataclass, field

from cairn.base.checksum import Buffer, crc32c, crc32c_extend
from cairn.base.errors import CairnError

__all__ = [
    "RECORD_HEADER_BYTES",
    "RECORD_PAYLOAD_BYTES_MAX",
    "SEAL_RECORD_BYTES",
    "SEGMENT_HEADER_BYTES",
    "WAL_VERSION",
    "Compaction",
    "HardState",
    "LogRuleError",
    "LogState",
    "Record",
    "RecordError",
    "RecordType",
    "Seal",
    "SnapshotMark",
    "WalCorrupt",
    "WalEntry",
    "WalError",
    "decode_record",
    "decode_segment_header",
    "encode_compaction",
    "encode_entry",
    "encode_hard_state",
    "encode_seal",
    "encode_segment_header",
    "encode_truncate",
    "find_valid_record",
]


WAL_VERSION = 1
SEGMENT_MAGIC = b"CWAL"
_SEGMENT_HEADER = struct.Struct("<4sHHQI")
_SEGMENT_CRC = struct.Struct("<I")
SEGMENT_HEADER_BYTES = _SEGMENT_HEADER.size + _SEGMENT_CRC.size  # 24

RECORD_MAGIC = b"CWRC"
_RECORD_HEADER = struct.Struct("<4sBBHI")
_RECORD_CRC = struct.Struct("<I")
RECORD_HEADER_BYTES = _RECORD_HEADER.size + _RECORD_CRC.size  # 16
RECORD_PAYLOAD_BYTES_MAX = 64 * 1024 * 1024

_U64 = struct.Struct("<Q")
_U64_PAIR = struct.Struct("<QQ")
_ENTRY_HEAD = struct.Struct("<QQB")
_COMPACTION = struct.Struct("<QQB")
_HARD_STATE = struct.Struct("<QQQ")


class RecordType(enum.IntEnum):
    ENTRY = 1
    HARD_STATE = 2
    TRUNCATE = 3
    SNAPSHOT = 4
    SEAL = 5


_TYPE_BYTES = b"".join(bytes([t]) for t in RecordType)
# A record header starts with the magic and a known type: the pattern finds candidates for
# a valid record anywhere in a buffer at C speed, so a corruption scan is cheap.
_CANDIDATE = re.compile(re.escape(RECORD_MAGIC) + b"[" + re.escape(_TYPE_BYTES) + b"]")


class WalError(CairnError):
    """The write-ahead log cannot be used (locked by another process, or a write failed)."""


class WalCorrupt(WalError):
    """A WAL file holds bytes that are not a valid log; names the file and the offset."""

    def __init__(self, path: str, offset: int, reason: str) -> None:
        super().__init__(f"{path} at offset {offset}: {reason}")
        self.path = path
        self.offset = offset
        self.reason = reason


class RecordError(Exception):
    """A header or record does not decode; `reason` says which check failed.

    Callers turn it into a torn tail (truncate) or a `WalCorrupt` (refuse).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class WalEntry:
    """One Raft log entry, opaque to the WAL. `kind` (0..255) is stored for the caller (the
    Raft entry type), so the payload is written as is, never copied to prefix a tag."""

    index: int
    term: int
    data: bytes
    kind: int = 0


@dataclass(frozen=True, slots=True)
class HardState:
    """What Raft must remember across a restart: current term, vote in it, commit index.

    `vote` is a node id; 0 means no vote (as `cairn.raft.types.NONE`)."""

    term: int = 0
    vote: int = 0
    commit: int = 0


@dataclass(frozen=True, slots=True)
class SnapshotMark:
    """The log is compacted up to here: entries at or below `index` live in a snapshot."""

    index: int
    term: int


# ---------------------------------------------------------------------------------------
# Segment header


def encode_segment_header(segment_number: int) -> bytes:
    head = _SEGMENT_HEADER.pack(SEGMENT_MAGIC, WAL_VERSION, 0, segment_number, 0)
    return head + _SEGMENT_CRC.pack(crc32c(head))


def decode_segment_header(buf: Buffer) -> int:
    """Check a segment header; return its segment number. Raises `RecordError`."""
    if len(buf) < SEGMENT_HEADER_BYTES:
        raise RecordError("segment header truncated")
    magic, version, reserved, number, reserved2 = _SEGMENT_HEADER.unpack_from(buf, 0)
    (crc,) = _SEGMENT_CRC.unpack_from(buf, _SEGMENT_HEADER.size)
    if magic != SEGMENT_MAGIC:
        raise RecordError("bad segment magic")
    if crc != crc32c(memoryview(buf)[: _SEGMENT_HEADER.size]):
        raise RecordError("segment header checksum mismatch")
    if version != WAL_VERSION:
        raise RecordError(f"unsupported WAL version {version}")
    if reserved or reserved2:
        raise RecordError("segment header reserved fields not zero")
    return int(number)


# ---------------------------------------------------------------------------------------
# Records


def _frame(rtype: RecordType, payload: bytes) -> bytes:
    if len(payload) > RECORD_PAYLOAD_BYTES_MAX:
        raise ValueError(
            f"record payload {len(payload)} bytes > RECORD_PAYLOAD_BYTES_MAX "
            f"({RECORD_PAYLOAD_BYTES_MAX})"
        )
    head = _RECORD_HEADER.pack(RECORD_MAGIC, rtype, 0, 0, len(payload))
    crc = crc32c_extend(crc32c(head), payload)
    return head + _RECORD_CRC.pack(crc) + payload


def encode_entry(entry: WalEntry) -> bytes:
    head = _ENTRY_HEAD.pack(entry.index, entry.term, entry.kind)
    return _frame(RecordType.ENTRY, head + entry.data)


def encode_hard_state(hs: HardState) -> bytes:
    return _frame(RecordType.HARD_STATE, _HARD_STATE.pack(hs.term, hs.vote, hs.commit))


def encode_truncate(last_kept_index: int) -> bytes:
    return _frame(RecordType.TRUNCATE, _U64.pack(last_kept_index))


@dataclass(frozen=True, slots=True)
class Compaction:
    """The SNAPSHOT record: the new floor, and whether the log above it was kept.

    `keep_log` is decided when the record is written (the log held the snapshot's last
    entry with its term), because after older segments are deleted replay can no longer
    see that entry to decide again.
    """

    index: int
    term: int
    keep_log: bool

    @property
    def mark(self) -> SnapshotMark:
        return SnapshotMark(self.index, self.term)


def encode_compaction(compaction: Compaction) -> bytes:
    c = compaction
    return _frame(RecordType.SNAPSHOT, _COMPACTION.pack(c.index, c.term, c.keep_log))


@dataclass(frozen=True, slots=True)
class Seal:
    """The SEAL record: this segment is complete; `next_segment` follows it."""

    next_segment: int


def encode_seal(seal: Seal) -> bytes:
    return _frame(RecordType.SEAL, _U64.pack(seal.next_segment))


SEAL_RECORD_BYTES = RECORD_HEADER_BYTES + _U64.size

Record = WalEntry | HardState | Compaction | Seal | int
"""A decoded record: an entry, a hard state, a compaction, a seal, or (int) a truncation."""


def decode_record(buf: Buffer, offset: int) -> tuple[Record, int]:
    """Decode the record at `offset`; return it and the offset just past it.

    Raises `RecordError` if the bytes there are not one whole valid record (too short,
    bad magic/type/reserved/length, or checksum mismatch).
    """
    view = memoryview(buf)
    end_of_header = offset + RECORD_HEADER_BYTES
    if end_of_header > len(view):
        raise RecordError("record header truncated")
    magic, rtype, flags, reserved, length = _RECORD_HEADER.unpack_from(view, offset)
    if magic != RECORD_MAGIC:
        raise RecordError("bad record magic")
    if rtype not in _TYPE_BYTES or flags or reserved:
        raise RecordError("bad record type or reserved field")
    if length > RECORD_PAYLOAD_BYTES_MAX:
        raise RecordError(f"record length {length} > RECORD_PAYLOAD_BYTES_MAX")
    end = end_of_header + length
    if end > len(view):
        raise RecordError("record payload truncated")
    (crc,) = _RECORD_CRC.unpack_from(view, offset + _RECORD_HEADER.size)
    payload = view[end_of_header:end]
    if crc != crc32c_extend(crc32c(view[offset : offset + _RECORD_HEADER.size]), payload):
        raise RecordError("record checksum mismatch")
    return _decode_payload(rtype, payload), end


def _decode_payload(rtype: int, payload: memoryview) -> Record:
    try:
        if rtype == RecordType.ENTRY:
            index, term, kind = _ENTRY_HEAD.unpack_from(payload, 0)
            return WalEntry(index, term, bytes(payload[_ENTRY_HEAD.size :]), kind)
        if rtype == RecordType.HARD_STATE:
            if len(payload) != _HARD_STATE.size:
                raise RecordError("hard state record has the wrong length")
            term, vote, commit = _HARD_STATE.unpack_from(payload, 0)
            return HardState(term, vote, commit)
        if rtype in (RecordType.TRUNCATE, RecordType.SEAL):
            if len(payload) != _U64.size:
                raise RecordError(f"{RecordType(rtype).name} record has the wrong length")
            value = int(_U64.unpack_from(payload, 0)[0])
            return value if rtype == RecordType.TRUNCATE else Seal(value)
        if len(payload) != _COMPACTION.size:
            raise RecordError("snapshot record has the wrong length")
        index, term, keep_log = _COMPACTION.unpack_from(payload, 0)
        if keep_log not in (0, 1):
            raise RecordError("snapshot record keep_log is not 0 or 1")
        return Compaction(index, term, bool(keep_log))
    except struct.error as exc:
        raise RecordError(f"{RecordType(rtype).name} payload malformed: {exc}") from exc


def find_valid_record(buf: Buffer, start: int) -> int | None:
    """Offset of the first whole valid record at or after `start`, or None.

    Used after a bad record to tell a torn tail (nothing valid follows) from corruption in
    the middle of the log (a valid record follows, so the bad one was once whole).
    """
    data = bytes(buf) if not isinstance(buf, bytes) else buf
    for match in _CANDIDATE.finditer(data, start):
        try:
            decode_record(data, match.start())
        except RecordError:
            continue
        return match.start()
    return None


# ---------------------------------------------------------------------------------------
# Replay rules


class LogRuleError(Exception):
    """A record that the writer could never have produced at this point of the log."""


@dataclass
class LogState:
    """The state a sequence of records replays to.

    `keep_data=False` keeps only the terms (the live writer needs them for its checks, not
    the payloads the Raft core already holds).
    """

    keep_data: bool = True
    hard_state: HardState = field(default_factory=HardState)
    compaction: Compaction | None = None
    first_index: int = 1
    terms: list[int] = field(default_factory=list)
    kept: list[WalEntry] = field(default_factory=list)  # parallel to terms if keep_data

    @property
    def mark(self) -> SnapshotMark | None:
        return None if self.compaction is None else self.compaction.mark

    @property
    def floor_index(self) -> int:
        return 0 if self.mark is None else self.mark.index

    @property
    def floor_term(self) -> int:
        return 0 if self.mark is None else self.mark.term

    @property
    def last_index(self) -> int:
        """Index of the last entry; the floor when the log above it is empty."""
        if self.terms:
            return self.first_index + len(self.terms) - 1
        return self.floor_index

    def term_at(self, index: int) -> int | None:
        """Term of the entry at `index`, the floor term at the floor, else None."""
        if self.terms and self.first_index <= index <= self.last_index:
            return self.terms[index - self.first_index]
        if index == self.floor_index:
            return self.floor_term
        return None

    def entries(self) -> list[WalEntry]:
        assert self.keep_data, "entries() needs a LogState that keeps data"
        assert len(self.kept) == len(self.terms)
        return list(self.kept)

    def apply(self, record: Record) -> None:
        """Apply one record; raise `LogRuleError` if the writer could not have written it."""
        if isinstance(record, WalEntry):
            self._apply_entry(record)
        elif isinstance(record, HardState):
            self._apply_hard_state(record)
        elif isinstance(record, Compaction):
            self._apply_compaction(record)
        elif isinstance(record, Seal):
            pass  # a property of segments, checked by the reader of segment files
        else:
            self._apply_truncate(record)

    def _apply_entry(self, entry: WalEntry) -> None:
        if self.terms:
            if entry.index != self.last_index + 1:
                raise LogRuleError(f"entry {entry.index} does not follow {self.last_index}")
            previous_term = self.terms[-1]
        else:
            # The first entry after an empty log may start above the floor: the segments
            # that held the entries between them were compacted away. `check_complete`
            # refuses a log whose entries do not reach down to the floor.
            if entry.index <= self.floor_index:
                raise LogRuleError(f"entry {entry.index} at or below floor {self.floor_index}")
            self.first_index = entry.index
            previous_term = self.floor_term
        if entry.term < previous_term:
            raise LogRuleError(f"entry {entry.index} term {entry.term} < {previous_term}")
        self.terms.append(entry.term)
        if self.keep_data:
            self.kept.append(entry)

    def _apply_hard_state(self, hs: HardState) -> None:
        old = self.hard_state
        if hs.term < old.term:
            raise LogRuleError(f"hard state term went back from {old.term} to {hs.term}")
        if hs.term == old.term and old.vote not in (0, hs.vote):
            raise LogRuleError(f"vote changed within term {hs.term}: {old.vote} -> {hs.vote}")
        self.hard_state = hs

    def _apply_truncate(self, last_kept: int) -> None:
        if last_kept < self.floor_index:
            raise LogRuleError(f"truncate to {last_kept} below floor {self.floor_index}")
        self._drop_above(last_kept)

    def _drop_above(self, last_kept: int) -> None:
        keep = max(0, last_kept - self.first_index + 1)
        del self.terms[keep:]
        if self.keep_data:
            del self.kept[keep:]

    def compaction_for(self, index: int, term: int) -> Compaction:
        """The record that compacts this log to (`index`, `term`) (Raft §7: keep the
        entries after it if the log holds that entry with that term, else drop them all)."""
        return Compaction(index, term, keep_log=self.term_at(index) == term)

    def _apply_compaction(self, c: Compaction) -> None:
        if c.mark == self.mark:
            return  # a new segment repeats the current mark in its preamble
        if c.index <= self.floor_index:
            raise LogRuleError(f"snapshot mark {c.index} not above floor {self.floor_index}")
        if c.keep_log:
            known = self.term_at(c.index)
            if self.terms and c.index >= self.first_index and known != c.term:
                raise LogRuleError(f"snapshot mark {c.index} keeps a log it does not match")
            drop = min(max(0, c.index - self.first_index + 1), len(self.terms))
            del self.terms[:drop]
            if self.keep_data:
                del self.kept[:drop]
            self.first_index += drop
            if not self.terms:
                self.first_index = c.index + 1
        else:
            self.terms.clear()
            self.kept.clear()
            self.first_index = c.index + 1
        self.compaction = c

    def check_complete(self) -> str | None:
        """After the last record: None, or why the log has a hole below its first entry."""
        if self.terms and self.first_index != self.floor_index + 1:
            return (
                f"entries start at {self.first_index} but the floor is {self.floor_index}: "
                "a segment is missing"
            )
        return None
