"""Shared fixtures for codec tests: a cluster key, a codec and small chunking params."""

import random

import pytest

from cairn.codec import ChunkCodec, ChunkingParams

CLUSTER_KEY = b"test-cluster-key-0123456789abcdef"
SMALL_PARAMS = ChunkingParams(min_size_bytes=1024, avg_size_bytes=4096, max_size_bytes=16384)


@pytest.fixture
def codec() -> ChunkCodec:
    return ChunkCodec.from_cluster_key(CLUSTER_KEY)


def random_bytes(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def text_bytes(size: int, seed: int = 0) -> bytes:
    rng = random.Random(seed)
    words = [b"chunk", b"replica", b"raft", b"leader", b"segment", b"lease", b"cairn", b"\n"]
    out = bytearray()
    while len(out) < size:
        out += rng.choice(words) + b" "
    return bytes(out[:size])
