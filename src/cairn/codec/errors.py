"""Errors raised by the codec.

A chunk that fails any check on decoding (framing, CRC32C, the GCM tag, decompression, or
the keyed hash of the decoded plaintext) raises `ChunkCorrupt`: the caller fetches another
replica or reports the chunk to the scrubber. It is never silently returned.
"""

from cairn.base.errors import CairnError


class CodecError(CairnError):
    """Root of the codec's errors."""


class InvalidChunkId(CodecError, ValueError):
    """A chunk id has the wrong length or is not valid hex."""


class ChunkCorrupt(CodecError):
    """An encoded chunk failed verification; `reason` says which check failed.

    A wrong cluster key shows up here too (as an authentication or id mismatch): the codec
    cannot tell a tampered record from a key that never wrote it.
    """

    def __init__(self, chunk_id_hex: str, reason: str) -> None:
        super().__init__(f"chunk {chunk_id_hex}: {reason}")
        self.chunk_id_hex = chunk_id_hex
        self.reason = reason
