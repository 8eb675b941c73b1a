"""`cairn bench chunkstore`: put/get throughput of one node's chunk store against the disk.

Theory of operation. For each chunk size, `concurrency` asyncio tasks put chunks through
an `AsyncChunkStore` (fsync policy `batch` by default, so the tasks share group commits)
until `ops` chunks are stored or `seconds_max` passes, then get every stored chunk back
in random order (checksums verified; the bytes are in the page cache, so this measures
the store's read path, not the disk). Put latency percentiles come from the same run.

On the same disk (a file in the same temporary directory), in the same run and first,
it measures the raw references: plain `os.write` of 1 MiB blocks with one `fsync` at the
end, as many bytes as the largest put phase writes, and the median latency of a 4 KiB
append + `fdatasync` (with group commit, small-chunk puts/s are bounded by about
concurrency / that latency). The ratio put MB/s / raw MB/s says how much of the disk's
sequential bandwidth the store delivers. MB is 10^6 bytes.

Payloads are windows into one random buffer (no generation cost inside the timed loop)
and ids are BLAKE2b of a counter: the store does not hash payloads, the codec does.
"""

import asyncio
import hashlib
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from cairn.bench.latency import percentile, summarize_ms
from cairn.chunkstore import AsyncChunkStore, FsyncPolicy, StoreOptions

KiB = 1024
MiB = 1024 * KiB
MB = 1_000_000
RAW_BLOCK_BYTES = MiB
Progress = Callable[[str], None]


@dataclass(frozen=True)
class ChunkstoreBenchConfig:
    directory: str | None = None  # parent of the temporary store; None = system temp dir
    chunk_sizes_bytes: Sequence[int] = (4 * KiB, 64 * KiB, MiB)
    ops_by_size: dict[int, int] = field(
        default_factory=lambda: {4 * KiB: 40_000, 64 * KiB: 6_000, MiB: 768}
    )
    ops_default: int = 1000
    concurrency: int = 16
    fsync: FsyncPolicy = "batch"
    seconds_max: float = 12.0  # per phase
    segment_bytes_max: int = 256 * MiB
    seed: int = 0

    def ops_for(self, size: int) -> int:
        return self.ops_by_size.get(size, self.ops_default)


def _chunk_id(n: int, size: int) -> bytes:
    return hashlib.blake2b(f"{size}:{n}".encode(), digest_size=32).digest()


async def _put_phase(
    store: AsyncChunkStore, config: ChunkstoreBenchConfig, size: int, pool: memoryview
) -> tuple[list[bytes], float, list[float]]:
    ops = config.ops_for(size)
    deadline = time.perf_counter() + config.seconds_max
    next_op = [0]
    ids: list[bytes] = []
    latencies: list[float] = []
    span = len(pool) - size

    async def worker() -> None:
        while next_op[0] < ops and time.perf_counter() < deadline:
            n = next_op[0]
            next_op[0] += 1
            cid = _chunk_id(n, size)
            start = (n * 4099) % span if span else 0
            t0 = time.perf_counter()
            await store.put(cid, pool[start : start + size])
            latencies.append(time.perf_counter() - t0)
            ids.append(cid)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(config.concurrency)))
    return ids, time.perf_counter() - t0, latencies


async def _get_phase(
    store: AsyncChunkStore, config: ChunkstoreBenchConfig, ids: list[bytes]
) -> tuple[int, float]:
    order = list(ids)
    random.Random(config.seed).shuffle(order)
    deadline = time.perf_counter() + config.seconds_max
    position = [0]
    got = [0]

    async def worker() -> None:
        while position[0] < len(order) and time.perf_counter() < deadline:
            cid = order[position[0]]
            position[0] += 1
            await store.get(cid)
            got[0] += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(config.concurrency)))
    return got[0], time.perf_counter() - t0


def raw_write_mb_per_s(directory: str, total_bytes: int) -> float:
    """Plain sequential writes of 1 MiB blocks and one fsync at the end, in MB/s."""
    block = os.urandom(RAW_BLOCK_BYTES)
    blocks = max(1, total_bytes // RAW_BLOCK_BYTES)
    path = os.path.join(directory, "raw-write.bin")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        t0 = time.perf_counter()
        for _ in range(blocks):
            os.write(fd, block)
        os.fsync(fd)
        elapsed = time.perf_counter() - t0
    finally:
        os.close(fd)
        os.unlink(path)
    return blocks * RAW_BLOCK_BYTES / elapsed / MB


def append_fdatasync_ms(directory: str, samples: int = 50) -> float:
    """Median latency of a 4 KiB append + `fdatasync` (what one group commit costs)."""
    block = os.urandom(4 * KiB)
    path = os.path.join(directory, "fsync-probe.bin")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    times = []
    try:
        for _ in range(samples):
            os.write(fd, block)
            t0 = time.perf_counter()
            os.fdatasync(fd)
            times.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
        os.unlink(path)
    return percentile(sorted(times), 0.5) * 1000


async def _run_size(
    config: ChunkstoreBenchConfig, parent: str, size: int, progress: Progress
) -> dict[str, Any]:
    directory = tempfile.mkdtemp(prefix=f"store-{size}-", dir=parent)
    pool = memoryview(random.Random(config.seed).randbytes(max(2 * size, 8 * MiB)))
    options = StoreOptions(segment_bytes_max=config.segment_bytes_max, fsync=config.fsync)
    store = await AsyncChunkStore.open(directory, options, threads_max=config.concurrency)
    try:
        progress(f"chunkstore: put {config.ops_for(size)} x {size} B, c={config.concurrency}")
        ids, put_s, latencies = await _put_phase(store, config, size, pool)
        progress(f"chunkstore: get {len(ids)} x {size} B")
        got, get_s = await _get_phase(store, config, ids)
        usage = await store.usage()
    finally:
        await store.close()
    put_bytes = len(ids) * size
    return {
        "chunk_bytes": size,
        "put_ops": len(ids),
        "put_ops_per_s": len(ids) / put_s,
        "put_mb_per_s": put_bytes / put_s / MB,
        "put_latency": summarize_ms(latencies),
        "get_ops": got,
        "get_ops_per_s": got / get_s,
        "get_mb_per_s": got * size / get_s / MB,
        "stored_bytes": usage.stored_bytes,
        "segment_count": usage.segment_count,
    }


def run_chunkstore_bench(
    config: ChunkstoreBenchConfig, progress: Progress = lambda _: None
) -> dict[str, Any]:
    """The raw write reference first, then every chunk size; return the figures.

    Each phase starts with `os.sync()` so it does not pay for the previous phase's
    write-back, and files are deleted only at the end (this disk is mounted with
    `discard`, so deleting large files slows the next writes down).
    """
    parent = tempfile.mkdtemp(prefix="cairn-bench-chunkstore-", dir=config.directory)
    largest_size = max(config.chunk_sizes_bytes)
    raw_bytes = max(RAW_BLOCK_BYTES, config.ops_for(largest_size) * largest_size)
    try:
        os.sync()
        progress("raw: 4 KiB append + fdatasync latency")
        fsync_ms = append_fdatasync_ms(parent)
        progress(f"raw: sequential write {raw_bytes // MiB} MiB + fsync")
        raw = raw_write_mb_per_s(parent, raw_bytes)
        results = []
        for size in config.chunk_sizes_bytes:
            os.sync()
            results.append(asyncio.run(_run_size(config, parent, size, progress)))
    finally:
        shutil.rmtree(parent, ignore_errors=True)
    for r in results:
        r["put_vs_raw_ratio"] = r["put_mb_per_s"] / raw
    largest = max(results, key=lambda r: r["chunk_bytes"])
    return {
        "benchmark": "chunkstore",
        "config": {
            **asdict(config),
            "ops_by_size": {str(k): v for k, v in config.ops_by_size.items()},
            "chunk_sizes_bytes": list(config.chunk_sizes_bytes),
        },
        "results": results,
        "raw_write_mb_per_s": raw,
        "raw_write_bytes": raw_bytes,
        "append_fdatasync_p50_ms": fsync_ms,
        "put_vs_raw_ratio": largest["put_mb_per_s"] / raw,
        "load_average_1m": os.getloadavg()[0],
    }
