import hashlib
import io
import random
import tracemalloc
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.base.errors import ConfigError
from cairn.codec import Chunker, ChunkingParams

from .conftest import SMALL_PARAMS, random_bytes

MiB = 1024 * 1024


def digests(chunker: Chunker, data: bytes) -> list[bytes]:
    return [hashlib.sha256(c.data).digest() for c in chunker.chunk_buffer(data)]


def test_defaults_are_the_design_values() -> None:
    params = ChunkingParams()
    assert (params.min_size_bytes, params.avg_size_bytes, params.max_size_bytes) == (
        256 * 1024,
        1 * MiB,
        4 * MiB,
    )
    assert params.stream_buffer_bytes == 8 * MiB


@pytest.mark.parametrize(
    ("min_b", "avg_b", "max_b"),
    [(10, 4096, 16384), (1024, 4096, 64 * MiB), (8192, 4096, 16384), (1024, 65536, 16384)],
)
def test_bad_params_are_config_errors(min_b: int, avg_b: int, max_b: int) -> None:
    with pytest.raises(ConfigError):
        ChunkingParams(min_size_bytes=min_b, avg_size_bytes=avg_b, max_size_bytes=max_b)


@settings(max_examples=50)
@given(st.binary(max_size=100_000))
def test_chunks_cover_the_input_in_order(data: bytes) -> None:
    chunks = list(Chunker(SMALL_PARAMS).chunk_buffer(data))
    assert b"".join(bytes(c.data) for c in chunks) == data
    offset = 0
    for chunk in chunks:
        assert chunk.offset == offset
        offset += chunk.length
        assert chunk.length <= SMALL_PARAMS.max_size_bytes
    for chunk in chunks[:-1]:
        assert chunk.length >= SMALL_PARAMS.min_size_bytes


def test_sizes_follow_the_parameters() -> None:
    data = random_bytes(64 * MiB, seed=1)
    lengths = [c.length for c in Chunker().chunk_buffer(data)]
    assert min(lengths[:-1]) >= 256 * 1024
    assert max(lengths) <= 4 * MiB
    mean = sum(lengths) / len(lengths)
    assert 0.9 * MiB < mean < 1.6 * MiB  # about avg + min/4, see chunking's docstring


def test_deterministic_and_stream_equals_buffer() -> None:
    data = random_bytes(3 * MiB, seed=2)
    chunker = Chunker(SMALL_PARAMS)
    first = digests(chunker, data)
    assert first == digests(Chunker(SMALL_PARAMS), data)
    streamed = [hashlib.sha256(c.data).digest() for c in chunker.chunk_stream(io.BytesIO(data))]
    assert streamed == first
    pieces = (data[i : i + 1000] for i in range(0, len(data), 1000))
    from_iter = [hashlib.sha256(c.data).digest() for c in chunker.chunk_stream(pieces)]
    assert from_iter == first


class ReadOnly:
    """A stream with only `read`, returning short reads."""

    def __init__(self, data: bytes) -> None:
        self._stream = io.BytesIO(data)

    def read(self, size: int) -> bytes:
        return self._stream.read(min(size, 777))


@pytest.mark.parametrize("size", [0, 1, 16383, 16384, 16385, 40_000, 1_000_000])
def test_stream_equals_buffer_around_the_head_size(size: int) -> None:
    """Streams up to max_size_bytes are cut in the head buffer, longer ones by pyfastcdc's
    stream chunker: both must give the buffer's boundaries."""
    data = random_bytes(size, seed=size)
    chunker = Chunker(SMALL_PARAMS)
    expected = [(c.offset, bytes(c.data)) for c in chunker.chunk_buffer(data)]
    for source in (io.BytesIO(data), ReadOnly(data), [data[:5], data[5:]]):
        assert [(c.offset, c.data) for c in chunker.chunk_stream(source)] == expected


def test_abandoned_streams_return_their_head_buffer() -> None:
    chunker = Chunker(SMALL_PARAMS)
    for _ in range(20):
        stream = chunker.chunk_stream(io.BytesIO(random_bytes(100_000)))
        next(stream)
        stream.close()
    assert 1 <= len(chunker._spare_heads) <= 8


def test_gear_seed_moves_boundaries() -> None:
    data = random_bytes(1 * MiB, seed=3)
    seeded = ChunkingParams(
        min_size_bytes=1024, avg_size_bytes=4096, max_size_bytes=16384, gear_seed=12345
    )
    assert digests(Chunker(seeded), data) != digests(Chunker(SMALL_PARAMS), data)


@pytest.mark.parametrize("edit", ["insert", "delete", "overwrite"])
def test_boundaries_survive_an_edit(edit: str) -> None:
    data = random_bytes(32 * MiB, seed=4)
    position = 13 * MiB + 12345
    if edit == "insert":
        edited = data[:position] + b"inserted bytes shift everything after" + data[position:]
    elif edit == "delete":
        edited = data[:position] + data[position + 777 :]
    else:
        edited = data[:position] + b"X" * 100 + data[position + 100 :]
    chunker = Chunker()
    before = digests(chunker, data)
    after = set(digests(chunker, edited))
    shared = sum(d in after for d in before)
    assert shared >= len(before) - 2, (shared, len(before))


def test_many_small_insertions_keep_most_chunks() -> None:
    rng = random.Random(5)
    data = bytearray(random_bytes(8 * MiB, seed=5))
    before = digests(Chunker(SMALL_PARAMS), bytes(data))
    for _ in range(20):
        position = rng.randrange(len(data))
        data[position:position] = rng.randbytes(rng.randrange(1, 50))
    after = set(digests(Chunker(SMALL_PARAMS), bytes(data)))
    shared = sum(d in after for d in before)
    assert shared >= len(before) - 2 * 20 * 2


def test_stream_larger_than_memory_budget_uses_bounded_memory() -> None:
    total_bytes = 80 * MiB
    piece_bytes = 64 * 1024

    def pieces() -> Iterator[bytes]:
        rng = random.Random(6)
        for _ in range(total_bytes // piece_bytes):
            yield rng.randbytes(piece_bytes)

    chunker = Chunker()
    tracemalloc.start()
    try:
        count = 0
        seen = 0
        for chunk in chunker.chunk_stream(pieces()):
            count += 1
            seen += chunk.length
            assert chunk.length <= chunker.params.max_size_bytes
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == total_bytes
    assert count > 40
    # The stream buffer (8 MiB), the head buffer (4 MiB), the chunk yielded and the one
    # before it (4 MiB each at most) and a piece: about 20 MiB whatever the stream length,
    # far below its 80 MiB.
    assert peak < chunker.params.stream_buffer_bytes + 4 * chunker.params.max_size_bytes
