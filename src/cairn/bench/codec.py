"""`cairn bench codec`: throughput of each step of the chunk write path, 1 thread vs all.

Theory of operation. One in-memory dataset (by default half random bytes, half Python
source text from the standard library, interleaved in 4 MiB blocks so that most chunks
mix both) is cut once into chunks. Each stage then runs over those chunks twice, on the
calling thread and on a pool of `workers` threads, alternately, and reports plaintext GB/s
(10^9 bytes per second, best of `repeats`) and the load average before and after, since a
busy machine skews the multi-thread column most:

- chunking: FastCDC over the whole buffer (with N threads: N independent slices);
- hashing: keyed BLAKE2b-256 of every chunk (the chunk id);
- compression: zstd of every chunk at the configured level;
- encryption: per-chunk HKDF key + AES-256-GCM of every chunk (uncompressed, worst case);
- pipeline: `WritePipeline` from a stream: chunk, id, compress-if-smaller, encrypt, frame;
- decode: verify + decrypt + decompress + id check of every encoded chunk (the read path).

Threads help only where the library releases the GIL (hashlib, zstandard, cryptography,
pyfastcdc's scan loop); the ratio of the two columns shows how much.
"""

import io
import os
import random
import sysconfig
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import zstandard
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cairn.codec import (
    ChunkCodec,
    Chunker,
    ChunkingParams,
    CodecPolicy,
    EncodedChunk,
    WritePipeline,
)

MiB = 1024 * 1024
DataKind = Literal["mixed", "random", "text"]
BLOCK_BYTES = 4 * MiB
BENCH_CLUSTER_KEY = b"cairn-bench-cluster-key-not-secret"
Progress = Callable[[str], None]


@dataclass(frozen=True)
class CodecBenchConfig:
    size_bytes: int = 256 * MiB
    data: DataKind = "mixed"
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    zstd_level: int = 3
    repeats: int = 3
    seed: int = 0
    chunking: ChunkingParams = field(default_factory=ChunkingParams)


def stdlib_text(limit_bytes: int) -> bytes:
    """Python sources of the standard library (not site-packages), up to `limit_bytes`."""
    root = Path(sysconfig.get_paths()["stdlib"])
    parts: list[bytes] = []
    total = 0
    for path in sorted(root.glob("**/*.py")):
        if "site-packages" in path.parts or not path.is_file():
            continue
        parts.append(path.read_bytes())
        total += len(parts[-1])
        if total >= limit_bytes:
            break
    return b"".join(parts)[:limit_bytes] or b"print('hello')\n"


def make_dataset(size_bytes: int, kind: DataKind, seed: int) -> bytes:
    rng = random.Random(seed)
    if kind == "random":
        return rng.randbytes(size_bytes)
    text = stdlib_text(64 * MiB)
    out = bytearray()
    block = 0
    while len(out) < size_bytes:
        if kind == "mixed" and block % 2 == 0:
            out += rng.randbytes(BLOCK_BYTES)
        else:
            start = rng.randrange(max(1, len(text) - BLOCK_BYTES))
            out += text[start : start + BLOCK_BYTES]
        block += 1
    return bytes(out[:size_bytes])


def _run(
    fn: Callable[[Any], object], items: Sequence[Any], pool: ThreadPoolExecutor | None
) -> float:
    """Seconds to apply `fn` to every item, on this thread or on a warm pool."""
    start = time.perf_counter()
    if pool is None:
        for item in items:
            fn(item)
    else:
        for _ in pool.map(fn, items):
            pass
    return time.perf_counter() - start


def run_codec_bench(config: CodecBenchConfig, progress: Progress) -> dict[str, Any]:
    progress(f"generating {config.size_bytes / MiB:.0f} MiB of {config.data} data")
    data = make_dataset(config.size_bytes, config.data, config.seed)
    chunker = Chunker(config.chunking)
    chunks = [chunk.data for chunk in chunker.chunk_buffer(data)]
    codec = ChunkCodec.from_cluster_key(
        BENCH_CLUSTER_KEY, CodecPolicy(zstd_level=config.zstd_level)
    )
    local = threading.local()

    def compress(chunk: memoryview) -> int:
        compressor = getattr(local, "zstd", None)
        if compressor is None:
            compressor = local.zstd = zstandard.ZstdCompressor(level=config.zstd_level)
        return len(compressor.compress(chunk))

    def encrypt(chunk: memoryview) -> bytes:
        chunk_id = codec.chunk_id(chunk[:64])  # any id: only the key derivation is timed
        return AESGCM(codec.keys.chunk_key(chunk_id)).encrypt(bytes(12), chunk, None)

    def pipeline(workers: int) -> float:
        start = time.perf_counter()
        with WritePipeline(codec, chunker, workers=workers) as pipe:
            for _ in pipe.run(io.BytesIO(data)):
                pass
        return time.perf_counter() - start

    def chunking(workers: int) -> float:
        step = -(-len(data) // workers)
        slices = [memoryview(data)[i : i + step] for i in range(0, len(data), step)]
        return _run(lambda part: sum(1 for _ in chunker.chunk_buffer(part)), slices, pool(workers))

    encoded: list[EncodedChunk] = [codec.encode(chunk) for chunk in chunks]
    shared_pool = ThreadPoolExecutor(config.workers, thread_name_prefix="bench-codec")

    def pool(workers: int) -> ThreadPoolExecutor | None:
        return None if workers == 1 else shared_pool

    def decode(item: EncodedChunk) -> bytes:
        return codec.decode(item.chunk_id, item.record)

    stages: dict[str, Callable[[int], float]] = {
        "chunking": chunking,
        "hashing": lambda w: _run(codec.chunk_id, chunks, pool(w)),
        "compression": lambda w: _run(compress, chunks, pool(w)),
        "encryption": lambda w: _run(encrypt, chunks, pool(w)),
        "pipeline": pipeline,
        "decode": lambda w: _run(decode, encoded, pool(w)),
    }
    results: dict[str, dict[str, float]] = {}
    load_before = os.getloadavg()[0]
    try:
        for name, stage in stages.items():
            progress(f"measuring {name}")
            # Alternate the two columns so that a change in machine load hits both.
            single_s, multi_s = [], []
            for _ in range(config.repeats):
                single_s.append(stage(1))
                multi_s.append(stage(config.workers))
            single = len(data) / min(single_s) / 1e9
            multi = len(data) / min(multi_s) / 1e9
            results[name] = {
                "gbps_1_thread": round(single, 3),
                "gbps_all_threads": round(multi, 3),
                "speedup": round(multi / single, 2),
            }
    finally:
        shared_pool.shutdown()
    stored = sum(len(item.record) for item in encoded)
    return {
        "bench": "codec",
        "config": {**asdict(config), "size_mib": config.size_bytes / MiB},
        "chunks": len(chunks),
        "chunk_mean_bytes": round(len(data) / max(1, len(chunks))),
        "compressed_chunks": sum(item.compressed for item in encoded),
        "stored_to_plaintext": round(stored / len(data), 4),
        "workers": config.workers,
        "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "stages": results,
    }
