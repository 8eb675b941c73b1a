"""The lock service on real node processes: a shared counter incremented by several
processes under the lock (no lost update, every write fenced), a paused holder's late
write refused by its stale fencing token, the HTTP admin API, and `cairn lock` /
`cairn locks`."""

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from cairn.base.errors import RemoteError
from cairn.client import protocol
from cairn.client.errors import BucketAlreadyExists, FenceStale, Unavailable
from cairn.client.locks import LockClient
from cairn.client.sdk import CairnClient
from cairn.localcluster import LocalCluster
from cairn.meta.buckets import VersioningState
from cairn.meta.manifest import Manifest, etag_of_bytes
from cairn.meta.write_condition import Fence
from cairn.node.meta_client import MetaClient
from cairn.wire import RpcPool, derive_auth_key

pytestmark = pytest.mark.xdist_group("processes")
SECRET = "lock-service-integration"
WORKER = Path(__file__).with_name("lock_worker.py")
READY_DEADLINE_S = 30.0
PROCESSES = 4
INCREMENTS = 10
WORKER_DEADLINE_S = 60.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    base = tmp_path_factory.mktemp("locks")
    with LocalCluster(base, 3, secret=SECRET, raft=True) as local:
        local.write_cluster_json()
        asyncio.run(_make_bucket(local))
        yield local


async def _make_bucket(cluster: LocalCluster) -> None:
    """Poll (with a deadline) until the gateway can make the test bucket."""
    deadline = time.monotonic() + READY_DEADLINE_S
    async with CairnClient.from_cluster_file(cluster.base_dir / "cluster.json") as client:
        while True:
            try:
                await client.make_bucket("shared")
                return
            except BucketAlreadyExists:
                return
            except Unavailable:
                assert time.monotonic() < deadline, "the gateway never became ready"
                await asyncio.sleep(0.1)  # polling a condition with a deadline


def cluster_json(cluster: LocalCluster) -> str:
    return str(cluster.base_dir / "cluster.json")


def test_shared_counter_has_no_lost_update(cluster: LocalCluster) -> None:
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                str(WORKER),
                "counter",
                cluster_json(cluster),
                "shared",
                "n",
                str(INCREMENTS),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    tokens: list[int] = []
    values: list[int] = []
    for worker in workers:
        out, err = worker.communicate(timeout=WORKER_DEADLINE_S)
        assert worker.returncode == 0, err[-2000:]
        for line in out.splitlines():
            _, token, value = line.split()
            tokens.append(int(token))
            values.append(int(value))
    total = PROCESSES * INCREMENTS
    assert sorted(values) == list(range(1, total + 1))  # each value written exactly once
    assert len(set(tokens)) == total
    by_token = [v for _, v in sorted(zip(tokens, values, strict=True))]
    assert by_token == list(range(1, total + 1))  # grant order is write order

    async def final() -> bytes:
        async with CairnClient.from_cluster_file(cluster_json(cluster)) as client:
            return await client.get("shared", "n")

    assert asyncio.run(final()) == str(total).encode()


async def _late_write(cluster: LocalCluster) -> None:
    gateway = f"http://{next(iter(cluster.nodes.values())).host}:{next(iter(cluster.nodes.values())).s3_port}"
    url = gateway + protocol.object_path("shared", "fenced")
    auth = {"Authorization": protocol.authorization(SECRET)}
    async with (
        aiohttp.ClientSession(headers=auth) as http,
        _two_holders(cluster) as (paused, other),
    ):
        old = await paused.acquire("fenced")
        async with http.put(url, data=b"first", headers=old.fence_header) as response:
            assert response.status == 200, await response.text()
        _pause(paused)
        new = await asyncio.wait_for(other.acquire("fenced"), 10)
        assert new.token > old.token
        async with http.put(url, data=b"late", headers=old.fence_header) as response:
            assert response.status == 409
            assert (await response.json())["code"] == "FenceStale"
        async with http.delete(url, headers=old.fence_header) as response:
            assert response.status == 409
        async with http.put(url, data=b"second", headers=new.fence_header) as response:
            assert response.status == 200, await response.text()
        async with http.get(url) as response:
            assert await response.read() == b"second"
        bad = {"X-Cairn-Fence": "no-token-here"}
        async with http.put(url, data=b"x", headers=bad) as response:
            assert response.status == 400
        await new.release()


@contextlib.asynccontextmanager
async def _two_holders(cluster: LocalCluster) -> AsyncIterator[tuple[LockClient, LockClient]]:
    """A client about to pause (0.5 s TTL) and the one that takes its lock over."""
    paused = LockClient.from_cluster_file(cluster_json(cluster), ttl_s=0.5)
    other = LockClient.from_cluster_file(cluster_json(cluster), ttl_s=5)
    try:
        yield paused, other
    finally:
        paused._keeper = None
        await paused.close()
        await other.close()


def _pause(client: LockClient) -> None:
    """The holder pauses: it sends no more keep-alives, so its lease runs out."""
    assert client._keeper is not None
    client._keeper.cancel()


def test_paused_holders_late_write_is_refused(cluster: LocalCluster) -> None:
    asyncio.run(_late_write(cluster))


async def _sdk_fenced_writes(cluster: LocalCluster) -> None:
    async with (
        CairnClient.from_cluster_file(cluster_json(cluster)) as objects,
        _two_holders(cluster) as (paused, other),
    ):
        old = await paused.acquire("sdk-fenced")
        await objects.put("shared", "sdk-fenced", b"first", fence=old)
        _pause(paused)
        new = await asyncio.wait_for(other.acquire("sdk-fenced"), 10)
        with pytest.raises(FenceStale, match="no longer holds"):
            await objects.put("shared", "sdk-fenced", b"late", fence=old)
        with pytest.raises(FenceStale):
            await objects.delete("shared", "sdk-fenced", fence=old)
        assert await objects.get("shared", "sdk-fenced") == b"first"
        await objects.put("shared", "sdk-fenced", b"second", fence=new)
        assert await objects.get("shared", "sdk-fenced") == b"second"
        assert await objects.delete("shared", "sdk-fenced", fence=new)
        await new.release()


def test_the_sdk_fences_puts_and_deletes_with_a_held_lock(cluster: LocalCluster) -> None:
    """`CairnClient.put/delete(..., fence=lock)`: a paused holder's late write raises
    FenceStale and changes nothing; the current holder's writes go through."""
    asyncio.run(_sdk_fenced_writes(cluster))


async def _fenced_commits(cluster: LocalCluster) -> None:
    """What closes the race between the gateway's fence check and its commit: the index
    shard itself refuses a token below one it accepted (sent here without the check)."""
    pool = RpcPool("test", derive_auth_key(SECRET))
    meta = MetaClient(pool, [n.rpc_address for n in cluster.nodes.values()])
    try:

        def body(data: bytes) -> Manifest:
            return Manifest(len(data), etag_of_bytes(data), time.time(), inline=data)

        off = VersioningState.UNVERSIONED
        await meta.put_object("shared", "raced", body(b"new"), off, fence=Fence("race", 101))
        with pytest.raises(RemoteError) as info:
            await meta.put_object("shared", "raced", body(b"old"), off, fence=Fence("race", 100))
        assert info.value.code == "FenceStale"
        with pytest.raises(RemoteError) as info:
            await meta.delete_object("shared", "raced", off, fence=Fence("race", 100))
        assert info.value.code == "FenceStale"
        version = await meta.head_object("shared", "raced")
        assert version.manifest is not None and version.manifest.inline == b"new"
    finally:
        await pool.close()


def test_the_index_shard_refuses_a_token_below_one_it_accepted(cluster: LocalCluster) -> None:
    asyncio.run(_fenced_commits(cluster))


async def _http_api(cluster: LocalCluster) -> None:
    node = next(iter(cluster.nodes.values()))
    base = f"http://{node.host}:{node.s3_port}{protocol.PREFIX}/locks"
    auth = {"Authorization": protocol.authorization(SECRET)}
    async with aiohttp.ClientSession(headers=auth) as http:
        async with http.post(f"{base}/sessions", json={"ttl_ms": 5000, "label": "curl"}) as r:
            assert r.status == 200, await r.text()
            session_id = (await r.json())["session_id"]
        body = {"session_id": session_id, "name": "web", "request_id": 1}
        async with http.post(f"{base}/acquire", json=body) as r:
            assert r.status == 200, await r.text()
            granted = await r.json()
            assert granted["status"] == "granted" and granted["token"] > 0
        async with http.post(f"{base}/sessions/{session_id}/keepalive") as r:
            assert (await r.json())["ttl_ms"] == 5000
        async with http.get(f"{base}?sessions=1") as r:
            listing = await r.json()
            assert [lock["name"] for lock in listing["locks"]] == ["web"]
            assert listing["sessions"][0]["label"] == "curl"
        async with http.get(f"{base}/names/web") as r:
            assert (await r.json())["holders"][0]["token"] == granted["token"]
        async with http.get(
            f"{base}/fence", params={"name": "web", "token": granted["token"]}
        ) as r:
            assert (await r.json())["current"] is True
        async with http.post(f"{base}/acquire", json={**body, "name": ""}) as r:
            assert r.status == 400 and (await r.json())["code"] == "invalid_name"
        async with http.post(f"{base}/release", json={**body, "name": "other"}) as r:
            assert r.status == 400 and (await r.json())["code"] == "not_held"
        async with http.post(f"{base}/release", json={**body, "session_id": 7}) as r:
            assert r.status == 404 and (await r.json())["code"] == "unknown_session"
        async with http.post(f"{base}/acquire", data=b"{not json") as r:
            assert r.status == 400
        async with http.post(f"{base}/release", json=body) as r:
            assert (await r.json())["released"] is True
        async with http.delete(f"{base}/sessions/{session_id}") as r:
            assert r.status == 200
        async with http.get(f"{base}/names/web") as r:
            assert r.status == 404
    async with aiohttp.ClientSession() as anonymous, anonymous.get(base) as r:
        assert r.status == 403


def test_http_admin_api(cluster: LocalCluster) -> None:
    asyncio.run(_http_api(cluster))


def test_cli_lock_runs_a_command_holding_the_lock(cluster: LocalCluster) -> None:
    env = {"CAIRN_CLUSTER": cluster_json(cluster), "PATH": "/usr/bin:/bin"}
    script = 'echo "$CAIRN_LOCK_NAME $CAIRN_LOCK_TOKEN"; cairn_locks=1; exit 3'
    run = subprocess.run(
        [sys.executable, "-m", "cairn", "lock", "cli-job", "--ttl", "3", "--", "sh", "-c", script],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 3, run.stderr
    name, token = run.stdout.split()
    assert name == "cli-job" and int(token) > 0
    listing = subprocess.run(
        [sys.executable, "-m", "cairn", "locks", "--json"],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listing.returncode == 0, listing.stderr
    assert '"locks": []' in listing.stdout.splitlines()[-1]

    async def holding_then_timeout() -> None:
        client = LockClient.from_cluster_file(cluster_json(cluster))
        async with client, client.lock("cli-busy"):
            busy = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "cairn",
                "lock",
                "cli-busy",
                "--timeout",
                "0.2",
                "--",
                "true",
                env=env,
                stderr=asyncio.subprocess.PIPE,
            )
            _, err = await busy.communicate()
            assert busy.returncode == 1 and b"not granted" in err
            shown = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "cairn",
                "locks",
                env=env,
                stdout=asyncio.subprocess.PIPE,
            )
            out, _ = await shown.communicate()
            assert b"cli-busy" in out

    asyncio.run(holding_then_timeout())
