"""One node's chunk storage engine: segments, index, fsync policy, compaction, scrubbing.

`ChunkStore` is the thread-safe synchronous engine (tools, tests, the thread pool);
`AsyncChunkStore` wraps it for asyncio. `Compactor` and `Scrubber` are its background
workers. See docs/design/chunkstore.md for the formats and the reasoning.
"""

from cairn.chunkstore.aio import AsyncChunkStore
from cairn.chunkstore.compaction import CompactionResult, Compactor
from cairn.chunkstore.errors import (
    ChunkCorrupt,
    ChunkNotFound,
    ChunkStoreError,
    ChunkTooLarge,
    InvalidChunkId,
    StoreClosed,
    StoreFailed,
    StoreFull,
    StoreLocked,
)
from cairn.chunkstore.index import Location
from cairn.chunkstore.partition import partition_of
from cairn.chunkstore.record import CHUNK_BYTES_MAX, CHUNK_ID_BYTES
from cairn.chunkstore.recovery import Damage, RecoveryReport
from cairn.chunkstore.scrub import Scrubber, ScrubResult
from cairn.chunkstore.store import (
    FSYNC_POLICIES,
    ChunkStore,
    FsyncPolicy,
    SegmentStats,
    StoreOptions,
    StoreUsage,
)

__all__ = [
    "CHUNK_BYTES_MAX",
    "CHUNK_ID_BYTES",
    "FSYNC_POLICIES",
    "AsyncChunkStore",
    "ChunkCorrupt",
    "ChunkNotFound",
    "ChunkStore",
    "ChunkStoreError",
    "ChunkTooLarge",
    "CompactionResult",
    "Compactor",
    "Damage",
    "FsyncPolicy",
    "InvalidChunkId",
    "Location",
    "RecoveryReport",
    "ScrubResult",
    "Scrubber",
    "SegmentStats",
    "StoreClosed",
    "StoreFailed",
    "StoreFull",
    "StoreLocked",
    "StoreOptions",
    "StoreUsage",
    "partition_of",
]
