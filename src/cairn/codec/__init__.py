"""Encoding of one chunk: content-defined chunking, keyed hashing, compression, encryption.

Public surface:

- `Chunker`, `ChunkingParams`, `Chunk`: FastCDC chunking of buffers and bounded-memory streams.
- `ChunkId`: a 32-byte keyed BLAKE2b-256 of a chunk's plaintext, with hex form.
- `CodecKeys`: the subkeys HKDF derives from the cluster key.
- `ChunkCodec`, `CodecPolicy`, `EncodedChunk`: zstd (when it shrinks) + AES-256-GCM + a
  framed record with CRC32C; decoding verifies everything or raises `ChunkCorrupt`.
- `WritePipeline`, `PipelineChunk`: streams -> (id, record) on a thread pool.
- `DedupStats`: logical versus unique versus stored bytes.

See `docs/design/codec.md` for the parameters and the reasoning behind them.
"""

from cairn.codec.chunk_codec import ChunkCodec, CodecPolicy, EncodedChunk
from cairn.codec.chunk_id import CHUNK_ID_SIZE_BYTES, ChunkId
from cairn.codec.chunking import ByteSource, Chunk, Chunker, ChunkingParams
from cairn.codec.dedup import DedupStats
from cairn.codec.errors import ChunkCorrupt, CodecError, InvalidChunkId
from cairn.codec.keys import CodecKeys
from cairn.codec.pipeline import PipelineChunk, WritePipeline

__all__ = [
    "CHUNK_ID_SIZE_BYTES",
    "ByteSource",
    "Chunk",
    "ChunkCodec",
    "ChunkCorrupt",
    "ChunkId",
    "Chunker",
    "ChunkingParams",
    "CodecError",
    "CodecKeys",
    "CodecPolicy",
    "DedupStats",
    "EncodedChunk",
    "InvalidChunkId",
    "PipelineChunk",
    "WritePipeline",
]
