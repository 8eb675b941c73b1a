import io

import pytest

from cairn.codec import ChunkCodec, Chunker, DedupStats, WritePipeline

from .conftest import SMALL_PARAMS, random_bytes, text_bytes

MiB = 1024 * 1024


def sources() -> list[bytes]:
    base = text_bytes(2 * MiB, seed=1) + random_bytes(1 * MiB, seed=2)
    edited = base[: MiB // 2] + b"an insertion" + base[MiB // 2 :]
    return [base, edited, base, random_bytes(100_000, seed=3), b""]


@pytest.mark.parametrize("workers", [2, 4])
def test_threaded_equals_single_thread(codec: ChunkCodec, workers: int) -> None:
    chunker = Chunker(SMALL_PARAMS)
    with WritePipeline(codec, chunker, workers=1) as single:
        expected = list(single.run_many(io.BytesIO(s) for s in sources()))
    with WritePipeline(codec, chunker, workers=workers) as threaded:
        actual = list(threaded.run_many(io.BytesIO(s) for s in sources()))
    assert actual == expected
    assert len(expected) > 100


def test_pipeline_output_decodes_to_the_input(codec: ChunkCodec) -> None:
    data = text_bytes(MiB) + random_bytes(MiB)
    with WritePipeline(codec, Chunker(SMALL_PARAMS), workers=2) as pipeline:
        parts = []
        for chunk in pipeline.run(io.BytesIO(data)):
            assert chunk.record is not None
            parts.append(codec.decode(chunk.chunk_id, chunk.record))
    assert b"".join(parts) == data


def test_dedup_skips_known_chunks_and_counts_bytes(codec: ChunkCodec) -> None:
    stats = DedupStats()
    inputs = sources()
    with WritePipeline(codec, Chunker(SMALL_PARAMS), workers=2) as pipeline:
        for chunk in pipeline.run_many((io.BytesIO(s) for s in inputs), skip=stats.claim):
            stored = None if chunk.record is None else len(chunk.record)
            stats.add(chunk.chunk_id, chunk.length_bytes, stored)
    assert stats.logical_bytes == sum(len(s) for s in inputs)
    # The third source repeats the first and the second shares all but a chunk or two.
    assert 2.5 < stats.dedup_ratio < 3.0
    assert stats.unique_bytes < stats.logical_bytes
    assert stats.stored_bytes < stats.unique_bytes  # the text part compresses
    assert stats.unique_chunks < stats.chunk_refs


def test_dedup_stats_count_the_record_wherever_it_comes(codec: ChunkCodec) -> None:
    chunk_id = codec.chunk_id(b"x")
    stats = DedupStats()
    assert stats.claim(chunk_id) is False
    assert stats.claim(chunk_id) is True
    stats.add(chunk_id, 100, None)  # a worker that lost the claim finished first
    stats.add(chunk_id, 100, 40)
    stats.add(chunk_id, 100, 40)
    assert (stats.logical_bytes, stats.unique_bytes, stats.stored_bytes) == (300, 100, 40)
    assert (stats.chunk_refs, stats.unique_chunks) == (3, 1)
    assert stats.dedup_ratio == 3.0
    assert stats.reduction_ratio == 7.5


def test_bad_worker_count_is_refused(codec: ChunkCodec) -> None:
    with pytest.raises(ValueError, match="workers"):
        WritePipeline(codec, workers=0)
