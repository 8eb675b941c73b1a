"""`cairn bench raft`: a 3-node Cairn Raft group against a 3-member etcd, one load
generator driving both in the same run.

Both run on this machine on loopback with fsync on (Cairn's WAL and etcd's WAL fsync
before acknowledging). Writes put 256-byte values under distinct keys; reads are
linearizable (Cairn: ReadIndex; etcd: its default range read). Concurrency c means c
tasks, each waiting for its reply before the next request. Cairn is reached over its RPC
(one connection to the leader); etcd over its HTTP JSON gateway (keep-alive, one
connection per task) on its leader, as ../shared/PEERS.md measured it.
"""

import asyncio
import json
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from cairn.bench.latency import summarize_ms
from cairn.bench.peers.etcd import EtcdCluster, b64, etcd_path
from cairn.localcluster import LocalCluster
from cairn.raft.kv_client import KvClient
from cairn.runtime.event_loop import install_event_loop_policy

SECRET = "bench-raft-secret-0123456"
VALUE_BYTES = 256

Op = Callable[[int, int], Awaitable[None]]  # (worker, sequence) -> one request


async def _drive(op: Op, concurrency: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        nonlocal errors
        n = 0
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                await op(w, n)
            except Exception:
                errors += 1
            else:
                latencies.append(time.perf_counter() - started)
            n += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {
        "concurrency": concurrency,
        "ops": len(latencies),
        "errors": errors,
        "ops_per_s": len(latencies) / elapsed,
        **summarize_ms(latencies),
    }


async def _bench_cairn(
    cluster: LocalCluster, concurrency: list[int], seconds: float, progress: Callable[[str], None]
) -> dict[str, Any]:
    client = KvClient([n.rpc_address for n in cluster.nodes.values()], SECRET)
    value = os.urandom(VALUE_BYTES)
    try:
        await client.put(b"warmup", value, timeout=30)

        async def put(w: int, n: int) -> None:
            await client.put(b"key-%d-%d" % (w, n), value)

        async def get(w: int, n: int) -> None:
            await client.get(b"key-%d-%d" % (w, n // 2), "linearizable")

        await _drive(put, 8, min(1.0, seconds))  # warm up connections and caches
        writes, reads = [], []
        for c in concurrency:
            progress(f"cairn: writes at concurrency {c}")
            writes.append(await _drive(put, c, seconds))
        for c in concurrency:
            progress(f"cairn: linearizable reads at concurrency {c}")
            reads.append(await _drive(get, c, seconds))
        return {"writes": writes, "reads": reads, "redirects": client.redirects}
    finally:
        await client.close()


async def _etcd_leader_url(session: aiohttp.ClientSession, urls: list[str]) -> str:
    for url in urls:
        async with session.post(url + "/v3/maintenance/status", data="{}") as response:
            status = json.loads(await response.read())
            if status.get("leader") == status.get("header", {}).get("member_id"):
                return url
    return urls[0]


async def _bench_etcd(
    etcd: EtcdCluster, concurrency: list[int], seconds: float, progress: Callable[[str], None]
) -> dict[str, Any]:
    value = b64(os.urandom(VALUE_BYTES))
    connector = aiohttp.TCPConnector(limit=max(concurrency) + 4)
    async with aiohttp.ClientSession(connector=connector) as session:
        base = await _etcd_leader_url(session, etcd.client_urls)

        async def put(w: int, n: int) -> None:
            body = json.dumps({"key": b64(b"key-%d-%d" % (w, n)), "value": value})
            async with session.post(base + "/v3/kv/put", data=body) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"etcd put: HTTP {response.status}")

        async def get(w: int, n: int) -> None:
            body = json.dumps({"key": b64(b"key-%d-%d" % (w, n // 2))})
            async with session.post(base + "/v3/kv/range", data=body) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"etcd range: HTTP {response.status}")

        await _drive(put, 8, min(1.0, seconds))
        writes, reads = [], []
        for c in concurrency:
            progress(f"etcd: writes at concurrency {c}")
            writes.append(await _drive(put, c, seconds))
        for c in concurrency:
            progress(f"etcd: linearizable reads at concurrency {c}")
            reads.append(await _drive(get, c, seconds))
        return {"writes": writes, "reads": reads}


def _ratios(cairn: dict[str, Any], etcd: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind in ("writes", "reads"):
        for ours, theirs in zip(cairn[kind], etcd[kind], strict=True):
            c = ours["concurrency"]
            out[f"{kind}_c{c}_ops_ratio"] = ours["ops_per_s"] / max(theirs["ops_per_s"], 1e-9)
            out[f"{kind}_c{c}_p50_ratio"] = ours["p50_ms"] / max(theirs["p50_ms"], 1e-9)
    return out


def run_raft_bench(
    concurrency: list[int],
    seconds: float = 5.0,
    peer: str = "etcd",
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    loop_name = install_event_loop_policy()
    result: dict[str, Any] = {
        "benchmark": "raft",
        "config": {
            "nodes": 3,
            "fsync": "on (every acknowledged write is fsynced on a quorum)",
            "value_bytes": VALUE_BYTES,
            "seconds_per_case": seconds,
            "load_generator": f"one process, asyncio ({loop_name})",
            "cpu_count": os.cpu_count(),
            "load_average_at_start": os.getloadavg(),
        },
    }
    with tempfile.TemporaryDirectory(prefix="cairn-bench-raft-") as tmp:
        with LocalCluster(Path(tmp) / "cairn", 3, secret=SECRET, raft=True) as cluster:
            result["cairn"] = asyncio.run(_bench_cairn(cluster, concurrency, seconds, progress))
        if peer == "etcd":
            if etcd_path() is None:
                result["etcd"] = {"available": False, "reason": "etcd not installed"}
                progress("etcd is not installed (apt-get install etcd-server): running alone")
            else:
                with EtcdCluster(Path(tmp) / "etcd") as etcd:
                    result["etcd"] = {
                        "available": True,
                        **asyncio.run(_bench_etcd(etcd, concurrency, seconds, progress)),
                    }
                result["ratio_cairn_to_etcd"] = _ratios(result["cairn"], result["etcd"])
    return result
