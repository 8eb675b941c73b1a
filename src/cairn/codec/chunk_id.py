"""Chunk ids: 32 bytes, a keyed BLAKE2b-256 of the chunk's plaintext.

The key is derived from the cluster key (see `keys`), so an id reveals nothing about the
content to anyone without that key (an unkeyed hash would let an observer confirm that a
known file is stored). The same plaintext always gets the same id inside one cluster, which
is what deduplication needs. `ChunkId` is a validated wrapper: building one from a buffer
of the wrong length, or from bad hex, raises `InvalidChunkId` with the reason.
"""

from dataclasses import dataclass

from cairn.codec.errors import InvalidChunkId

CHUNK_ID_SIZE_BYTES = 32


@dataclass(frozen=True, slots=True, order=True)
class ChunkId:
    """A chunk's identity: exactly `CHUNK_ID_SIZE_BYTES` bytes."""

    digest: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.digest, bytes):
            raise InvalidChunkId(f"chunk id must be bytes, got {type(self.digest).__name__}")
        if len(self.digest) != CHUNK_ID_SIZE_BYTES:
            raise InvalidChunkId(
                f"chunk id must be {CHUNK_ID_SIZE_BYTES} bytes, got {len(self.digest)}"
            )

    @classmethod
    def from_hex(cls, text: str) -> "ChunkId":
        """Parse the 64-character lowercase or uppercase hex form."""
        if len(text) != 2 * CHUNK_ID_SIZE_BYTES:
            raise InvalidChunkId(
                f"chunk id hex must be {2 * CHUNK_ID_SIZE_BYTES} characters, got {len(text)}"
            )
        try:
            return cls(bytes.fromhex(text))
        except ValueError as exc:
            raise InvalidChunkId(f"chunk id is not valid hex: {text!r}") from exc

    def hex(self) -> str:
        return self.digest.hex()

    def __bytes__(self) -> bytes:
        return self.digest

    def __str__(self) -> str:
        return self.hex()

    def __repr__(self) -> str:
        return f"ChunkId({self.hex()[:16]}...)"
