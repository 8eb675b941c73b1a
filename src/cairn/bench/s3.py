"""`cairn bench s3`: PUT and GET throughput and latency of any S3 endpoint, by object size
and concurrency, with every GET verified; and the same workload against OpenStack Swift
(s3api) in the same run, with the ratios.

Why it is built this way:

- **Its own load generator.** One asyncio loop (uvloop) in this process, aiohttp for
  HTTP/1.1 with keep-alive (one connection per concurrent client), and a SigV4 signer
  built from the gateway's own pure `cairn.gateway.s3.sigv4` (the canonical request,
  string to sign and signing key; the key is derived once a day). A real S3 client
  library would spend more CPU per request than the servers under test on this 2-core
  machine; the generator's CPU is measured for every phase (`client_cores`, and its
  share of the machine's busy time) so a reader can see that it is not the bottleneck.
- **Signed payloads.** Every PUT carries `x-amz-content-sha256` with the body's SHA-256
  (what the aws cli and boto3 send over plain http), so both servers verify it; the
  generator gets that digest for free, since it keeps it to verify GETs anyway.
- **Unique content.** Each PUT stores a fresh object (`cluster.ObjectMaker`: a slice of
  an incompressible pool stamped with a unique token every 16 KiB), so neither dedup nor
  compression flatters Cairn.
- **Cells of fixed time.** For each size and concurrency c, c tasks PUT distinct keys
  for `seconds`, then GET keys chosen at random among those just written for the same
  time. Each task waits for its reply before its next request. Every GET body is
  streamed through SHA-256 and compared with what was written (length and digest); a
  difference is a mismatch, counted apart from errors. Every worker loop stops at the
  deadline or after `OPS_PER_WORKER_MAX` requests, and every request has a timeout.
- **One system at a time.** The subject (an endpoint given by flags, or a 3-node
  `LocalCluster` the bench starts, as `cairn up` does) runs its cells and is stopped
  before Swift starts, so neither competes with the other for the two cores.
- **Every gateway serves.** Swift's proxy runs a worker process per core behind one
  port; a Cairn node runs one gateway process, and every node is a gateway. So the
  clients are spread over all of the system's endpoints (client `w` on endpoint
  `w mod n`), as DNS round robin would spread them: with node-1 alone serving, its one
  process was the bottleneck at c=64 (about one core busy, the others idle).
"""

import asyncio
import hashlib
import os
import random
import re
import resource
import secrets
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp

from cairn.bench.cluster import ObjectMaker, format_size
from cairn.bench.latency import summarize_ms
from cairn.bench.peers.swift import SwiftAllInOne, SwiftUnavailable
from cairn.config import CairnConfig
from cairn.gateway.s3.sigv4 import (
    ALGORITHM,
    SERVICE,
    Credential,
    RequestView,
    SignedClaim,
    canonical_request,
    sign,
    signing_key,
    string_to_sign,
    uri_encode,
)
from cairn.localcluster import LocalCluster
from cairn.runtime.event_loop import install_event_loop_policy

__all__ = ["S3BenchConfig", "S3Target", "Signer", "run_s3_bench"]

KiB = 1024
MiB = 1024 * KiB
SECRET = "bench-s3-secret-0123456789abcdef"
DEFAULT_REGION = "us-east-1"
Peer = Literal["swift", "none"]

REQUEST_TIMEOUT_S = 300.0
"""A 16 MiB request at c=64 on a slow server still finishes well inside this."""
OPS_PER_WORKER_MAX = 1_000_000
READY_DEADLINE_S = 60.0
READY_PAUSE_S = 0.2
WARMUP_BYTES = 64 * KiB
WARMUP_CONCURRENCY = 4
WARMUP_SECONDS_MAX = 1.0
ERROR_SAMPLES_MAX = 5
ERROR_BODY_BYTES_MAX = 4096
SIGNED_HEADERS = ("host", "x-amz-content-sha256", "x-amz-date")
_ERROR_CODE = re.compile(rb"<Code>([^<]{1,64})</Code>")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class S3Target:
    name: str
    endpoint: str
    access_key: str
    secret_key: str
    region: str = DEFAULT_REGION
    more_endpoints: tuple[str, ...] = ()
    """Further gateways of the same system: concurrent client `w` talks to endpoint
    `w mod n`, as DNS round robin or a client-side balancer would spread them."""

    @property
    def endpoints(self) -> tuple[str, ...]:
        return (self.endpoint, *self.more_endpoints)


@dataclass(frozen=True)
class S3BenchConfig:
    target: S3Target | None = None
    """None: start a 3-node Cairn cluster and measure its S3 endpoint."""
    name: str = "cairn"
    peer: Peer = "swift"
    sizes_bytes: tuple[int, ...] = (4 * KiB, 1 * MiB, 16 * MiB)
    concurrency: tuple[int, ...] = (1, 16, 64)
    seconds: float = 5.0


# -- signing -------------------------------------------------------------------------------


class Signer:
    """SigV4 header signing (`Authorization`, `x-amz-date`, `x-amz-content-sha256`) over
    the gateway's pure canonicalisation; the signing key is cached per UTC date."""

    def __init__(self, access_key: str, secret_key: str, region: str, host: str) -> None:
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region
        self.host = host
        self._keys: dict[str, bytes] = {}

    def headers(self, method: str, path: str, payload_sha256: str, now_s: float) -> dict[str, str]:
        """Headers that sign `method path` (path already URI-encoded, no query)."""
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now_s))
        credential = Credential(self.access_key, amz_date[:8], self.region, SERVICE)
        key = self._keys.get(credential.date)
        if key is None:
            self._keys = {credential.date: signing_key(self.secret_key, credential)}
            key = self._keys[credential.date]
        headers = {
            "host": self.host,
            "x-amz-content-sha256": payload_sha256,
            "x-amz-date": amz_date,
        }
        view = RequestView(method, path, (), list(headers.items()))
        claim = SignedClaim(credential, SIGNED_HEADERS, "", amz_date, now_s, payload_sha256)
        text = string_to_sign(amz_date, credential.scope, canonical_request(view, claim, path))
        headers["authorization"] = (
            f"{ALGORITHM} Credential={self.access_key}/{credential.scope}, "
            f"SignedHeaders={';'.join(SIGNED_HEADERS)}, Signature={sign(key, text)}"
        )
        return headers


# -- the client ----------------------------------------------------------------------------


class S3Failure(Exception):
    """A reply other than the one expected; `kind` is `HTTP <status> <S3 code>`."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class Mismatch(Exception):
    """A GET returned other bytes than were written."""


EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True)
class _Route:
    """One endpoint: its base URL, path prefix and signer (the Host header is signed)."""

    base: str
    prefix: str
    signer: Signer

    @classmethod
    def of(cls, endpoint: str, target: S3Target) -> "_Route":
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"not an http(s) endpoint: {endpoint!r}")
        signer = Signer(target.access_key, target.secret_key, target.region, parts.netloc)
        return cls(f"{parts.scheme}://{parts.netloc}", parts.path.rstrip("/"), signer)


class S3Client:
    """PUT bucket, PUT object and verified GET object, path-style, over keep-alive; the
    `worker` argument picks the endpoint (`worker mod` the number of endpoints)."""

    def __init__(self, target: S3Target, connections_max: int) -> None:
        self._routes = [_Route.of(endpoint, target) for endpoint in target.endpoints]
        self.base = self._routes[0].base
        connector = aiohttp.TCPConnector(limit=connections_max, limit_per_host=connections_max)
        self.session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
        )

    def _signed(
        self, method: str, worker: int, bucket: str, key: str, payload_sha256: str
    ) -> tuple[str, dict[str, str]]:
        """The URL and signed headers of `method` on `bucket/key` via the worker's endpoint."""
        route = self._routes[worker % len(self._routes)]
        raw = f"{route.prefix}/{bucket}" + (f"/{key}" if key else "")
        path = uri_encode(raw.encode(), keep_slash=True)
        return route.base + path, route.signer.headers(method, path, payload_sha256, time.time())

    async def _fail(self, response: aiohttp.ClientResponse) -> S3Failure:
        body = await response.content.read(ERROR_BODY_BYTES_MAX)
        match = _ERROR_CODE.search(body)
        code = match.group(1).decode(errors="replace") if match else ""
        return S3Failure(f"HTTP {response.status} {code}".strip())

    async def create_bucket(self, bucket: str) -> None:
        url, headers = self._signed("PUT", 0, bucket, "", EMPTY_SHA256)
        async with self.session.put(url, headers=headers, data=b"") as response:
            if response.status == 200:
                await response.read()
                return
            failure = await self._fail(response)
            if "BucketAlreadyOwnedByYou" not in failure.kind:
                raise failure

    async def put(
        self, bucket: str, key: str, data: bytes, sha256_hex: str, worker: int = 0
    ) -> None:
        url, headers = self._signed("PUT", worker, bucket, key, sha256_hex)
        async with self.session.put(url, headers=headers, data=data) as response:
            if response.status != 200:
                raise await self._fail(response)
            await response.read()

    async def get_verified(
        self, bucket: str, key: str, size: int, digest: bytes, worker: int = 0
    ) -> int:
        """GET and compare every byte (length and SHA-256); return the bytes read."""
        url, headers = self._signed("GET", worker, bucket, key, EMPTY_SHA256)
        async with self.session.get(url, headers=headers) as response:
            if response.status != 200:
                raise await self._fail(response)
            hasher = hashlib.sha256()
            received = 0
            async for piece in response.content.iter_any():
                received += len(piece)
                hasher.update(piece)
        if received != size or hasher.digest() != digest:
            raise Mismatch(key)
        return received

    async def close(self) -> None:
        await self.session.close()


# -- measuring -----------------------------------------------------------------------------


def _machine_busy_s() -> float:
    """CPU-seconds every core has spent busy since boot (/proc/stat)."""
    with open("/proc/stat") as file:
        fields = [int(v) for v in file.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class _Tally:
    latencies_s: list[float] = field(default_factory=list)
    bytes_moved: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    mismatches: int = 0


async def drive(
    op: Callable[[int], Awaitable[int]], concurrency: int, seconds: float
) -> dict[str, Any]:
    """Run `op(worker)` in `concurrency` tasks, each one request at a time, until `seconds`
    have passed; `op` returns the bytes it moved. Figures include the generator's CPU."""
    tally = _Tally()
    deadline = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        for _ in range(OPS_PER_WORKER_MAX):
            if time.perf_counter() >= deadline:
                return
            started = time.perf_counter()
            try:
                moved = await op(w)
            except Mismatch:
                tally.mismatches += 1
            except S3Failure as exc:
                tally.errors[exc.kind] += 1
            except Exception as exc:  # counted: the figure is how many requests succeeded
                tally.errors[type(exc).__name__] += 1
            else:
                tally.latencies_s.append(time.perf_counter() - started)
                tally.bytes_moved += moved

    cpu0, busy0, started = _self_cpu_s(), _machine_busy_s(), time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    elapsed = time.perf_counter() - started
    client_cores = (_self_cpu_s() - cpu0) / elapsed
    busy_cores = (_machine_busy_s() - busy0) / elapsed
    ops = len(tally.latencies_s)
    mb_per_s = tally.bytes_moved / elapsed / 1e6
    return {
        "ops": ops,
        "errors": sum(tally.errors.values()),
        "error_kinds": dict(tally.errors.most_common(ERROR_SAMPLES_MAX)),
        "mismatches": tally.mismatches,
        "elapsed_s": elapsed,
        "ops_per_s": ops / elapsed,
        "mb_per_s": mb_per_s,
        **summarize_ms(tally.latencies_s),
        "client_cores": client_cores,
        "machine_busy_cores": busy_cores,
        "client_share_of_busy": client_cores / busy_cores if busy_cores > 0 else 0.0,
        # What a byte costs the whole machine (servers and this generator): with every
        # core busy, the inverse of this bounds MB/s whatever the concurrency.
        "machine_cpu_ms_per_mb": busy_cores * 1000 / mb_per_s if mb_per_s > 0 else 0.0,
    }


@dataclass
class _Written:
    """Keys written in a cell, with each object's size and SHA-256."""

    objects: dict[str, tuple[int, bytes]] = field(default_factory=dict)


async def run_cell(
    client: S3Client,
    bucket: str,
    maker: ObjectMaker,
    size_bytes: int,
    concurrency: int,
    seconds: float,
    rng: random.Random,
) -> dict[str, Any]:
    written = _Written()
    prefix = f"s{size_bytes}/c{concurrency}"
    sequence = [0] * concurrency

    async def put(w: int) -> int:
        key = f"{prefix}/w{w}/{sequence[w]}"
        sequence[w] += 1
        data, digest = maker.make(size_bytes)
        await client.put(bucket, key, data, digest.hex(), w)
        written.objects[key] = (size_bytes, digest)
        return size_bytes

    put_figures = await drive(put, concurrency, seconds)
    keys = sorted(written.objects)

    async def get(w: int) -> int:
        key = rng.choice(keys)
        size, digest = written.objects[key]
        return await client.get_verified(bucket, key, size, digest, w)

    if keys:
        get_figures = await drive(get, concurrency, seconds)
    else:  # every PUT failed: nothing to read
        get_figures = {
            **put_figures,
            "ops": 0,
            "errors": 0,
            "error_kinds": {},
            "ops_per_s": 0.0,
            "mb_per_s": 0.0,
            "machine_cpu_ms_per_mb": 0.0,
            **summarize_ms([]),
            "skipped": "no object was written",
        }
    get_figures["verified"] = get_figures["ops"]
    return {
        "size_bytes": size_bytes,
        "size": format_size(size_bytes),
        "concurrency": concurrency,
        "put": put_figures,
        "get": get_figures,
    }


def cell_line(name: str, cell: dict[str, Any]) -> str:
    put, get = cell["put"], cell["get"]
    return (
        f"  {name} {cell['size']} c{cell['concurrency']}: put {put['ops_per_s']:.1f} ops/s "
        f"{put['mb_per_s']:.1f} MB/s p50 {put['p50_ms']:.1f} p99 {put['p99_ms']:.1f} ms "
        f"({put['errors']} errors, client {put['client_cores']:.2f} of "
        f"{put['machine_busy_cores']:.2f} busy cores, {put['machine_cpu_ms_per_mb']:.1f} ms "
        f"CPU/MB); get {get['ops_per_s']:.1f} ops/s "
        f"{get['mb_per_s']:.1f} MB/s p50 {get['p50_ms']:.1f} p99 {get['p99_ms']:.1f} ms "
        f"({get['errors']} errors, {get['mismatches']} mismatches, client "
        f"{get['client_cores']:.2f} of {get['machine_busy_cores']:.2f} busy cores)"
    )


async def wait_bucket(client: S3Client, bucket: str) -> None:
    """Create `bucket`, retrying until the endpoint answers (a fresh cluster or Swift may
    need a moment before its first S3 request succeeds); then one verified round trip."""
    deadline = time.monotonic() + READY_DEADLINE_S
    data = os.urandom(1000)
    digest = hashlib.sha256(data).digest()
    while True:
        try:
            await client.create_bucket(bucket)
            await client.put(bucket, "ready", data, digest.hex())
            await client.get_verified(bucket, "ready", len(data), digest)
            return
        except (S3Failure, Mismatch, aiohttp.ClientError, OSError, TimeoutError) as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{client.base} not ready: {exc!r}") from exc
        await asyncio.sleep(READY_PAUSE_S)  # poll a condition with a deadline


async def bench_target(
    target: S3Target, config: S3BenchConfig, maker: ObjectMaker, progress: Progress
) -> dict[str, Any]:
    rng = random.Random(os.urandom(16))
    bucket = f"cairn-bench-{secrets.token_hex(4)}"
    client = S3Client(target, max(max(config.concurrency, default=1), WARMUP_CONCURRENCY))
    try:
        progress(f"{target.name}: creating bucket {bucket} at {target.endpoint}")
        await wait_bucket(client, bucket)
        warm = min(WARMUP_SECONDS_MAX, config.seconds)
        await run_cell(client, bucket, maker, WARMUP_BYTES, WARMUP_CONCURRENCY, warm, rng)
        cells: list[dict[str, Any]] = []
        for size in config.sizes_bytes:
            for c in config.concurrency:
                progress(
                    f"{target.name}: {format_size(size)} at concurrency {c}: put, then "
                    f"get, {config.seconds:g} s each"
                )
                cell = await run_cell(client, bucket, maker, size, c, config.seconds, rng)
                progress(cell_line(target.name, cell))
                cells.append(cell)
    finally:
        await client.close()
    return {
        "available": True,
        "endpoint": target.endpoint,
        "endpoints": list(target.endpoints),
        "bucket": bucket,
        "cells": cells,
    }


# -- ratios --------------------------------------------------------------------------------


def _ratio(ours: float, theirs: float) -> float | None:
    return ours / theirs if theirs > 0 else None


def ratios(
    ours: Sequence[dict[str, Any]], theirs: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Per cell: ops/s and MB/s ratios (above 1: we are faster), p99 ratios (below 1:
    our tail is shorter) and CPU per MB ratios (below 1: a byte costs us less CPU)."""
    out = []
    for a, b in zip(ours, theirs, strict=True):
        assert (a["size_bytes"], a["concurrency"]) == (b["size_bytes"], b["concurrency"])
        row: dict[str, Any] = {
            "size": a["size"],
            "size_bytes": a["size_bytes"],
            "concurrency": a["concurrency"],
        }
        for phase in ("put", "get"):
            for figure, name in (
                ("ops_per_s", "ops"),
                ("mb_per_s", "mb"),
                ("p99_ms", "p99"),
                ("machine_cpu_ms_per_mb", "cpu_per_mb"),
            ):
                row[f"{phase}_{name}"] = _ratio(a[phase][figure], b[phase][figure])
        out.append(row)
    return out


# -- the whole run -------------------------------------------------------------------------


def _own_cluster_config() -> dict[str, Any]:
    defaults = CairnConfig()
    return {
        "kind": "3-node LocalCluster started by the bench (as `cairn up`), raft metadata, "
        "every node's S3 gateway, client w on node w mod 3 (Swift's proxy runs a worker "
        "per core)",
        "fsync": defaults.fsync,
        "compression": defaults.compression,
        "encryption": defaults.encryption,
        "write_consistency": defaults.write_consistency,
    }


def _bench_own_cluster(
    config: S3BenchConfig, maker: ObjectMaker, base: Path, progress: Progress
) -> dict[str, Any]:
    progress(f"starting a 3-node Cairn cluster in {base / 'cairn'}")
    with LocalCluster(base / "cairn", 3, secret=SECRET, raft=True) as cluster:
        described = cluster.describe()
        nodes = described["nodes"]
        endpoints = [node["s3"] for node in nodes]
        progress(
            "cairn: S3 gateways "
            + ", ".join(f"{node['node_id']} {node['s3']} (pid {node['pid']})" for node in nodes)
        )
        target = S3Target(
            config.name,
            endpoints[0],
            described["access_key"],
            described["secret_key"],
            more_endpoints=tuple(endpoints[1:]),
        )
        result = asyncio.run(bench_target(target, config, maker, progress))
    return {**_own_cluster_config(), "gateway_pids": [n["pid"] for n in nodes], **result}


def _bench_swift(
    config: S3BenchConfig, maker: ObjectMaker, base: Path, progress: Progress
) -> dict[str, Any]:
    swift = SwiftAllInOne(base / "swift")
    try:
        progress(f"starting Swift (s3api, tempauth, 3 replicas) in {swift.base_dir}")
        swift.start(progress)
    except (SwiftUnavailable, OSError, RuntimeError) as exc:
        progress(f"Swift could not be started ({exc}): running alone")
        return {"available": False, "reason": str(exc), "notes": swift.notes}
    try:
        progress(f"swift: proxy {swift.endpoint}, pids {swift.pids()}")
        target = S3Target("swift", swift.endpoint, swift.access_key, swift.secret_key, swift.region)
        result = asyncio.run(bench_target(target, config, maker, progress))
        return {**swift.describe(), **result}
    finally:
        swift.stop()


def run_s3_bench(config: S3BenchConfig, progress: Progress = lambda _: None) -> dict[str, Any]:
    loop_name = install_event_loop_policy()
    rng = random.Random(os.urandom(16))
    maker = ObjectMaker(max(config.sizes_bytes, default=WARMUP_BYTES), rng)
    result: dict[str, Any] = {
        "benchmark": "s3",
        "config": {
            "sizes_bytes": list(config.sizes_bytes),
            "concurrency": list(config.concurrency),
            "seconds_per_phase": config.seconds,
            "subject": config.name,
            "peer": config.peer,
            "load_generator": f"this process, one asyncio loop ({loop_name}), aiohttp "
            "keep-alive, SigV4 header auth with signed payload (SHA-256), every GET "
            "streamed through SHA-256 and compared",
            "content": "unique incompressible object per PUT (token every 16 KiB)",
            "cpu_count": os.cpu_count(),
            "load_average_at_start": os.getloadavg(),
        },
        "systems": {},
    }
    systems: dict[str, Any] = result["systems"]
    with tempfile.TemporaryDirectory(prefix="cairn-bench-s3-") as tmp:
        base = Path(tmp)
        if config.target is None:
            systems[config.name] = _bench_own_cluster(config, maker, base, progress)
        else:
            systems[config.name] = {
                "kind": "endpoint given by flags",
                **asyncio.run(bench_target(config.target, config, maker, progress)),
            }
        if config.peer == "swift":
            systems["swift"] = _bench_swift(config, maker, base, progress)
            if systems["swift"].get("available"):
                result["ratios"] = {
                    f"{config.name}/swift": ratios(
                        systems[config.name]["cells"], systems["swift"]["cells"]
                    )
                }
    result["config"]["load_average_at_end"] = os.getloadavg()
    return result
