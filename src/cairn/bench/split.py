"""`cairn bench split`: what splitting an index shard costs the cluster's clients.

A 3-node cluster (automatic splits off) gets one shard filled with `keys` keys: index
commands with small inline manifests, sent straight through the metadata client,
`FILL_CONCURRENCY` at a time (no chunks: only the index is measured). Then `probes`
readers (HEAD at `lease` of keys already there) and `probes` writers (new keys) run
through three windows: `before` (the same length as the split took the last time, at
least `BASELINE_S`), `during` (from `SplitShard` until the directory shows the split
done), and `after` (as long as `before`). The split is proposed by hand at the shard's
middle key, as `cairn shard split` does, and carried out by the root leader.

Reported: the fill rate, the split's duration, the keys each half got, and the probes'
ops/s and latency (p50, p99, max) and errors per window. The `during` window holds the
cut of the range (every replica encodes the seed in `ShrinkRange`), the start of the new
group from the seed on every node, and its first election: the max latency there is the
stall a client sees.
"""

import asyncio
import itertools
import os
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cairn.bench.latency import summarize_ms
from cairn.localcluster import LocalCluster
from cairn.meta.buckets import VersioningState
from cairn.meta.directory import ShardInfo, SplitShard
from cairn.meta.manifest import Manifest, etag_of_bytes
from cairn.node.meta_client import MetaClient
from cairn.node.meta_messages import ShardSplitPoint, ShardSplitPointReply
from cairn.wire import RpcPool, derive_auth_key

SECRET = "cairn-bench-split-secret"
BUCKET = "bench-split"
FILL_CONCURRENCY = 64
BASELINE_S = 2.0
SPLIT_WAIT_S = 120.0
POLL_S = 0.01
VALUE = b"v" * 100
MANIFEST = Manifest(len(VALUE), etag_of_bytes(VALUE), 1.0, inline=VALUE)
WINDOWS = ("before", "during", "after")


@dataclass
class _Window:
    latencies_s: list[float] = field(default_factory=list)
    errors: int = 0
    started: float = 0.0
    ended: float = 0.0

    def summary(self) -> dict[str, Any]:
        elapsed = max(self.ended - self.started, 1e-9)
        return {
            "ops": len(self.latencies_s),
            "ops_per_s": round(len(self.latencies_s) / elapsed, 1),
            "errors": self.errors,
            "seconds": round(elapsed, 3),
            **{k: round(v, 2) for k, v in summarize_ms(self.latencies_s).items()},
        }


@dataclass
class _Probes:
    """Latency of each kind of probe per window; `window` names the one running now."""

    window: str = "before"
    stop: bool = False
    reads: dict[str, _Window] = field(default_factory=lambda: {w: _Window() for w in WINDOWS})
    writes: dict[str, _Window] = field(default_factory=lambda: {w: _Window() for w in WINDOWS})

    def begin(self, window: str) -> None:
        now = time.monotonic()
        if self.window != window:
            self.reads[self.window].ended = self.writes[self.window].ended = now
        self.window = window
        self.reads[window].started = self.writes[window].started = now

    def end(self) -> None:
        now = time.monotonic()
        self.reads[self.window].ended = self.writes[self.window].ended = now
        self.stop = True


def key_of(n: int) -> str:
    return f"k/{n:09d}"


async def _fill(meta: MetaClient, keys: int) -> float:
    numbers = iter(range(keys))

    async def worker() -> None:
        for n in numbers:
            await meta.put_object(BUCKET, key_of(n), MANIFEST, VersioningState.UNVERSIONED)

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(FILL_CONCURRENCY)))
    return keys / (time.monotonic() - started)


async def _probe(probes: _Probes, call: Callable[[], Any], windows: dict[str, _Window]) -> None:
    while not probes.stop:
        window = windows[probes.window]
        started = time.monotonic()
        try:
            await call()
        except Exception:  # an error is a measured outcome here
            window.errors += 1
            continue
        window.latencies_s.append(time.monotonic() - started)


async def _measure(
    meta: MetaClient, keys: int, probes_n: int, progress: Callable[[str], None]
) -> dict[str, Any]:
    progress(f"filling one shard with {keys} keys ...")
    fill_rate = await _fill(meta, keys)
    progress(f"filled at {fill_rate:.0f} keys/s; probing, then splitting ...")
    probes = _Probes()
    rng = random.Random(0)
    fresh = itertools.count(keys)

    async def read() -> None:
        await meta.head_object(BUCKET, key_of(rng.randrange(keys)))

    async def write() -> None:
        n = next(fresh)
        await meta.put_object(BUCKET, key_of(n), MANIFEST, VersioningState.UNVERSIONED)

    probes.begin("before")
    tasks = [asyncio.create_task(_probe(probes, read, probes.reads)) for _ in range(probes_n)]
    tasks += [asyncio.create_task(_probe(probes, write, probes.writes)) for _ in range(probes_n)]
    try:
        await asyncio.sleep(BASELINE_S)  # the baseline window
        shard = (await meta.directory(refresh=True)).shards[0]
        point, _ = await meta.call(shard.group_id, ShardSplitPoint(shard.group_id),
                                   ShardSplitPointReply)  # fmt: skip
        assert point.at is not None
        probes.begin("during")
        started = time.monotonic()
        child = await meta.propose_root(SplitShard(point.at), ShardInfo)
        while True:
            directory = await meta.directory(refresh=True)
            if not any(s.parent for s in directory.shards):
                break
            if time.monotonic() - started > SPLIT_WAIT_S:
                raise TimeoutError(f"the split was not carried out in {SPLIT_WAIT_S} s")
            await asyncio.sleep(POLL_S)  # polling the directory for the end of the split
        split_s = time.monotonic() - started
        probes.begin("after")
        await asyncio.sleep(max(BASELINE_S, split_s))  # the window after, as long
    finally:
        probes.end()
        await asyncio.gather(*tasks)
    stats = await meta.bucket_stats(BUCKET, "linearizable")
    return {
        "fill_keys_per_s": round(fill_rate, 1),
        "split_s": round(split_s, 3),
        "new_group": child.group_id,
        "keys_total": stats.objects,
        "reads": {w: probes.reads[w].summary() for w in WINDOWS},
        "writes": {w: probes.writes[w].summary() for w in WINDOWS},
    }


def run_split_bench(
    keys: int, probes: int, progress: Callable[[str], None] = lambda _m: None
) -> dict[str, Any]:
    config = {
        "nodes": 3,
        "keys": keys,
        "probes_per_kind": probes,
        "fill_concurrency": FILL_CONCURRENCY,
        "value_bytes": len(VALUE),
        "cpu_count": os.cpu_count(),
        "reads": "HEAD at lease of a random filled key",
        "writes": "PUT of a new key (index command only, inline manifest)",
    }
    settings = {"index_split_keys": "0", "index_balance_leaders": "false"}
    with (
        tempfile.TemporaryDirectory(prefix="cairn-bench-split-") as tmp,
        LocalCluster(
            Path(tmp) / "cairn", 3, secret=SECRET, raft=True, settings=settings
        ) as cluster,
    ):
        result = asyncio.run(_run(cluster, keys, probes, progress))
    return {"benchmark": "split", "config": config, "cairn": result}


async def _run(
    cluster: LocalCluster, keys: int, probes: int, progress: Callable[[str], None]
) -> dict[str, Any]:
    pool = RpcPool("bench-split", derive_auth_key(SECRET))
    try:
        meta = MetaClient(pool, [n.rpc_address for n in cluster.voters])
        return await _measure(meta, keys, probes, progress)
    finally:
        await pool.close()
