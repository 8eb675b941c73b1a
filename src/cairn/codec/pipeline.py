"""The write pipeline: byte streams -> chunks -> (id, encoded record), on a thread pool.

Theory of operation. The calling thread reads and chunks the streams in order (FastCDC is
sequential within a stream, and fast). Each chunk is handed to a worker that computes its
id, asks the optional `skip` predicate whether the chunk is already stored (dedup), and if
not encodes it (zstd, AES-GCM, framing). Results come back in input order. hashlib,
zstandard and cryptography release the GIL on large buffers, so `workers` threads use that
many cores; `workers=1` runs everything on the calling thread (the single-thread baseline).

Memory is bounded: at most `in_flight_chunks_max` chunks are queued or being encoded, and
the chunker holds one buffer of `ChunkingParams.stream_buffer_bytes`, so a pipeline uses
about (in_flight_chunks_max + 2) x max chunk size whatever the length of its input.
"""

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from cairn.base.checksum import Buffer
from cairn.codec.chunk_codec import ChunkCodec
from cairn.codec.chunk_id import ChunkId
from cairn.codec.chunking import ByteSource, Chunk, Chunker

WORKERS_MAX = 256


@dataclass(frozen=True, slots=True)
class PipelineChunk:
    """One chunk of one source: where it is, what it is, and its record unless skipped."""

    source_index: int
    offset: int
    length_bytes: int
    chunk_id: ChunkId
    record: bytes | None
    """None when `skip` said the chunk is already stored."""
    compressed: bool


SkipPredicate = Callable[[ChunkId], bool]


class WritePipeline:
    """Chunks and encodes streams with `workers` threads; reusable, close when done."""

    def __init__(
        self,
        codec: ChunkCodec,
        chunker: Chunker | None = None,
        *,
        workers: int = 1,
        in_flight_chunks_max: int | None = None,
    ) -> None:
        if not 1 <= workers <= WORKERS_MAX:
            raise ValueError(f"workers must be in [1, {WORKERS_MAX}], got {workers}")
        self.codec = codec
        self.chunker = chunker or Chunker()
        self.workers = workers
        self.in_flight_chunks_max = in_flight_chunks_max or 2 * workers
        if self.in_flight_chunks_max < 1:
            raise ValueError("in_flight_chunks_max must be at least 1")
        self._executor = (
            ThreadPoolExecutor(workers, thread_name_prefix="cairn-codec") if workers > 1 else None
        )

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> "WritePipeline":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def run(self, source: ByteSource, skip: SkipPredicate | None = None) -> Iterator[PipelineChunk]:
        """Chunks of one stream, encoded, in order."""
        return self.run_many([source], skip)

    def run_many(
        self, sources: Iterable[ByteSource], skip: SkipPredicate | None = None
    ) -> Iterator[PipelineChunk]:
        """Chunks of several streams, in order; work overlaps across stream boundaries, so
        many small files keep every worker busy."""
        chunks = (
            (index, chunk)
            for index, source in enumerate(sources)
            for chunk in self.chunker.chunk_stream(source)
        )
        if self._executor is None:
            for index, chunk in chunks:
                yield self._encode(index, chunk, skip)
            return
        pending: deque[Future[PipelineChunk]] = deque()
        try:
            for index, chunk in chunks:
                if len(pending) >= self.in_flight_chunks_max:
                    yield pending.popleft().result()
                pending.append(self._executor.submit(self._encode, index, chunk, skip))
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()

    def _encode(self, index: int, chunk: Chunk, skip: SkipPredicate | None) -> PipelineChunk:
        data: Buffer = chunk.data
        chunk_id = self.codec.chunk_id(data)
        if skip is not None and skip(chunk_id):
            return PipelineChunk(index, chunk.offset, len(data), chunk_id, None, False)
        encoded = self.codec.encode(data, chunk_id)
        return PipelineChunk(
            index, chunk.offset, len(data), chunk_id, encoded.record, encoded.compressed
        )
