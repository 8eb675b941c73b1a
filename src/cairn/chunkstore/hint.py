"""The hint file: a checkpoint of the index, so start-up need not re-read every segment.

Theory of operation
-------------------
A hint records the index as it was when every record before position
(`segment`, `offset`) had been applied (and fsynced). Start-up loads it and then scans
only the records after that position. The file is written to `hint.tmp`, fsynced, renamed
over `hint` and the directory fsynced, so a crash leaves either the old or the new hint.
A hint that fails to decode, or that disagrees with the segment files (a segment it
names is missing, or shorter than the position it claims), is ignored and the index is
rebuilt from all segments: the hint is only ever a shortcut.

Format (little endian), pure encode/decode here::

    magic b"CHNT" | version u16 | reserved u16 | segment u64 | offset u64
    | logical_bytes u64 | entry count u64 | dead count u64
    entries: chunk id (32) | segment u32 | offset u64 | length u32      (48 bytes each)
    dead puts: chunk id (32) | segment u32                             (36 bytes each)
    crc32c u32 over everything before it
"""

import struct
from dataclasses import dataclass

from cairn.base.checksum import crc32c
from cairn.chunkstore.index import Index, Location

HINT_FILE = "hint"
HINT_MAGIC = b"CHNT"
HINT_VERSION = 1
_HEAD = struct.Struct("<4sHHQQQQQ")
_ENTRY = struct.Struct("<32sIQI")
_DEAD = struct.Struct("<32sI")
_CRC = struct.Struct("<I")


class HintError(Exception):
    """The hint does not decode; the store rebuilds the index from the segments."""


@dataclass(frozen=True, slots=True)
class Hint:
    segment: int
    offset: int
    logical_bytes: int
    index: Index


def encode_hint(hint: Hint) -> bytes:
    index = hint.index
    dead = [(cid, seg) for cid, segs in index.dead_puts.items() for seg in sorted(segs)]
    parts = [
        _HEAD.pack(
            HINT_MAGIC,
            HINT_VERSION,
            0,
            hint.segment,
            hint.offset,
            hint.logical_bytes,
            len(index.entries),
            len(dead),
        )
    ]
    parts.extend(_ENTRY.pack(cid, *loc) for cid, loc in index.entries.items())
    parts.extend(_DEAD.pack(cid, seg) for cid, seg in dead)
    body = b"".join(parts)
    return body + _CRC.pack(crc32c(body))


def decode_hint(buf: bytes) -> Hint:
    if len(buf) < _HEAD.size + _CRC.size:
        raise HintError("hint truncated")
    body = memoryview(buf)[: -_CRC.size]
    (crc,) = _CRC.unpack_from(buf, len(buf) - _CRC.size)
    if crc32c(body) != crc:
        raise HintError("hint checksum mismatch")
    magic, version, _, segment, offset, logical, n_entries, n_dead = _HEAD.unpack_from(body)
    if magic != HINT_MAGIC or version != HINT_VERSION:
        raise HintError(f"bad hint magic/version {magic!r}/{version}")
    expected = _HEAD.size + n_entries * _ENTRY.size + n_dead * _DEAD.size
    if expected != len(body):
        raise HintError("hint length does not match its counts")
    index = Index()
    entries_end = _HEAD.size + n_entries * _ENTRY.size
    for cid, seg, off, length in _ENTRY.iter_unpack(body[_HEAD.size : entries_end]):
        index.apply_put(cid, Location(seg, off, length))
    for cid, seg in _DEAD.iter_unpack(body[entries_end:]):
        index.dead_puts.setdefault(cid, set()).add(seg)
    return Hint(segment=segment, offset=offset, logical_bytes=logical, index=index)
