"""`cairn bench lock`: the lock service against etcd 3.4's lock API and ZooKeeper 3.8's
Lock recipe (kazoo), on this machine, in one run.

Workloads, the same for the three systems (3 replicas each, fsync on):

- **contended**: `CONTENDED_CLIENTS` clients (each its own session and connection)
  acquire and release one name in a loop; acquire+release cycles/s and acquire latency.
- **uncontended**: `UNCONTENDED_NAMES` clients, one name each; the same figures.
- **failover**: a holder in its own process with a `TTL_S` lease (Cairn session, etcd
  lease kept alive, ZooKeeper session) is killed with SIGKILL while a waiter queues; the
  time from the kill to the waiter's grant. Cairn also reports the time from the holder's
  last acknowledged keep-alive, which must never be below the TTL.

Clients: Cairn through `cairn.client.locks.LockClient` (RPC); etcd through its JSON
gateway (`/v3/lease/grant`, `/v3/lock/lock`, `/v3/lock/unlock`); ZooKeeper through kazoo
(one client per name, spread over `ZK_PROCESSES` worker processes). Every system gets
`WARMUP_S` of the contended load before it is measured (ZooKeeper `ZK_WARMUP_S`). A
missing peer is reported and skipped; Cairn runs alone. `--cases` runs a subset of the
workloads (an A/B of the contended case alone: `--peer none --cases contended`).
"""

import asyncio
import json
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from cairn.bench.latency import summarize_ms
from cairn.bench.peers.etcd import EtcdCluster, b64, etcd_path
from cairn.bench.peers.zookeeper import ZooKeeperEnsemble, zookeeper_missing
from cairn.client.locks import LockClient
from cairn.localcluster import LocalCluster
from cairn.runtime.event_loop import install_event_loop_policy

SECRET = "cairn-bench-lock"
CONTENDED_CLIENTS = 8
UNCONTENDED_NAMES = 64
TTL_S = 2.0
THROUGHPUT_TTL_S = 30.0
FAILOVER_WAIT_S = 30.0
HOLD_BEFORE_KILL_S = 1.0
WARMUP_S = 5.0
"""Of the contended load, before it is measured (Cairn, etcd)."""
ZK_WARMUP_S = 20.0
"""ZooKeeper's JVM keeps getting faster for tens of seconds under load (8 clients: about
160/s in the first 5 s, 200-230/s after 5 s, 300-380/s after 20 s, measured here)."""

CASES = ("contended", "uncontended", "failover")
"""The workloads, in the order each system runs them (`--cases` picks a subset: an A/B
of the contended case alone takes a third of the time)."""

Cycle = Callable[[], Awaitable[float]]
"""One acquire+release; returns the acquire latency in seconds."""


async def _drive(cycles: list[Cycle], seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker(cycle: Cycle) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            try:
                latencies.append(await cycle())
            except Exception:
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in cycles))
    elapsed = time.perf_counter() - started
    return {
        "clients": len(cycles),
        "cycles": len(latencies),
        "errors": errors,
        "cycles_per_s": len(latencies) / elapsed,
        **{f"acquire_{k}": v for k, v in summarize_ms(latencies).items()},
    }


async def _throughput(
    system: str,
    contended: list[Cycle],
    uncontended: list[Cycle],
    seconds: float,
    cases: tuple[str, ...],
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """The contended and uncontended cases that `cases` names, after the warm-up (an
    asyncio load generator: Cairn and etcd)."""
    result: dict[str, Any] = {}
    if "contended" in cases or "uncontended" in cases:
        await _drive(contended, WARMUP_S)
    if "contended" in cases:
        progress(f"{system}: {CONTENDED_CLIENTS} clients on one name")
        result["contended"] = await _drive(contended, seconds)
    if "uncontended" in cases:
        progress(f"{system}: {UNCONTENDED_NAMES} names")
        result["uncontended"] = await _drive(uncontended, seconds)
    return result


# -- Cairn -----------------------------------------------------------------------------


async def _bench_cairn(
    cluster: LocalCluster, seconds: float, cases: tuple[str, ...], progress: Callable[[str], None]
) -> dict[str, Any]:
    addresses = [n.rpc_address for n in cluster.nodes.values()]
    clients = [
        LockClient(addresses, SECRET, ttl_s=THROUGHPUT_TTL_S, label=f"bench {i}")
        for i in range(UNCONTENDED_NAMES)
    ]
    try:
        await asyncio.gather(*(c.session() for c in clients))

        def cycle(client: LockClient, name: str) -> Cycle:
            async def run() -> float:
                started = time.perf_counter()
                held = await client.acquire(name)
                latency = time.perf_counter() - started
                await held.release()
                return latency

            return run

        result = await _throughput(
            "cairn",
            [cycle(c, "hot") for c in clients[:CONTENDED_CLIENTS]],
            [cycle(c, f"name-{i}") for i, c in enumerate(clients)],
            seconds,
            cases,
            progress,
        )
    finally:
        await asyncio.gather(*(c.close() for c in clients))
    if "failover" not in cases:
        return result
    progress("cairn: failover after kill -9 of a holder")
    cluster_json = str(cluster.write_cluster_json())
    waiter = LockClient.from_cluster_file(cluster_json, ttl_s=THROUGHPUT_TTL_S)

    async def wait() -> object:
        return await waiter.acquire("failover")

    try:
        result["failover"] = await _failover("cairn", [cluster_json], wait)
    finally:
        await waiter.close()
    return result


# -- etcd ------------------------------------------------------------------------------


async def _etcd_post(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> Any:
    async with session.post(url, data=json.dumps(body)) as response:
        data = await response.read()
        if response.status != 200:
            raise RuntimeError(f"etcd {url}: HTTP {response.status}: {data[:200]!r}")
        return json.loads(data)


async def _bench_etcd(
    etcd: EtcdCluster, seconds: float, cases: tuple[str, ...], progress: Callable[[str], None]
) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=UNCONTENDED_NAMES + 8)
    timeout = aiohttp.ClientTimeout(total=120)
    base = etcd.client_urls[0]
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        leases = [
            (await _etcd_post(session, base + "/v3/lease/grant", {"TTL": int(THROUGHPUT_TTL_S)}))[
                "ID"
            ]
            for _ in range(UNCONTENDED_NAMES)
        ]

        def cycle(lease: str, name: str) -> Cycle:
            async def run() -> float:
                started = time.perf_counter()
                body = {"name": b64(name.encode()), "lease": lease}
                locked = await _etcd_post(session, base + "/v3/lock/lock", body)
                latency = time.perf_counter() - started
                await _etcd_post(session, base + "/v3/lock/unlock", {"key": locked["key"]})
                return latency

            return run

        result = await _throughput(
            "etcd",
            [cycle(lease, "hot") for lease in leases[:CONTENDED_CLIENTS]],
            [cycle(lease, f"name-{i}") for i, lease in enumerate(leases)],
            seconds,
            cases,
            progress,
        )
        if "failover" not in cases:
            return result
        progress("etcd: failover after kill -9 of a holder")
        lease = (await _etcd_post(session, base + "/v3/lease/grant", {"TTL": 60}))["ID"]

        async def wait() -> object:
            body = {"name": b64(b"failover"), "lease": lease}
            return await _etcd_post(session, base + "/v3/lock/lock", body)

        result["failover"] = await _failover("etcd", [base], wait)
    return result


# -- ZooKeeper -------------------------------------------------------------------------


ZK_PROCESSES = CONTENDED_CLIENTS
"""kazoo is pure Python with a thread per client: its clients are spread over this many
worker processes, so that ZooKeeper is measured rather than one interpreter's GIL (in
one process, with threads, the contended case measured about half as fast)."""


def _zookeeper_worker(
    hosts: str, names: list[str], warmup_s: float, run_s: float, start: Any, out: Any
) -> None:
    """One worker process: a kazoo client per name, cycling its Lock recipe for `warmup_s`
    then `run_s` seconds from the moment `start` is set; puts the measured latencies."""
    from kazoo.client import KazooClient  # optional dependency (dev extra)

    clients = [KazooClient(hosts=hosts, timeout=THROUGHPUT_TTL_S) for _ in names]
    for client in clients:
        client.start(timeout=30)
    out.put("ready")
    start.wait()
    measure_from = time.perf_counter() + warmup_s
    deadline = measure_from + run_s
    latencies: list[float] = []
    errors = 0
    guard = threading.Lock()

    def cycle(client: Any, name: str) -> None:
        nonlocal errors
        recipe = client.Lock(f"/locks/{name}")
        while (now := time.perf_counter()) < deadline:
            try:
                recipe.acquire()
                latency = time.perf_counter() - now
                recipe.release()
            except Exception:
                with guard:
                    errors += 1
                continue
            if now >= measure_from:
                with guard:
                    latencies.append(latency)

    pairs = zip(clients, names, strict=True)
    threads = [threading.Thread(target=cycle, args=pair) for pair in pairs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for client in clients:
        client.stop()
        client.close()
    out.put((latencies, errors))


def _bench_zookeeper(
    zk: ZooKeeperEnsemble, seconds: float, cases: tuple[str, ...], progress: Callable[[str], None]
) -> dict[str, Any]:
    import multiprocessing

    context = multiprocessing.get_context("spawn")

    def drive(names: list[str], warmup_s: float) -> dict[str, Any]:
        shares = [names[k::ZK_PROCESSES] for k in range(ZK_PROCESSES)]
        start = context.Event()
        out = context.Queue()
        workers = [
            context.Process(
                target=_zookeeper_worker, args=(zk.hosts, share, warmup_s, seconds, start, out)
            )
            for share in shares
            if share
        ]
        for worker in workers:
            worker.start()
        try:
            for _ in workers:
                assert out.get(timeout=120) == "ready"
            start.set()
            reports = [out.get(timeout=warmup_s + seconds + 120) for _ in workers]
        finally:
            for worker in workers:
                worker.join(timeout=30)
                if worker.is_alive():
                    worker.kill()
        latencies = [latency for report in reports for latency in report[0]]
        return {
            "clients": len(names),
            "cycles": len(latencies),
            "errors": sum(report[1] for report in reports),
            "cycles_per_s": len(latencies) / seconds,
            **{f"acquire_{k}": v for k, v in summarize_ms(latencies).items()},
        }

    result: dict[str, Any] = {}
    warm = f"after a {ZK_WARMUP_S:g} s warm-up"
    if "contended" in cases:
        progress(f"zookeeper: {CONTENDED_CLIENTS} clients on one name ({warm})")
        result["contended"] = drive(["hot"] * CONTENDED_CLIENTS, ZK_WARMUP_S)
    if "uncontended" in cases:
        progress(f"zookeeper: {UNCONTENDED_NAMES} names")
        warmup_s = 0.5 if "contended" in cases else ZK_WARMUP_S  # the JVM is warm by then
        result["uncontended"] = drive([f"name-{i}" for i in range(UNCONTENDED_NAMES)], warmup_s)
    if "failover" not in cases:
        return result
    progress("zookeeper: failover after kill -9 of a holder")
    from kazoo.client import KazooClient

    client = KazooClient(hosts=zk.hosts, timeout=THROUGHPUT_TTL_S)
    client.start(timeout=30)
    try:
        recipe = client.Lock("/locks/failover")

        async def wait() -> object:
            return await asyncio.to_thread(recipe.acquire)

        result["failover"] = asyncio.run(_failover("zookeeper", [zk.hosts], wait))
        recipe.release()
    finally:
        client.stop()
        client.close()
    return result


# -- failover (a holder process killed with SIGKILL) ------------------------------------


async def _failover(
    system: str, args: list[str], wait: Callable[[], Awaitable[object]]
) -> dict[str, Any]:
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from cairn.bench.lock import hold_main; hold_main()",
        system,
        *args,
        stdout=asyncio.subprocess.PIPE,
    )
    assert holder.stdout is not None
    try:
        line = (await asyncio.wait_for(holder.stdout.readline(), FAILOVER_WAIT_S)).decode()
        if not line.startswith("granted"):
            return {"error": f"holder did not get the lock: {line!r}"}
        waiting = asyncio.ensure_future(wait())
        await asyncio.sleep(HOLD_BEFORE_KILL_S)  # the waiter queues; keep-alives go on
        if waiting.done():
            return {"error": "the waiter got the lock while the holder was alive"}
        holder.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        rest = (await holder.stdout.read()).decode()
        await holder.wait()
        await asyncio.wait_for(waiting, FAILOVER_WAIT_S)
        granted = time.monotonic()
        out: dict[str, Any] = {"ttl_s": TTL_S, "after_kill_s": granted - killed}
        keepalives = [float(w.split()[1]) for w in rest.splitlines() if w.startswith("ka ")]
        if keepalives:
            out["after_last_keepalive_s"] = granted - max(keepalives)
        return out
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()


def hold_main() -> None:
    """The holder process of `_failover`: take "failover", say so, hold until killed."""
    system, target = sys.argv[1], sys.argv[2]

    def say(text: str) -> None:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    if system == "cairn":

        async def cairn() -> None:
            client = LockClient.from_cluster_file(target, ttl_s=TTL_S)
            await client.acquire("failover")
            say("granted")
            seen = 0.0
            while True:
                if client.last_keepalive_sent != seen:
                    seen = client.last_keepalive_sent
                    say(f"ka {seen}")
                await asyncio.sleep(0.01)  # reporting keep-alives until killed

        asyncio.run(cairn())
    elif system == "etcd":

        async def etcd() -> None:
            async with aiohttp.ClientSession() as session:
                grant = await _etcd_post(session, target + "/v3/lease/grant", {"TTL": int(TTL_S)})
                body = {"name": b64(b"failover"), "lease": grant["ID"]}
                await _etcd_post(session, target + "/v3/lock/lock", body)
                say("granted")
                while True:
                    sent = time.monotonic()
                    await _etcd_post(session, target + "/v3/lease/keepalive", {"ID": grant["ID"]})
                    say(f"ka {sent}")
                    await asyncio.sleep(TTL_S / 3)  # the keep-alive period

        asyncio.run(etcd())
    else:
        from kazoo.client import KazooClient

        client = KazooClient(hosts=target, timeout=TTL_S)
        client.start(timeout=30)
        client.Lock("/locks/failover").acquire()
        say("granted")
        threading.Event().wait()


# -- the run ---------------------------------------------------------------------------


def _ratios(result: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    ours = result["cairn"]
    for peer in ("etcd", "zookeeper"):
        theirs = result.get(peer) or {}
        if not theirs.get("available"):
            continue
        for kind in ("contended", "uncontended"):
            if kind not in ours or kind not in theirs:
                continue
            out[f"{kind}_cycles_vs_{peer}"] = ours[kind]["cycles_per_s"] / max(
                theirs[kind]["cycles_per_s"], 1e-9
            )
    return out


def run_lock_bench(
    seconds: float = 5.0,
    peers: tuple[str, ...] = ("etcd", "zookeeper"),
    progress: Callable[[str], None] = lambda _: None,
    cases: tuple[str, ...] = CASES,
) -> dict[str, Any]:
    loop_name = install_event_loop_policy()
    result: dict[str, Any] = {
        "benchmark": "lock",
        "config": {
            "replicas": 3,
            "fsync": "on in all three systems",
            "contended_clients": CONTENDED_CLIENTS,
            "uncontended_names": UNCONTENDED_NAMES,
            "failover_ttl_s": TTL_S,
            "seconds_per_case": seconds,
            "cases": [c for c in CASES if c in cases],
            "contended_warmup_s": {"cairn": WARMUP_S, "etcd": WARMUP_S, "zookeeper": ZK_WARMUP_S},
            "load_generator": f"Cairn and etcd: one process, asyncio ({loop_name}); "
            f"kazoo: {ZK_PROCESSES} processes, a thread per client",
            "cpu_count": os.cpu_count(),
            "load_average_at_start": os.getloadavg(),
        },
    }
    with tempfile.TemporaryDirectory(prefix="cairn-bench-lock-") as tmp:
        with LocalCluster(Path(tmp) / "cairn", 3, secret=SECRET, raft=True) as cluster:
            result["cairn"] = asyncio.run(_bench_cairn(cluster, seconds, cases, progress))
        if "etcd" in peers:
            if etcd_path() is None:
                result["etcd"] = {"available": False, "reason": "etcd not installed"}
                progress("etcd is not installed (apt-get install etcd-server): skipped")
            else:
                with EtcdCluster(Path(tmp) / "etcd") as etcd:
                    data = asyncio.run(_bench_etcd(etcd, seconds, cases, progress))
                    result["etcd"] = {"available": True, **data}
        if "zookeeper" in peers:
            missing = zookeeper_missing()
            if missing is not None:
                result["zookeeper"] = {"available": False, "reason": missing}
                progress(f"{missing}: skipped")
            else:
                with ZooKeeperEnsemble(Path(tmp) / "zookeeper") as zk:
                    result["zookeeper"] = {
                        "available": True,
                        **_bench_zookeeper(zk, seconds, cases, progress),
                    }
    result["ratios"] = _ratios(result)
    return result
