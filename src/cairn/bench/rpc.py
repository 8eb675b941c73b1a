"""`cairn bench rpc`: calls/s, MB/s and latency of the RPC layer against a real node.

The node runs in its own process (started by the local cluster harness), the load comes
from this process on one connection, so the figures include framing, checksums, the
handshake-authenticated session and both event loops, as a node-to-node call would.
Each call carries the payload to the node and back (Ping echoes it), so MB/s is counted
in each direction.
"""

import asyncio
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cairn.bench.latency import summarize_ms
from cairn.localcluster import LocalCluster
from cairn.runtime.event_loop import install_event_loop_policy
from cairn.wire import Ping, Pong, RpcConnection, derive_auth_key

SECRET = "bench-rpc-secret-0123456789"


@dataclass(frozen=True)
class RpcCase:
    payload_bytes: int
    concurrency: int


async def _run_case(
    connection: RpcConnection, case: RpcCase, seconds: float, calls_max: int
) -> dict[str, Any]:
    payload = bytes(case.payload_bytes)
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline and len(latencies) < calls_max:
            started = time.perf_counter()
            _, echoed = await connection.call(Ping(), Pong, payload, timeout=30)
            latencies.append(time.perf_counter() - started)
            assert len(echoed) == case.payload_bytes

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(case.concurrency)))
    elapsed = time.perf_counter() - started
    calls_per_s = len(latencies) / elapsed
    return {
        "payload_bytes": case.payload_bytes,
        "concurrency": case.concurrency,
        "calls": len(latencies),
        "calls_per_s": calls_per_s,
        "mb_per_s_each_way": calls_per_s * case.payload_bytes / 1e6,
        **summarize_ms(latencies),
    }


async def _bench(
    address: tuple[str, int],
    cases: list[RpcCase],
    seconds: float,
    calls_max: int,
    progress: Callable[[str], None],
) -> list[dict[str, Any]]:
    connection = await RpcConnection.open(
        address[0], address[1], node_id="bench", auth_key=derive_auth_key(SECRET)
    )
    try:
        await _run_case(connection, RpcCase(1024, 8), 0.3, 10_000)  # warm up
        results = []
        for case in cases:
            progress(f"rpc: {case.payload_bytes} B payload, concurrency {case.concurrency}")
            results.append(await _run_case(connection, case, seconds, calls_max))
        return results
    finally:
        connection.close()


def run_rpc_bench(
    cases: list[RpcCase],
    seconds: float = 3.0,
    calls_max: int = 1_000_000,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    loop_name = install_event_loop_policy()
    with (
        tempfile.TemporaryDirectory(prefix="cairn-bench-rpc-") as tmp,
        LocalCluster(Path(tmp), nodes=1, secret=SECRET) as cluster,
    ):
        node = cluster.nodes["node-1"]
        results = asyncio.run(
            _bench((node.host, node.rpc_port), cases, seconds, calls_max, progress)
        )
    return {
        "benchmark": "rpc",
        "config": {
            "seconds_per_case": seconds,
            "connection": "one authenticated TCP connection, 127.0.0.1, no TLS",
            "client_loop": loop_name,
            "server": "cairn server (separate process)",
        },
        "results": results,
    }
