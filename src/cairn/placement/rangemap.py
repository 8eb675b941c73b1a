"""The range map of metadata shards: which index shard owns each (bucket, key).

Theory of operation. Object keys are ordered as bytes: `encode_object_key(bucket, key)` is
the UTF-8 bucket name, a 0x00 byte, then the UTF-8 key. S3 bucket names never contain 0x00,
so this order is the order of (bucket, key) pairs, and one bucket's keys are contiguous
(a listing walks adjacent shards). The key space is cut by sorted *split points*
`s_1 < s_2 < ... < s_n`; range i is `[s_i, s_(i+1))` with `s_0 = b""` and no upper bound
for the last one, and `shards[i]` is the Raft group id that owns it. Lookup is a bisection.

Split and merge return a new map with the epoch incremented (maps are values; the root
group stores them and everyone else caches one and refreshes when a shard answers that the
caller's epoch is stale). Splitting range i at key k (strictly inside it) gives the upper
half `[k, ...)` to a new shard; merging ranges i and i + 1 keeps shard i's id.
"""

from bisect import bisect_right
from dataclasses import dataclass

RANGE_KEY_BYTES_MAX = 64 + 1 + 1024
"""The longest encoded key: bucket name (63 bytes max in S3) + separator + key (1024)."""
SHARD_COUNT_MAX = 1 << 16
"""At most this many ranges in one map."""


def encode_object_key(bucket: str, key: str) -> bytes:
    """The byte string whose order is the order of (bucket, key)."""
    if "\x00" in bucket:
        raise ValueError("bucket names cannot contain NUL")
    encoded = bucket.encode() + b"\x00" + key.encode()
    if len(encoded) > RANGE_KEY_BYTES_MAX:
        raise ValueError(f"encoded key longer than {RANGE_KEY_BYTES_MAX} bytes")
    return encoded


@dataclass(frozen=True, slots=True)
class RangeMap:
    """Split points and the shard of each range, at one epoch."""

    epoch: int
    splits: tuple[bytes, ...]
    shards: tuple[int, ...]

    def __post_init__(self) -> None:
        assert len(self.shards) == len(self.splits) + 1, "one shard per range"
        assert all(a < b for a, b in zip(self.splits, self.splits[1:], strict=False)), "sorted"
        assert not self.splits or self.splits[0] > b"", "the first range starts at b''"
        assert len(set(self.shards)) == len(self.shards), "a shard owns one range"

    @classmethod
    def single(cls, shard: int, epoch: int = 1) -> "RangeMap":
        """One shard owning the whole key space."""
        return cls(epoch, (), (shard,))

    def __len__(self) -> int:
        return len(self.shards)

    def index_of(self, key: bytes) -> int:
        """Index of the range holding `key`."""
        return bisect_right(self.splits, key)

    def lookup(self, key: bytes) -> int:
        """The shard that owns `key`."""
        return self.shards[self.index_of(key)]

    def bounds(self, index: int) -> tuple[bytes, bytes | None]:
        """`[low, high)` of range `index`; high None means unbounded."""
        low = self.splits[index - 1] if index > 0 else b""
        high = self.splits[index] if index < len(self.splits) else None
        return low, high

    def split(self, at: bytes, new_shard: int) -> "RangeMap":
        """Cut the range holding `at` so that `[at, old high)` belongs to `new_shard`."""
        if len(self.shards) >= SHARD_COUNT_MAX:
            raise ValueError(f"range map already has {SHARD_COUNT_MAX} shards")
        if new_shard in self.shards:
            raise ValueError(f"shard {new_shard} already owns a range")
        index = self.index_of(at)
        low, _ = self.bounds(index)
        if at == low:
            raise ValueError(f"split point {at!r} is already a range boundary")
        splits = (*self.splits[:index], at, *self.splits[index:])
        shards = (*self.shards[: index + 1], new_shard, *self.shards[index + 1 :])
        return RangeMap(self.epoch + 1, splits, shards)

    def merge(self, index: int) -> "RangeMap":
        """Join range `index` with the next one; the joined range keeps `shards[index]`."""
        if not 0 <= index < len(self.splits):
            raise ValueError(f"no range after index {index} to merge with")
        splits = (*self.splits[:index], *self.splits[index + 1 :])
        shards = (*self.shards[: index + 1], *self.shards[index + 2 :])
        return RangeMap(self.epoch + 1, splits, shards)
