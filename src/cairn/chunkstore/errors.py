"""Typed errors of the chunkstore, all under `cairn.base.errors.CairnError`.

Callers handle these: a wrong input (`InvalidChunkId`, `ChunkTooLarge`), a missing chunk
(`ChunkNotFound`), a corrupt one (`ChunkCorrupt`: never served; fetch it from a replica and
put it again), a full disk (`StoreFull`: the store stays consistent and readable, and
writes work again once space is freed), a store that must not be written any more
(`StoreFailed`, after an fsync error) or that is closed (`StoreClosed`).
"""

from cairn.base.errors import CairnError


class ChunkStoreError(CairnError):
    """Root of the chunkstore's errors."""


class InvalidChunkId(ChunkStoreError, ValueError):
    """A chunk id is not exactly 32 bytes."""


class ChunkTooLarge(ChunkStoreError, ValueError):
    """A chunk is larger than the 8 MiB limit."""


class ChunkNotFound(ChunkStoreError, KeyError):
    """No live chunk has this id."""


class ChunkCorrupt(ChunkStoreError):
    """The stored record failed its checksum; the chunk is quarantined, never served."""

    def __init__(self, chunk_id: bytes, reason: str) -> None:
        super().__init__(f"chunk {chunk_id.hex()} is corrupt: {reason}")
        self.chunk_id = chunk_id
        self.reason = reason


class StoreFull(ChunkStoreError):
    """The disk is full (ENOSPC). Nothing was written; reads still work."""


class StoreFailed(ChunkStoreError):
    """An fsync failed: what reached the disk is unknown, so the store refuses writes
    until it is reopened (which re-verifies the tail)."""


class StoreClosed(ChunkStoreError):
    """The store was closed."""


class StoreLocked(ChunkStoreError):
    """Another process has the store's directory open."""
