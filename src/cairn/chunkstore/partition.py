"""Which partition a chunk id belongs to: pure, no IO.

The rule (shared with `cairn.placement`): with P partitions (a power of two), the partition
of an id is its first 8 bytes read big-endian, shifted right by 64 - log2(P). Ids are
uniform hashes, so partitions are equally loaded and each is a contiguous id range.
"""

from collections.abc import Callable

PartitionFn = Callable[[bytes], int]


def partition_of(chunk_id: bytes, partition_count: int) -> int:
    """The partition of `chunk_id` among `partition_count` (a power of two) partitions."""
    assert partition_count >= 1 and partition_count & (partition_count - 1) == 0, partition_count
    shift = 64 - (partition_count.bit_length() - 1)
    return int.from_bytes(chunk_id[:8], "big") >> shift if shift < 64 else 0


def partition_fn(partition_count: int) -> PartitionFn:
    """`partition_of` bound to one partition count."""
    return lambda chunk_id: partition_of(chunk_id, partition_count)
