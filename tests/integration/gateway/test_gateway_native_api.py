"""The gateway's native API on real node processes: HTTP and SDK round trips at the
inline boundary and past it, ranges, dedup, listing, bucket errors, authentication, the
native RPC API and the CLI object commands."""

import asyncio
import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from cairn.base.errors import RemoteError
from cairn.client import protocol
from cairn.client.errors import (
    BucketAlreadyExists,
    BucketNotEmpty,
    InvalidBucketName,
    InvalidRange,
    NoSuchBucket,
    NoSuchKey,
    Unavailable,
)
from cairn.client.sdk import CairnClient, ListedObject
from cairn.gateway.keys import native_token
from cairn.gateway.native_messages import (
    NativeBucketReply,
    NativeGet,
    NativeGetReply,
    NativeMakeBucket,
    NativePut,
    NativePutReply,
)
from cairn.localcluster import LocalCluster
from cairn.wire import RpcPool, derive_auth_key

pytestmark = pytest.mark.xdist_group("processes")
SECRET = "gateway-native-api-secret"
READY_DEADLINE_S = 30.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    base = tmp_path_factory.mktemp("gateway")
    with LocalCluster(base, 3, secret=SECRET, raft=True) as local:
        asyncio.run(_wait_ready(local))
        yield local


async def _wait_ready(cluster: LocalCluster) -> None:
    """Poll until every gateway can make and remove a bucket and store a chunked object."""
    deadline = time.monotonic() + READY_DEADLINE_S
    for node in cluster.nodes.values():
        client = CairnClient([f"http://{node.host}:{node.s3_port}"], SECRET)
        try:
            while True:
                try:
                    name = f"ready-{node.node_id}"
                    await client.make_bucket(name)
                    await client.put(name, "probe", os.urandom(10_000))
                    await client.delete(name, "probe")
                    await client.remove_bucket(name)
                    break
                except (Unavailable, BucketAlreadyExists) as exc:
                    if time.monotonic() > deadline:
                        raise AssertionError(f"{node.node_id} never became ready: {exc}") from exc
                    await asyncio.sleep(0.1)  # polling a condition with a deadline
        finally:
            await client.close()


def client_of(cluster: LocalCluster) -> CairnClient:
    return CairnClient.from_cluster_file(cluster.base_dir / "cluster.json")


def gateway_url(cluster: LocalCluster, index: int = 0) -> str:
    node = list(cluster.nodes.values())[index]
    return f"http://{node.host}:{node.s3_port}"


SIZES = [0, 1, 4096, 4097, 3 * 1024 * 1024 + 17, 20 * 1024 * 1024 + 5]


async def test_http_round_trips(cluster: LocalCluster) -> None:
    headers = {"Authorization": f"Cairn {native_token(SECRET)}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        base = gateway_url(cluster, 1) + protocol.PREFIX
        async with http.put(f"{base}/buckets/http-trips") as response:
            assert response.status == 200, await response.text()
        for size in SIZES:
            body = os.urandom(size)
            url = f"{base}/objects/http-trips/size/{size}"
            async with http.put(url, data=body) as response:
                assert response.status == 200, await response.text()
                outcome = await response.json()
            assert outcome["size"] == size
            assert outcome["etag"] == hashlib.md5(body).hexdigest()
            assert (outcome["chunks"] == 0) == (size <= 4096)
            async with http.get(url) as response:
                assert response.status == 200
                assert response.headers["ETag"] == f'"{outcome["etag"]}"'
                assert int(response.headers["Content-Length"]) == size
                assert "Last-Modified" in response.headers
                assert await response.read() == body
            async with http.head(url) as response:
                assert response.status == 200
                assert int(response.headers["Content-Length"]) == size


async def test_sdk_round_trips_and_ranges(cluster: LocalCluster, tmp_path: Path) -> None:
    async with client_of(cluster) as client:
        await client.make_bucket("sdk-trips")
        for size in SIZES:
            body = os.urandom(size)
            result = await client.put("sdk-trips", f"obj-{size}", body, level="all")
            assert result.size == size
            assert await client.get("sdk-trips", f"obj-{size}") == body
        body = os.urandom(3 * 1024 * 1024)
        source = tmp_path / "source.bin"
        source.write_bytes(body)
        await client.put("sdk-trips", "from-file", source)
        target = tmp_path / "target.bin"
        info = await client.get_to("sdk-trips", "from-file", target)
        assert target.read_bytes() == body and info.size == len(body)
        n = len(body)
        for first, last, expected in [
            (0, 0, body[:1]),
            (0, 1023, body[:1024]),
            (1_000_000, 2_500_000, body[1_000_000:2_500_001]),
            (None, 5000, body[-5000:]),
            (n - 10, None, body[-10:]),
            (0, n + 100, body),
        ]:
            assert await client.get("sdk-trips", "from-file", first=first, last=last) == expected
        with pytest.raises(InvalidRange) as info_range:
            await client.get("sdk-trips", "from-file", first=n, last=None)
        assert info_range.value.status == 416
        assert (
            await client.get("sdk-trips", "obj-4097", first=4096)
            == (await client.get("sdk-trips", "obj-4097"))[4096:]
        )


async def test_dedup_across_gateways(cluster: LocalCluster) -> None:
    body = os.urandom(5 * 1024 * 1024)
    first_client = CairnClient([gateway_url(cluster, 0)], SECRET)
    second_client = CairnClient([gateway_url(cluster, 2)], SECRET)
    try:
        await first_client.make_bucket("dedup")
        first = await first_client.put("dedup", "one", body)
        second = await second_client.put("dedup", "two", body)
        assert first.new_chunks == first.chunks >= 1
        assert second.new_chunks == 0 and second.new_bytes == 0
        assert second.chunks == first.chunks
        assert await second_client.delete("dedup", "one")
        assert await first_client.get("dedup", "two") == body
        with pytest.raises(NoSuchKey):
            await first_client.get("dedup", "one")
    finally:
        await first_client.close()
        await second_client.close()


async def test_listing(cluster: LocalCluster) -> None:
    async with client_of(cluster) as client:
        await client.make_bucket("listing")
        keys = [f"photos/2024/{i:03}.jpg" for i in range(7)] + ["photos/a.txt", "readme", "z/1"]
        for key in keys:
            await client.put("listing", key, key.encode())
        everything = [item async for item in client.list("listing", page_keys=3)]
        assert [i.key for i in everything if isinstance(i, ListedObject)] == sorted(keys)
        top = [item async for item in client.list("listing", delimiter="/")]
        assert [i for i in top if isinstance(i, str)] == ["photos/", "z/"]
        assert [i.key for i in top if isinstance(i, ListedObject)] == ["readme"]
        level = [item async for item in client.list("listing", "photos/", "/", page_keys=1)]
        assert level == ["photos/2024/", *[i for i in level if isinstance(i, ListedObject)]]
        page = await client.list_page("listing", "photos/2024/", max_keys=4)
        assert page.is_truncated and len(page.objects) == 4
        rest = await client.list_page(
            "listing", "photos/2024/", continuation_token=page.next_continuation_token
        )
        assert not rest.is_truncated and len(rest.objects) == 3


async def test_bucket_errors(cluster: LocalCluster) -> None:
    async with client_of(cluster) as client:
        with pytest.raises(InvalidBucketName):
            await client.make_bucket("Bad_Name")
        await client.make_bucket("errors")
        with pytest.raises(BucketAlreadyExists):
            await client.make_bucket("errors")
        await client.put("errors", "k", b"v")
        with pytest.raises(BucketNotEmpty) as not_empty:
            await client.remove_bucket("errors")
        assert not_empty.value.status == 409
        with pytest.raises(NoSuchBucket):
            await client.put("missing-bucket", "k", b"v")
        with pytest.raises(NoSuchBucket):
            await client.head("missing-bucket", "k")
        with pytest.raises(NoSuchKey) as no_key:
            await client.head("errors", "missing")
        assert no_key.value.status == 404
        assert not await client.delete("errors", "missing")
        assert await client.delete("errors", "k")
        await client.remove_bucket("errors")
        assert "errors" not in [b.name for b in await client.list_buckets()]


async def test_authentication_is_required(cluster: LocalCluster) -> None:
    url = gateway_url(cluster) + protocol.PREFIX + "/buckets"
    async with aiohttp.ClientSession() as http:
        for headers in ({}, {"Authorization": "Cairn " + "0" * 64}, {"Authorization": "Bearer x"}):
            async with http.get(url, headers=headers) as response:
                assert response.status == 403
                assert (await response.json())["code"] == "AccessDenied"
        headers = {"Authorization": f"Cairn {native_token(SECRET)}"}
        async with http.get(url + "?x=1", headers=headers) as response:
            assert response.status == 200
        async with http.get(
            gateway_url(cluster) + protocol.PREFIX + "/list/errors-x?max-keys=abc",
            headers=headers,
        ) as response:
            assert response.status == 400


async def test_native_rpc(cluster: LocalCluster) -> None:
    pool = RpcPool("rpc-test", derive_auth_key(SECRET))
    address = next(iter(cluster.nodes.values())).rpc_address
    try:
        reply, _ = await pool.call(address, NativeMakeBucket("rpc"), NativeBucketReply)
        assert reply.buckets[0].name == "rpc"
        body = os.urandom(2 * 1024 * 1024)
        put, _ = await pool.call(address, NativePut("rpc", "k"), NativePutReply, body)
        assert put.size == len(body)
        got, payload = await pool.call(address, NativeGet("rpc", "k"), NativeGetReply)
        assert bytes(payload) == body and got.info.etag == put.etag
        got, payload = await pool.call(address, NativeGet("rpc", "k", 10, 19), NativeGetReply)
        assert bytes(payload) == body[10:20] and (got.start, got.end) == (10, 20)
        with pytest.raises(RemoteError) as info:
            await pool.call(address, NativeGet("rpc", "nope"), NativeGetReply)
        assert info.value.code == "NoSuchKey"
    finally:
        await pool.close()


def cairn(
    cluster: LocalCluster, *args: str, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    env["CAIRN_CLUSTER"] = str(cluster.base_dir / "cluster.json")
    return subprocess.run(
        [sys.executable, "-m", "cairn", *args],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_cli_object_commands(cluster: LocalCluster, tmp_path: Path) -> None:
    body = os.urandom(9 * 1024 * 1024)
    source = tmp_path / "in.bin"
    source.write_bytes(body)
    done = cairn(cluster, "mb", "cli-bucket")
    assert done.returncode == 0, done.stderr
    done = cairn(cluster, "put", str(source), "cli-bucket/dir/in.bin")
    assert done.returncode == 0, done.stderr
    assert b"9437184 bytes" in done.stdout
    target = tmp_path / "out.bin"
    done = cairn(cluster, "get", "cli-bucket/dir/in.bin", str(target))
    assert done.returncode == 0, done.stderr
    assert target.read_bytes() == body
    done = cairn(cluster, "get", "cli-bucket/dir/in.bin", "-")
    assert done.returncode == 0 and done.stdout == body
    done = cairn(cluster, "put", "-", "cli-bucket/small", stdin=b"hello")
    assert done.returncode == 0, done.stderr
    done = cairn(cluster, "ls")
    assert "cli-bucket" in done.stdout.decode().split()
    done = cairn(cluster, "ls", "cli-bucket")
    assert done.returncode == 0 and "dir/" in done.stdout.decode()
    assert "small" in done.stdout.decode()
    done = cairn(cluster, "ls", "cli-bucket/dir/")
    assert "dir/in.bin" in done.stdout.decode()
    done = cairn(cluster, "rb", "cli-bucket")
    assert done.returncode == 1 and b"BucketNotEmpty" in done.stderr
    done = cairn(cluster, "get", "cli-bucket/missing", str(tmp_path / "x"))
    assert done.returncode == 1 and b"NoSuchKey" in done.stderr
    assert not (tmp_path / "x").exists()
    done = cairn(cluster, "ls", "no-such-bucket")
    assert done.returncode == 1 and b"NoSuchBucket" in done.stderr
    done = cairn(cluster, "mb", "Bad_Name")
    assert done.returncode == 1 and b"InvalidBucketName" in done.stderr
    for key in ("dir/in.bin", "small"):
        done = cairn(cluster, "rm", f"cli-bucket/{key}")
        assert done.returncode == 0, done.stderr
    done = cairn(cluster, "rm", "cli-bucket/small")
    assert done.returncode == 1 and b"NoSuchKey" in done.stderr
    done = cairn(cluster, "rb", "cli-bucket")
    assert done.returncode == 0, done.stderr
    done = cairn(cluster, "ls", "--cluster", str(tmp_path / "nowhere.json"))
    assert done.returncode == 1 and b"no cluster file" in done.stderr
