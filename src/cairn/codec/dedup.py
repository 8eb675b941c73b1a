"""Dedup accounting: logical bytes written versus unique bytes kept.

`DedupStats.add` is called once per chunk reference (every chunk of every object); the
first reference to an id counts as unique, later ones as duplicates. With `claim` as the
pipeline's skip predicate each id is encoded once. The ratios logical / unique (dedup) and
logical / stored (dedup and compression) are what `cairn bench dedup` reports. The set of
seen ids grows with the number of unique chunks (32 bytes each plus set overhead).
Thread-safe: `claim` may be called from pipeline workers as the `skip` predicate.
"""

import threading
from dataclasses import dataclass, field

from cairn.codec.chunk_id import ChunkId


@dataclass
class DedupStats:
    logical_bytes: int = 0
    """Plaintext bytes referenced, duplicates included."""
    unique_bytes: int = 0
    """Plaintext bytes of distinct chunks."""
    stored_bytes: int = 0
    """Encoded (compressed, encrypted, framed) bytes of distinct chunks."""
    chunk_refs: int = 0
    unique_chunks: int = 0
    _seen: set[ChunkId] = field(default_factory=set, repr=False)
    _stored: set[ChunkId] = field(default_factory=set, repr=False)
    _claimed: set[ChunkId] = field(default_factory=set, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def claim(self, chunk_id: ChunkId) -> bool:
        """True if the chunk was claimed before (so it need not be encoded again): a `skip`
        predicate for `WritePipeline`. The first caller for an id gets False and encodes."""
        with self._lock:
            if chunk_id in self._claimed:
                return True
            self._claimed.add(chunk_id)
            return False

    def add(self, chunk_id: ChunkId, plaintext_bytes: int, record_bytes: int | None) -> None:
        """Count one reference; `record_bytes` is its encoded size, None if not encoded.

        With `claim` as the pipeline's skip predicate, workers race to claim an id, so the
        one reference that carries a record need not be the first in input order: unique
        bytes are counted at the first reference, stored bytes at the first record."""
        with self._lock:
            self.logical_bytes += plaintext_bytes
            self.chunk_refs += 1
            if chunk_id not in self._seen:
                self._seen.add(chunk_id)
                self.unique_chunks += 1
                self.unique_bytes += plaintext_bytes
            if record_bytes is not None and chunk_id not in self._stored:
                self._stored.add(chunk_id)
                self.stored_bytes += record_bytes

    @property
    def dedup_ratio(self) -> float:
        """Logical / unique plaintext bytes (1.0 = nothing shared)."""
        return self.logical_bytes / self.unique_bytes if self.unique_bytes else 1.0

    @property
    def reduction_ratio(self) -> float:
        """Logical / stored bytes: dedup and compression together."""
        return self.logical_bytes / self.stored_bytes if self.stored_bytes else 1.0
