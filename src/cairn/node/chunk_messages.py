"""The chunk RPCs a node serves over its chunkstore, and their limits.

Every request is a tagged msgspec Struct (the wire `Router` dispatches on the tag). Chunk
records travel as the frame *payload*, never inside the msgpack body: the body is small
and decoded, the payload is raw bytes written to the disk as they arrived. The GC live
set is a payload too (concatenated 32-byte ids), because tens of thousands of ids would
not fit the 1 MiB body limit.

Error codes (`RemoteError.code`) the chunk service answers with:

| code            | meaning                                                         |
|-----------------|-----------------------------------------------------------------|
| `bad_request`   | malformed input: id not 32 bytes, bad partition count, ...      |
| `too_large`     | record over `CHUNK_BYTES_MAX`, or a list over its limit         |
| `not_found`     | `ChunkGet` of a chunk this node does not hold                   |
| `corrupt`       | the stored record failed its checksum (quarantined; read another replica) |
| `disk_full`     | no space for the record; reads still work                       |
| `store_failed`  | the chunkstore refuses writes after an fsync error              |
| `hints_full`    | the hint store is at its count or byte limit                    |
| `io_error`      | writing a hint file failed for another reason than a full disk  |
| `unavailable`   | the chunkstore is closed (the node is stopping)                 |
| `unknown_round` | `GcSweep` for a round this process did not begin (e.g. it restarted) |
"""

import msgspec

from cairn.chunkstore import CHUNK_BYTES_MAX, CHUNK_ID_BYTES

CHUNK_HAS_IDS_MAX = 8192
"""Ids per `ChunkHas` (8192 x 34 bytes of msgpack stays well under the 1 MiB body)."""
CHUNK_LIST_LIMIT_MAX = 10_000
"""Ids per `ChunkList` page."""
GC_LIVE_IDS_MAX = (128 << 20) // CHUNK_ID_BYTES
"""Live ids per `GcSweep`: what fits the 128 MiB payload limit (4 Mi ids)."""
TARGET_BYTES_MAX = 255
"""A hint's target member id, UTF-8 encoded (as `placement.NODE_ID_BYTES_MAX`)."""

__all__ = [
    "CHUNK_BYTES_MAX",
    "CHUNK_HAS_IDS_MAX",
    "CHUNK_ID_BYTES",
    "CHUNK_LIST_LIMIT_MAX",
    "GC_LIVE_IDS_MAX",
    "TARGET_BYTES_MAX",
    "ChunkDelete",
    "ChunkDeleteReply",
    "ChunkGet",
    "ChunkGetReply",
    "ChunkHas",
    "ChunkHasReply",
    "ChunkList",
    "ChunkListReply",
    "ChunkPut",
    "ChunkPutReply",
    "ChunkStats",
    "ChunkStatsReply",
    "GcBegin",
    "GcBeginReply",
    "GcSweep",
    "GcSweepReply",
    "HintPut",
    "HintPutReply",
]


class ChunkHas(msgspec.Struct, frozen=True, tag=True):
    """Which of `ids` this node holds durably. `touch` refreshes their GC touch time
    (a gateway's dedup check passes True: it is about to count on those chunks)."""

    ids: list[bytes]
    touch: bool = False


class ChunkHasReply(msgspec.Struct, frozen=True, tag=True):
    present: list[bool]
    """Aligned with the request's `ids`."""


class ChunkPut(msgspec.Struct, frozen=True, tag=True):
    """Store the payload (an encoded record) under `chunk_id`; acked once durable."""

    chunk_id: bytes


class ChunkPutReply(msgspec.Struct, frozen=True, tag=True):
    stored: bool
    """False when the node already held the chunk (deduplicated, nothing written)."""


class ChunkGet(msgspec.Struct, frozen=True, tag=True):
    """The record of `chunk_id` as the reply payload."""

    chunk_id: bytes


class ChunkGetReply(msgspec.Struct, frozen=True, tag=True):
    size: int


class ChunkDelete(msgspec.Struct, frozen=True, tag=True):
    chunk_id: bytes


class ChunkDeleteReply(msgspec.Struct, frozen=True, tag=True):
    deleted: bool


class ChunkList(msgspec.Struct, frozen=True, tag=True):
    """Ids (sorted) of the chunks held in `partitions`, strictly after `after`."""

    partition_count: int
    partitions: list[int]
    after: bytes = b""
    limit: int = 1000


class ChunkListReply(msgspec.Struct, frozen=True, tag=True):
    ids: list[bytes]
    sizes: list[int]
    """Bytes of each record (the payload `ChunkGet` returns), aligned with `ids`."""
    more: bool
    """True when there are more ids after the last one: ask again with `after=ids[-1]`."""


class HintPut(msgspec.Struct, frozen=True, tag=True):
    """Keep the payload (a record) durably for `target`, a member that missed a write."""

    target: str
    chunk_id: bytes


class HintPutReply(msgspec.Struct, frozen=True, tag=True):
    stored: bool
    """False when the same hint was already held."""


class GcBegin(msgspec.Struct, frozen=True, tag=True):
    """Start a GC round: the node notes its monotonic time now as the round's start."""


class GcBeginReply(msgspec.Struct, frozen=True, tag=True):
    round_id: int


class GcSweep(msgspec.Struct, frozen=True, tag=True):
    """Delete chunks not in the live set (the payload: concatenated 32-byte ids) whose
    last touch is older than the round's start minus `grace_seconds`."""

    round_id: int
    grace_seconds: float
    dry_run: bool = False


class GcSweepReply(msgspec.Struct, frozen=True, tag=True):
    scanned: int
    """Chunks held when the sweep started."""
    kept_live: int
    """In the live set."""
    kept_recent: int
    """Unreferenced but touched within the grace period (or being deleted already)."""
    deleted: int
    """Deleted (or, in a dry run, that would have been)."""
    deleted_bytes: int
    """Disk bytes those records took (payload and record header)."""


class ChunkStats(msgspec.Struct, frozen=True, tag=True):
    pass


class ChunkStatsReply(msgspec.Struct, frozen=True, tag=True):
    node: str
    chunk_count: int
    live_bytes: int
    stored_bytes: int
    garbage_bytes: int
    capacity_bytes: int
    free_bytes: int
    hint_count: int
    hint_bytes: int
