"""`cairn bench cluster`: object put/get throughput and latency of a running cluster through
its native API, and the time it takes to restore full replication after losing a node.

Why it is built this way:

- **Its own cluster.** Like `cairn bench raft`, it starts real node processes on 127.0.0.1
  (`LocalCluster`, fsync on, compression and encryption on: the defaults) in a temporary
  directory, so the figures include everything a client meets: the gateway, the metadata
  groups, the chunk codec, replication to R owners and the disks. The load generator is
  this process (one asyncio loop) and shares the machine's cores with the nodes.
- **Cells of fixed time.** For each object size and concurrency c, c tasks PUT distinct
  objects for `seconds`, then GET objects chosen at random among those just written for
  the same time. Each task waits for its reply before the next request, so latency is
  what one client sees and throughput is what c such clients get.
- **Unique, cheap content.** Dedup would flatter a benchmark that writes the same bytes
  twice, and generating fresh random bytes costs more CPU than the client should spend
  (~350 MB/s). So an object is a slice of a shared random pool at a random offset with a
  16-byte token, derived from the object's own random seed, stamped every
  `TOKEN_STRIDE_BYTES` (far below the smallest chunk): no two chunks of two objects are
  equal, and the pool is incompressible. Every PUT reply counts its new chunks, so the
  dedup hits are reported (they should be 0).
- **Every GET is verified** against the SHA-256 of what was written; a mismatch counts
  apart from errors.
- **Repair** is measured on a fresh 4-node cluster (3 metadata voters and one storage
  node, R = 3) with fast failure detection and a stated repair bandwidth cap per node. It
  writes a known amount of data, waits until every chunk is on all R owners, kills the
  storage node with SIGKILL and records, from the moment of the kill: when the cluster map
  marks it down, when it is lost (its partitions re-placed), when every chunk is on all R
  current owners (`ChunkHas` to each owner, for the ids gathered from every node before
  the kill) and when the root leader has declared the moves done (the previous table
  forgotten). Full replication is the later of the last two. Every object is then read
  back and verified. Every wait is polled with a deadline.
"""

import asyncio
import hashlib
import os
import random
import re
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from cairn.base.checksum import Buffer
from cairn.base.errors import CairnError
from cairn.bench.latency import summarize_ms
from cairn.client.sdk import CairnClient
from cairn.config import CairnConfig
from cairn.gateway.native_messages import (
    NativeBucketReply,
    NativeGet,
    NativeGetReply,
    NativeMakeBucket,
    NativePut,
    NativePutReply,
)
from cairn.localcluster import LocalCluster
from cairn.localcluster.harness import FAST_FAILURE_DETECTION
from cairn.meta.clustermap import Liveness
from cairn.node.chunk_messages import (
    CHUNK_HAS_IDS_MAX,
    CHUNK_LIST_LIMIT_MAX,
    ChunkHas,
    ChunkHasReply,
    ChunkList,
    ChunkListReply,
    ChunkStats,
    ChunkStatsReply,
)
from cairn.node.meta_client import MetaClient
from cairn.node.meta_messages import ClusterViewReply
from cairn.node.repair import RepairProgress, RepairStatus
from cairn.placement import partition_of
from cairn.runtime.event_loop import install_event_loop_policy
from cairn.wire import RpcPool, derive_auth_key

__all__ = [
    "ClusterBenchConfig",
    "format_size",
    "parse_size",
    "run_cluster_bench",
]

KiB = 1024
MiB = 1024 * KiB
SECRET = "bench-cluster-secret-0123456789"
BUCKET = "bench"
Api = Literal["http", "rpc"]
BUCKET_EXISTS_CODES = ("BucketAlreadyExists", "BucketAlreadyOwnedByYou")

TOKEN_STRIDE_BYTES = 16 * KiB
"""A unique token every this many bytes; the smallest content-defined chunk is 256 KiB."""
TOKEN_BYTES = 16
POOL_BYTES_MIN = 8 * MiB
REQUEST_TIMEOUT_S = 120.0
READY_DEADLINE_S = 60.0
READY_PAUSE_S = 0.2
POLL_S = 0.1
"""Interval between two looks at a condition that has a deadline."""
PROBE_TIMEOUT_S = 10.0
CHUNK_LIST_PAGES_MAX = 10_000
ERROR_SAMPLES_MAX = 5
REPAIR_NODES = 4
REPAIR_VICTIM = "node-4"
REPAIR_WRITE_CONCURRENCY = 4
SETTLE_DEADLINE_S = 120.0
REPAIR_DEADLINE_MIN_S = 120.0

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ClusterBenchConfig:
    nodes: int = 3
    sizes_bytes: tuple[int, ...] = (4 * KiB, 1 * MiB, 16 * MiB)
    concurrency: tuple[int, ...] = (1, 16)
    seconds: float = 5.0
    api: Api = "http"
    repair: bool = True
    repair_mib: int = 256
    repair_object_bytes: int = 1 * MiB
    repair_bytes_per_s: int = 64 * MiB
    """Each node's repair worker paces itself to this (config `repair_bytes_per_s`)."""
    keep_dir: Path | None = None
    """Run the clusters under this directory and leave their data and logs there."""
    settings: dict[str, str] = field(default_factory=dict)
    """Extra config fields for every node of both clusters."""


# -- sizes -------------------------------------------------------------------------------

_UNITS = {"": 1, "b": 1, "k": KiB, "kib": KiB, "kb": KiB, "m": MiB, "mib": MiB, "mb": MiB,
          "g": 1 << 30, "gib": 1 << 30, "gb": 1 << 30}  # fmt: skip


def parse_size(text: str) -> int:
    """`4KiB`, `1MiB`, `16m`, `4096` -> bytes (binary units, as the chunker's)."""
    match = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", text)
    if match is None or match.group(2).lower() not in _UNITS:
        raise ValueError(f"not a size: {text!r} (e.g. 4KiB, 1MiB, 4096)")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def format_size(size_bytes: int) -> str:
    for unit, factor in (("GiB", 1 << 30), ("MiB", MiB), ("KiB", KiB)):
        if size_bytes >= factor and size_bytes % factor == 0:
            return f"{size_bytes // factor} {unit}"
    return f"{size_bytes} B"


# -- content -----------------------------------------------------------------------------


class ObjectMaker:
    """Distinct, incompressible objects at several GB/s (see the module doc)."""

    def __init__(self, largest_bytes: int, rng: random.Random) -> None:
        self._rng = rng
        self._pool = memoryview(rng.randbytes(max(POOL_BYTES_MIN, 2 * largest_bytes)))

    def make(self, size_bytes: int) -> tuple[bytes, bytes]:
        """(content, its SHA-256)."""
        seed = self._rng.randbytes(64)
        offset = self._rng.randrange(len(self._pool) - size_bytes + 1)
        out = bytearray(self._pool[offset : offset + size_bytes])
        for at in range(0, size_bytes, TOKEN_STRIDE_BYTES):
            token = hashlib.blake2b(at.to_bytes(8, "little"), key=seed, digest_size=TOKEN_BYTES)
            end = min(at + TOKEN_BYTES, size_bytes)
            out[at:end] = token.digest()[: end - at]
        data = bytes(out)
        return data, hashlib.sha256(data).digest()


# -- the two native APIs -----------------------------------------------------------------


class ObjectApi(Protocol):
    async def make_bucket(self, bucket: str) -> None: ...

    async def put(self, bucket: str, key: str, data: bytes) -> tuple[int, int]:
        """Store; return (chunks, new chunks) from the reply."""
        ...

    async def get(self, bucket: str, key: str) -> Buffer: ...

    async def close(self) -> None: ...


class HttpApi:
    """The SDK over the gateways' native HTTP API (balanced over every gateway)."""

    def __init__(self, gateways: Sequence[str], secret: str) -> None:
        self.client = CairnClient(gateways, secret, timeout_s=REQUEST_TIMEOUT_S)

    async def make_bucket(self, bucket: str) -> None:
        await self.client.make_bucket(bucket)

    async def put(self, bucket: str, key: str, data: bytes) -> tuple[int, int]:
        result = await self.client.put(bucket, key, data)
        return result.chunks, result.new_chunks

    async def get(self, bucket: str, key: str) -> Buffer:
        return await self.client.get(bucket, key)

    async def close(self) -> None:
        await self.client.close()


class RpcApi:
    """The native RPC messages over one authenticated connection per gateway node,
    round-robin over the nodes."""

    def __init__(self, addresses: Sequence[str], secret: str) -> None:
        self.pool = RpcPool("bench-cluster", derive_auth_key(secret))
        self.addresses = list(addresses)
        self._next = 0

    def _address(self) -> str:
        self._next += 1
        return self.addresses[self._next % len(self.addresses)]

    async def make_bucket(self, bucket: str) -> None:
        await self.pool.call(
            self._address(), NativeMakeBucket(bucket), NativeBucketReply, timeout=PROBE_TIMEOUT_S
        )

    async def put(self, bucket: str, key: str, data: bytes) -> tuple[int, int]:
        reply, _ = await self.pool.call(
            self._address(), NativePut(bucket, key), NativePutReply, data, REQUEST_TIMEOUT_S
        )
        return reply.chunks, reply.new_chunks

    async def get(self, bucket: str, key: str) -> Buffer:
        _, payload = await self.pool.call(
            self._address(), NativeGet(bucket, key), NativeGetReply, timeout=REQUEST_TIMEOUT_S
        )
        return payload

    async def close(self) -> None:
        await self.pool.close()


def make_api(api: Api, cluster: LocalCluster, node_ids: Iterable[str] | None = None) -> ObjectApi:
    nodes = [cluster.nodes[n] for n in (node_ids or cluster.nodes)]
    if api == "rpc":
        return RpcApi([n.rpc_address for n in nodes], cluster.secret)
    return HttpApi([f"http://{n.host}:{n.s3_port}" for n in nodes], cluster.secret)


async def wait_gateways_ready(api: Api, cluster: LocalCluster, bucket: str) -> None:
    """Make `bucket`, then poll until every gateway stores and returns an object (a node's
    view of the cluster map may lag the cluster's readiness by a poll)."""
    deadline = time.monotonic() + READY_DEADLINE_S
    for node_id in cluster.nodes:
        client = make_api(api, cluster, [node_id])
        try:
            while True:
                try:
                    try:
                        await client.make_bucket(bucket)
                    except CairnError as exc:
                        if getattr(exc, "code", "") not in BUCKET_EXISTS_CODES:
                            raise
                    await client.put(bucket, f"ready/{node_id}", os.urandom(1000))
                    await client.get(bucket, f"ready/{node_id}")
                    break
                except (CairnError, OSError, TimeoutError) as exc:
                    if time.monotonic() > deadline:
                        raise CairnError(f"{node_id} never became ready: {exc}") from exc
                    await asyncio.sleep(READY_PAUSE_S)  # poll a condition with a deadline
        finally:
            await client.close()


# -- load --------------------------------------------------------------------------------


class Mismatch(Exception):
    """A GET returned other bytes than were written."""


@dataclass
class _Tally:
    latencies_s: list[float] = field(default_factory=list)
    bytes_moved: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    mismatches: int = 0

    def figures(self, elapsed_s: float) -> dict[str, Any]:
        ops = len(self.latencies_s)
        return {
            "ops": ops,
            "errors": sum(self.errors.values()),
            "error_kinds": dict(self.errors.most_common(ERROR_SAMPLES_MAX)),
            "elapsed_s": elapsed_s,
            "ops_per_s": ops / elapsed_s if elapsed_s else 0.0,
            "mb_per_s": self.bytes_moved / elapsed_s / 1e6 if elapsed_s else 0.0,
            **summarize_ms(self.latencies_s),
        }


def _error_kind(exc: BaseException) -> str:
    code = getattr(exc, "code", "")
    return f"{type(exc).__name__}:{code}" if code else type(exc).__name__


async def drive(
    op: Callable[[int], Awaitable[int]], concurrency: int, seconds: float
) -> tuple[_Tally, float]:
    """Run `op(worker)` in `concurrency` tasks, each one request at a time, until
    `seconds` have passed; `op` returns the bytes it moved."""
    tally = _Tally()
    deadline = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                moved = await op(w)
            except Mismatch:
                tally.mismatches += 1
            except Exception as exc:
                tally.errors[_error_kind(exc)] += 1
            else:
                tally.latencies_s.append(time.perf_counter() - started)
                tally.bytes_moved += moved

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return tally, time.perf_counter() - started


@dataclass
class _Written:
    """Keys written and the SHA-256 of each, for verified reads."""

    digests: dict[str, bytes] = field(default_factory=dict)
    chunks: int = 0
    new_chunks: int = 0


async def put_objects(
    api: ObjectApi,
    maker: ObjectMaker,
    size_bytes: int,
    prefix: str,
    concurrency: int,
    seconds: float,
    written: _Written,
) -> tuple[_Tally, float]:
    sequence = [0] * concurrency

    async def put(w: int) -> int:
        key = f"{prefix}/w{w}/{sequence[w]}"
        sequence[w] += 1
        data, digest = maker.make(size_bytes)
        chunks, new_chunks = await api.put(BUCKET, key, data)
        written.digests[key] = digest
        written.chunks += chunks
        written.new_chunks += new_chunks
        return size_bytes

    return await drive(put, concurrency, seconds)


async def get_objects(
    api: ObjectApi,
    keys: Sequence[str],
    digests: dict[str, bytes],
    concurrency: int,
    seconds: float,
    rng: random.Random,
) -> tuple[_Tally, float]:
    async def get(_w: int) -> int:
        key = rng.choice(keys)
        data = await api.get(BUCKET, key)
        if hashlib.sha256(data).digest() != digests[key]:
            raise Mismatch(key)
        return len(data)

    return await drive(get, concurrency, seconds)


async def run_cell(
    api: ObjectApi,
    maker: ObjectMaker,
    size_bytes: int,
    concurrency: int,
    seconds: float,
    rng: random.Random,
) -> dict[str, Any]:
    written = _Written()
    prefix = f"s{size_bytes}/c{concurrency}"
    put_tally, put_elapsed = await put_objects(
        api, maker, size_bytes, prefix, concurrency, seconds, written
    )
    keys = sorted(written.digests)
    cell: dict[str, Any] = {
        "size_bytes": size_bytes,
        "size": format_size(size_bytes),
        "concurrency": concurrency,
        "put": {
            **put_tally.figures(put_elapsed),
            "chunks": written.chunks,
            "new_chunks": written.new_chunks,
            "dedup_hits": written.chunks - written.new_chunks,
        },
    }
    if not keys:
        cell["get"] = {**_Tally().figures(0.0), "verified": 0, "mismatches": 0}
        return cell
    get_tally, get_elapsed = await get_objects(
        api, keys, written.digests, concurrency, seconds, rng
    )
    cell["get"] = {
        **get_tally.figures(get_elapsed),
        "verified": len(get_tally.latencies_s),
        "mismatches": get_tally.mismatches,
    }
    return cell


async def _throughput(
    cluster: LocalCluster, config: ClusterBenchConfig, progress: Progress
) -> dict[str, Any]:
    rng = random.Random(os.urandom(16))
    maker = ObjectMaker(max(config.sizes_bytes), rng)
    progress(f"waiting for every gateway to serve the {config.api} API")
    await wait_gateways_ready(config.api, cluster, BUCKET)
    api = make_api(config.api, cluster)
    meta, pool = _meta_client(cluster)
    try:
        view = await meta.cluster_view()
        # Warm up connections, caches and the allocators before the first cell.
        await put_objects(api, maker, 64 * KiB, "warmup", 4, min(1.0, config.seconds), _Written())
        cells: list[dict[str, Any]] = []
        for size in config.sizes_bytes:
            for c in config.concurrency:
                progress(f"{format_size(size)} at concurrency {c}: put, then get, "
                         f"{config.seconds:g} s each")  # fmt: skip
                cell = await run_cell(api, maker, size, c, config.seconds, rng)
                progress(_cell_line(cell))
                cells.append(cell)
    finally:
        await api.close()
        await pool.close()
    return {
        "replica_count": view.config.replica_count,
        "partition_count": view.config.partition_count,
        "cells": cells,
    }


def _cell_line(cell: dict[str, Any]) -> str:
    put, get = cell["put"], cell["get"]
    return (
        f"  put {put['ops_per_s']:.1f} ops/s {put['mb_per_s']:.1f} MB/s p50 "
        f"{put['p50_ms']:.1f} ms p99 {put['p99_ms']:.1f} ms ({put['errors']} errors); "
        f"get {get['ops_per_s']:.1f} ops/s {get['mb_per_s']:.1f} MB/s p50 "
        f"{get['p50_ms']:.1f} ms p99 {get['p99_ms']:.1f} ms ({get['errors']} errors, "
        f"{get['mismatches']} mismatches)"
    )


# -- repair ------------------------------------------------------------------------------


def _meta_client(cluster: LocalCluster) -> tuple[MetaClient, RpcPool]:
    pool = RpcPool("bench-cluster-probe", derive_auth_key(cluster.secret))
    meta = MetaClient(pool, [n.rpc_address for n in cluster.voters], timeout=PROBE_TIMEOUT_S)
    return meta, pool


async def wait_for(check: Callable[[], Awaitable[bool]], deadline_s: float, what: str) -> float:
    """Poll `check` until it is true; return the seconds it took; raise on the deadline."""
    started = time.monotonic()
    while True:
        try:
            if await check():
                return time.monotonic() - started
        except (CairnError, OSError, TimeoutError):
            pass  # a node or the root leader is busy: look again
        if time.monotonic() - started > deadline_s:
            raise CairnError(f"timed out after {deadline_s:.0f} s waiting for {what}")
        await asyncio.sleep(POLL_S)  # poll a condition with a deadline


async def all_chunk_ids(pool: RpcPool, addresses: Sequence[str], partitions: int) -> set[bytes]:
    """Every chunk id any of `addresses` holds (`ChunkList` over every partition)."""
    ids: set[bytes] = set()
    every = list(range(partitions))
    for address in addresses:
        after = b""
        for _ in range(CHUNK_LIST_PAGES_MAX):
            request = ChunkList(partitions, every, after, CHUNK_LIST_LIMIT_MAX)
            reply, _ = await pool.call(address, request, ChunkListReply, timeout=PROBE_TIMEOUT_S)
            ids.update(reply.ids)
            if not reply.more or not reply.ids:
                break
            after = reply.ids[-1]
    return ids


async def missing_copies(pool: RpcPool, view: ClusterViewReply, ids: Iterable[bytes]) -> int:
    """Copies that are not where the current table wants them: for every chunk, each of
    its partition's R owners must be alive and hold it."""
    assert view.owners is not None
    count = view.config.partition_count
    members = {m.id: m for m in view.members}
    wanted: dict[str, list[bytes]] = defaultdict(list)
    missing = 0
    for chunk_id in ids:
        owners = view.owners[partition_of(chunk_id, count)]
        missing += max(0, view.config.replica_count - len(owners))
        for owner in owners:
            wanted[owner].append(chunk_id)
    for owner, chunk_ids in wanted.items():
        member = members.get(owner)
        if member is None or member.liveness != Liveness.ALIVE:
            missing += len(chunk_ids)
            continue
        for at in range(0, len(chunk_ids), CHUNK_HAS_IDS_MAX):
            batch = chunk_ids[at : at + CHUNK_HAS_IDS_MAX]
            reply, _ = await pool.call(
                member.address, ChunkHas(batch, False), ChunkHasReply, timeout=PROBE_TIMEOUT_S
            )
            missing += reply.present.count(False)
    return missing


async def _bytes_copied(pool: RpcPool, addresses: Sequence[str]) -> int:
    total = 0
    for address in addresses:
        reply, _ = await pool.call(address, RepairStatus(), RepairProgress, timeout=PROBE_TIMEOUT_S)
        total += reply.bytes_copied
    return total


@dataclass
class _Timeline:
    """Seconds from the kill to each milestone (None: not reached)."""

    down_s: float | None = None
    lost_s: float | None = None
    chunks_complete_s: float | None = None
    moves_done_s: float | None = None
    polls: int = 0

    def note(self, view: ClusterViewReply, victim_id: str, elapsed_s: float) -> None:
        victim = next((m for m in view.members if m.id == victim_id), None)
        liveness = victim.liveness if victim is not None else Liveness.LOST
        if self.down_s is None and liveness in (Liveness.DOWN, Liveness.LOST):
            self.down_s = elapsed_s
        if self.lost_s is None and liveness == Liveness.LOST:
            self.lost_s = elapsed_s
        placed = view.owners is not None and all(victim_id not in o for o in view.owners)
        if (
            self.moves_done_s is None
            and self.lost_s is not None
            and view.previous_owners is None
            and placed
        ):
            self.moves_done_s = elapsed_s

    @property
    def full_s(self) -> float | None:
        if self.chunks_complete_s is None or self.moves_done_s is None:
            return None
        return max(self.chunks_complete_s, self.moves_done_s)


async def watch_repair(
    meta: MetaClient,
    pool: RpcPool,
    victim_id: str,
    ids: set[bytes],
    killed_at: float,
    deadline_s: float,
) -> _Timeline:
    """Poll the cluster map and the owners' chunks from the kill until full replication."""
    timeline = _Timeline()
    while timeline.full_s is None:
        elapsed = time.monotonic() - killed_at
        if elapsed > deadline_s:
            break
        timeline.polls += 1
        try:
            view = await meta.cluster_view()
            timeline.note(view, victim_id, elapsed)
            if (
                timeline.lost_s is not None
                and timeline.chunks_complete_s is None
                and await missing_copies(pool, view, ids) == 0
            ):
                timeline.chunks_complete_s = time.monotonic() - killed_at
        except (CairnError, OSError, TimeoutError):
            pass  # the root leader or an owner is busy: look again
        await asyncio.sleep(POLL_S)  # poll a condition with a deadline
    return timeline


async def _settled(meta: MetaClient, members: int) -> bool:
    view = await meta.cluster_view()
    alive = sum(m.liveness == Liveness.ALIVE for m in view.members)
    return alive == members and view.previous_owners is None and view.owners is not None


async def _write_known_amount(
    api: ObjectApi, config: ClusterBenchConfig, rng: random.Random, progress: Progress
) -> _Written:
    written = _Written()
    maker = ObjectMaker(config.repair_object_bytes, rng)
    count = max(1, config.repair_mib * MiB // config.repair_object_bytes)
    queue = iter(range(count))

    async def writer() -> None:
        for n in queue:
            data, digest = maker.make(config.repair_object_bytes)
            chunks, new_chunks = await api.put(BUCKET, f"repair/{n}", data)
            written.digests[f"repair/{n}"] = digest
            written.chunks += chunks
            written.new_chunks += new_chunks

    progress(f"writing {count} objects of {format_size(config.repair_object_bytes)}")
    await asyncio.gather(*(writer() for _ in range(REPAIR_WRITE_CONCURRENCY)))
    return written


async def read_back(api: ObjectApi, digests: dict[str, bytes]) -> tuple[int, int]:
    """(verified, failed) over every object."""
    verified = failed = 0
    for key, digest in digests.items():
        try:
            data = await api.get(BUCKET, key)
        except Exception:  # counted, not raised: the figure is how many came back intact
            failed += 1
            continue
        if hashlib.sha256(data).digest() == digest:
            verified += 1
        else:
            failed += 1
    return verified, failed


async def _repair(
    cluster: LocalCluster, config: ClusterBenchConfig, progress: Progress
) -> dict[str, Any]:
    rng = random.Random(os.urandom(16))
    meta, pool = _meta_client(cluster)
    survivors = [n for n in cluster.nodes if n != REPAIR_VICTIM]
    api = make_api(config.api, cluster, survivors)
    try:
        progress("repair: waiting for 4 live members and a settled partition table")
        await wait_for(lambda: _settled(meta, REPAIR_NODES), SETTLE_DEADLINE_S, "a settled table")
        await wait_gateways_ready(config.api, cluster, BUCKET)
        written = await _write_known_amount(api, config, rng, progress)
        view = await meta.cluster_view()
        addresses = [n.rpc_address for n in cluster.nodes.values()]
        ids = await all_chunk_ids(pool, addresses, view.config.partition_count)

        async def replicated() -> bool:
            return await missing_copies(pool, await meta.cluster_view(), ids) == 0

        progress(f"repair: waiting for all {len(ids)} chunks to be on all owners")
        await wait_for(replicated, SETTLE_DEADLINE_S, "full replication before the kill")
        victim = cluster.nodes[REPAIR_VICTIM]
        held, _ = await pool.call(
            victim.rpc_address, ChunkStats(), ChunkStatsReply, timeout=PROBE_TIMEOUT_S
        )
        survivor_addresses = [cluster.nodes[n].rpc_address for n in survivors]
        copied_before = await _bytes_copied(pool, survivor_addresses)
        budget_s = max(
            REPAIR_DEADLINE_MIN_S, 4 * held.live_bytes / max(config.repair_bytes_per_s, 1)
        )
        progress(f"repair: kill -9 {REPAIR_VICTIM} holding {held.live_bytes / MiB:.1f} MiB in "
                 f"{held.chunk_count} chunks; watching for up to {budget_s:.0f} s")  # fmt: skip
        killed_at = time.monotonic()
        cluster.kill(REPAIR_VICTIM)
        timeline = await watch_repair(meta, pool, victim.member_id, ids, killed_at, budget_s)
        copied = await _bytes_copied(pool, survivor_addresses) - copied_before
        progress("repair: reading back every object")
        verified, failed = await read_back(api, written.digests)
    finally:
        await api.close()
        await pool.close()
    return _repair_figures(config, view, written, ids, held, timeline, copied, verified, failed)


def _repair_figures(
    config: ClusterBenchConfig,
    view: ClusterViewReply,
    written: _Written,
    ids: set[bytes],
    held: ChunkStatsReply,
    timeline: _Timeline,
    copied: int,
    verified: int,
    failed: int,
) -> dict[str, Any]:
    full = timeline.full_s
    lost = timeline.lost_s
    repair_window = full - lost if full is not None and lost is not None else None
    return {
        "nodes": REPAIR_NODES,
        "replica_count": view.config.replica_count,
        "partition_count": view.config.partition_count,
        "failure_detection": {k: float(v) for k, v in FAST_FAILURE_DETECTION.items()},
        "repair_bytes_per_s_per_node": config.repair_bytes_per_s,
        "objects": len(written.digests),
        "object_bytes": config.repair_object_bytes,
        "written_bytes": len(written.digests) * config.repair_object_bytes,
        "chunks": len(ids),
        "victim": REPAIR_VICTIM,
        "victim_chunks": held.chunk_count,
        "victim_bytes": held.live_bytes,
        "down_s": timeline.down_s,
        "lost_s": timeline.lost_s,
        "chunks_complete_s": timeline.chunks_complete_s,
        "moves_done_s": timeline.moves_done_s,
        "full_replication_s": full,
        "completed": full is not None,
        "bytes_copied": copied,
        "copy_mb_per_s": copied / repair_window / 1e6 if repair_window else None,
        "repair_seconds_after_lost": repair_window,
        "polls": timeline.polls,
        "readback_verified": verified,
        "readback_failed": failed,
    }


# -- the whole run -----------------------------------------------------------------------


def _base_dir(config: ClusterBenchConfig) -> AbstractContextManager[str]:
    if config.keep_dir is not None:
        config.keep_dir.mkdir(parents=True, exist_ok=True)
        return nullcontext(str(config.keep_dir))
    return tempfile.TemporaryDirectory(prefix="cairn-bench-cluster-")


def run_cluster_bench(
    config: ClusterBenchConfig, progress: Progress = lambda _: None
) -> dict[str, Any]:
    loop_name = install_event_loop_policy()
    defaults = CairnConfig()
    settings = dict(config.settings)
    result: dict[str, Any] = {
        "benchmark": "cluster",
        "config": {
            "nodes": config.nodes,
            "api": config.api,
            "sizes_bytes": list(config.sizes_bytes),
            "concurrency": list(config.concurrency),
            "seconds_per_cell": config.seconds,
            "fsync": settings.get("fsync", defaults.fsync),
            "compression": settings.get("compression", defaults.compression),
            "encryption": settings.get("encryption", defaults.encryption),
            "write_consistency": settings.get("write_consistency", defaults.write_consistency),
            "settings": settings,
            "load_generator": f"this process, one asyncio loop ({loop_name})",
            "cpu_count": os.cpu_count(),
            "load_average_at_start": os.getloadavg(),
        },
    }
    with _base_dir(config) as tmp:
        base = Path(tmp)
        if config.sizes_bytes and config.concurrency:
            progress(f"starting a {config.nodes}-node cluster in {base / 'throughput'}")
            with LocalCluster(base / "throughput", config.nodes, secret=SECRET, raft=True,
                              settings=settings) as cluster:  # fmt: skip
                throughput = asyncio.run(_throughput(cluster, config, progress))
            result["config"]["replica_count"] = throughput.pop("replica_count")
            result["config"]["partition_count"] = throughput.pop("partition_count")
            result["cells"] = throughput["cells"]
        if config.repair:
            repair_settings = {
                **settings,
                **FAST_FAILURE_DETECTION,
                "repair_bytes_per_s": str(config.repair_bytes_per_s),
            }
            progress(f"starting a {REPAIR_NODES}-node cluster in {base / 'repair'}")
            cluster = LocalCluster(base / "repair", REPAIR_NODES - 1, secret=SECRET, raft=True,
                                   settings=repair_settings)  # fmt: skip
            with cluster:
                cluster.add_node(REPAIR_VICTIM)
                result["repair"] = asyncio.run(_repair(cluster, config, progress))
    result["config"]["load_average_at_end"] = os.getloadavg()
    return result
