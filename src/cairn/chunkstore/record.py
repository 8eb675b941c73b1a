"""On-disk formats of a segment file: pure encoding and decoding, no IO.

Theory of operation
-------------------
A segment is an append-only file. It opens with a fixed segment header and then holds
records back to back, with no padding and no index of its own::

    segment header (20 bytes, little endian)
        magic  b"CSEG"      4
        version u16         2   (SEGMENT_VERSION)
        reserved u16        2   (zero)
        segment number u64  8   (equals the number in the file name)
        crc32c u32          4   (over the 16 bytes before it)

    record header (48 bytes, little endian), then `length` payload bytes
        magic  b"CREC"      4
        kind u8             1   (KIND_PUT or KIND_TOMBSTONE)
        flags u8            1   (zero)
        reserved u16        2   (zero)
        chunk id           32
        length u32          4   (payload bytes; zero for a tombstone)
        crc32c u32          4   (over header bytes 0..44, then the payload)

The checksum covers the header as well as the payload, so a flipped bit in the id, kind
or length is caught exactly like one in the data. Decoding checks, in order: the magic,
the kind, the reserved fields, the length limit, and (once the payload is read) the
checksum. Any failure is a `RecordError` saying which; callers decide whether that is a
torn tail (truncate) or corruption in the middle (quarantine).

The writer computes the checksum once over the header and the payload it is about to
write; every reader recomputes it over what it read (paired assertions).
"""

import struct
from dataclasses import dataclass

from cairn.base.checksum import Buffer, crc32c, crc32c_extend

CHUNK_ID_BYTES = 32
CHUNK_BYTES_MAX = 8 * 1024 * 1024

SEGMENT_MAGIC = b"CSEG"
SEGMENT_VERSION = 1
_SEGMENT_HEADER = struct.Struct("<4sHHQI")
SEGMENT_HEADER_BYTES = _SEGMENT_HEADER.size  # 20

RECORD_MAGIC = b"CREC"
KIND_PUT = 1
KIND_TOMBSTONE = 2
_KINDS = (KIND_PUT, KIND_TOMBSTONE)
_RECORD_HEADER = struct.Struct("<4sBBH32sII")
RECORD_HEADER_BYTES = _RECORD_HEADER.size  # 48
_RECORD_CRC_OFFSET = RECORD_HEADER_BYTES - 4


class RecordError(Exception):
    """A header or record does not decode; `reason` says which check failed.

    Internal to the chunkstore: the store turns it into a typed `CairnError`.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class RecordHeader:
    """A decoded record header; `crc` is the stored checksum, not yet verified."""

    kind: int
    chunk_id: bytes
    length: int
    crc: int

    @property
    def record_bytes(self) -> int:
        return RECORD_HEADER_BYTES + self.length


def encode_segment_header(segment_number: int) -> bytes:
    body = _SEGMENT_HEADER.pack(SEGMENT_MAGIC, SEGMENT_VERSION, 0, segment_number, 0)[:-4]
    return body + struct.pack("<I", crc32c(body))


def decode_segment_header(buf: Buffer) -> int:
    """Return the segment number, or raise `RecordError`."""
    if len(buf) < SEGMENT_HEADER_BYTES:
        raise RecordError("segment header truncated")
    magic, version, reserved, number, crc = _SEGMENT_HEADER.unpack_from(buf, 0)
    if magic != SEGMENT_MAGIC:
        raise RecordError("bad segment magic")
    if crc32c(memoryview(buf)[: SEGMENT_HEADER_BYTES - 4]) != crc:
        raise RecordError("segment header checksum mismatch")
    if version != SEGMENT_VERSION or reserved != 0:
        raise RecordError(f"unsupported segment version {version}")
    return int(number)


def encode_record_header(kind: int, chunk_id: bytes, payload: Buffer) -> bytes:
    """The 48-byte header for `payload`, its checksum covering header and payload."""
    assert kind in _KINDS, kind
    assert len(chunk_id) == CHUNK_ID_BYTES, len(chunk_id)
    assert len(payload) <= CHUNK_BYTES_MAX, len(payload)
    assert kind == KIND_PUT or len(payload) == 0
    head = _RECORD_HEADER.pack(RECORD_MAGIC, kind, 0, 0, chunk_id, len(payload), 0)
    crc = record_checksum(head, payload)
    return head[:_RECORD_CRC_OFFSET] + struct.pack("<I", crc)


def decode_record_header(buf: Buffer) -> RecordHeader:
    """Decode a header (checksum not yet verified: that needs the payload)."""
    if len(buf) < RECORD_HEADER_BYTES:
        raise RecordError("record header truncated")
    magic, kind, flags, reserved, chunk_id, length, crc = _RECORD_HEADER.unpack_from(buf, 0)
    if magic != RECORD_MAGIC:
        raise RecordError("bad record magic")
    if kind not in _KINDS or flags != 0 or reserved != 0:
        raise RecordError(f"bad record kind/flags {kind}/{flags}/{reserved}")
    if length > CHUNK_BYTES_MAX or (kind == KIND_TOMBSTONE and length != 0):
        raise RecordError(f"bad record length {length}")
    return RecordHeader(kind=kind, chunk_id=bytes(chunk_id), length=length, crc=crc)


def record_checksum(header_buf: Buffer, payload: Buffer) -> int:
    """Recompute the checksum of a record from its header bytes and payload."""
    return crc32c_extend(crc32c(memoryview(header_buf)[:_RECORD_CRC_OFFSET]), payload)


def verify_record(header: RecordHeader, header_buf: Buffer, payload: Buffer) -> None:
    """Raise `RecordError` unless the payload and header match the stored checksum."""
    if len(payload) != header.length:
        raise RecordError("record payload truncated")
    if record_checksum(header_buf, payload) != header.crc:
        raise RecordError("record checksum mismatch")


def decode_record(buf: Buffer) -> tuple[RecordHeader, memoryview]:
    """Decode and verify a whole record (header + payload) held in `buf`."""
    view = memoryview(buf)
    header = decode_record_header(view)
    payload = view[RECORD_HEADER_BYTES : RECORD_HEADER_BYTES + header.length]
    verify_record(header, view[:RECORD_HEADER_BYTES], payload)
    return header, payload
