"""The framed record an encoded chunk is stored and sent as (format version 1).

    offset  size  field
    0       4     magic b"CRNC" (Cairn chunk)
    4       1     version (1)
    5       1     flags: bit 0 compressed (zstd), bit 1 encrypted (AES-256-GCM); others 0
    6       2     reserved, 0
    8       4     plaintext length in bytes
    12      4     payload length in bytes
    16      12    GCM nonce (all zero when not encrypted)
    28      n     payload: the plaintext, compressed if flagged, then encrypted if flagged
                  (an encrypted payload ends with the 16-byte GCM tag)
    28+n    4     CRC32C of bytes [0, 28+n)

All integers are big-endian. The CRC32C covers the stored form, so a scrubber or a replica
can check a record without any key. This module only packs and parses; it checks the shape
of a record (magic, version, lengths, flags, CRC) and raises `ChunkCorrupt` naming the
field at fault. A future version gets a new number and an explicit upgrade step.
"""

import struct
from dataclasses import dataclass

from cairn.base.checksum import Buffer, crc32c, crc32c_extend
from cairn.codec.errors import ChunkCorrupt

MAGIC = b"CRNC"
VERSION = 1
FLAG_COMPRESSED = 0x01
FLAG_ENCRYPTED = 0x02
FLAGS_KNOWN = FLAG_COMPRESSED | FLAG_ENCRYPTED
NONCE_SIZE_BYTES = 12
GCM_TAG_SIZE_BYTES = 16
PLAINTEXT_SIZE_BYTES_MAX = 16 * 1024 * 1024
"""The largest chunk a record may hold (the chunker's own upper bound)."""

_HEADER = struct.Struct(">4sBBHII12s")
_TRAILER = struct.Struct(">I")
HEADER_SIZE_BYTES = _HEADER.size
TRAILER_SIZE_BYTES = _TRAILER.size
AAD_SIZE_BYTES = 16
"""The header bytes before the nonce; GCM authenticates them as associated data."""


@dataclass(frozen=True, slots=True)
class RecordHeader:
    flags: int
    plaintext_length_bytes: int
    payload_length_bytes: int
    nonce: bytes

    @property
    def compressed(self) -> bool:
        return bool(self.flags & FLAG_COMPRESSED)

    @property
    def encrypted(self) -> bool:
        return bool(self.flags & FLAG_ENCRYPTED)

    def pack(self) -> bytes:
        return _HEADER.pack(
            MAGIC,
            VERSION,
            self.flags,
            0,
            self.plaintext_length_bytes,
            self.payload_length_bytes,
            self.nonce,
        )


def pack_record(header: RecordHeader, payload: Buffer) -> bytes:
    """Header, payload and CRC32C trailer as one `bytes` (one copy of the payload)."""
    assert header.payload_length_bytes == len(payload), "payload length disagrees with header"
    assert header.flags & ~FLAGS_KNOWN == 0, f"unknown flags {header.flags:#x}"
    head = header.pack()
    crc = crc32c_extend(crc32c(head), payload)
    return b"".join((head, payload, _TRAILER.pack(crc)))


def parse_record(record: Buffer, chunk_id_hex: str) -> tuple[RecordHeader, memoryview]:
    """Check the record's shape and CRC; return its header and a view of its payload."""
    view = memoryview(record).cast("B")

    def corrupt(reason: str) -> ChunkCorrupt:
        return ChunkCorrupt(chunk_id_hex, reason)

    if len(view) < HEADER_SIZE_BYTES + TRAILER_SIZE_BYTES:
        raise corrupt(f"record truncated: {len(view)} bytes")
    magic, version, flags, reserved, plain_len, payload_len, nonce = _HEADER.unpack_from(view)
    if magic != MAGIC:
        raise corrupt(f"bad magic {bytes(magic)!r}")
    if len(view) != HEADER_SIZE_BYTES + payload_len + TRAILER_SIZE_BYTES:
        raise corrupt(f"record is {len(view)} bytes but its header says payload {payload_len}")
    (stored_crc,) = _TRAILER.unpack_from(view, len(view) - TRAILER_SIZE_BYTES)
    actual_crc = crc32c(view[: len(view) - TRAILER_SIZE_BYTES])
    if stored_crc != actual_crc:
        raise corrupt(f"CRC32C mismatch: stored {stored_crc:#010x}, computed {actual_crc:#010x}")
    if version != VERSION:
        raise corrupt(f"unsupported record version {version}")
    if flags & ~FLAGS_KNOWN or reserved:
        raise corrupt(f"unknown flags {flags:#04x} or reserved {reserved:#06x}")
    if plain_len > PLAINTEXT_SIZE_BYTES_MAX:
        raise corrupt(f"plaintext length {plain_len} above {PLAINTEXT_SIZE_BYTES_MAX}")
    header = RecordHeader(flags, plain_len, payload_len, bytes(nonce))
    overhead = GCM_TAG_SIZE_BYTES if header.encrypted else 0
    if header.compressed:
        if payload_len > plain_len + overhead:
            raise corrupt(f"compressed payload {payload_len} not smaller than {plain_len}")
    elif payload_len != plain_len + overhead:
        raise corrupt(f"payload {payload_len} bytes for plaintext {plain_len}")
    if not header.encrypted and any(header.nonce):
        raise corrupt("nonce set on an unencrypted record")
    payload = view[HEADER_SIZE_BYTES : HEADER_SIZE_BYTES + payload_len]
    return header, payload


def associated_data(header: RecordHeader, chunk_id: bytes) -> bytes:
    """What GCM authenticates besides the payload: the header fields and the chunk id."""
    return header.pack()[:AAD_SIZE_BYTES] + chunk_id
