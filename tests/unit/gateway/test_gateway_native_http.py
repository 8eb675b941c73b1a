"""The native HTTP API in process (aiohttp test server over the in-memory twins), and the
SDK against it: authentication, JSON errors with their statuses, odd keys, ranges, HEAD
error codes, gateway failover, and that the SDK's hand-written protocol matches."""

import os
import socket

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from cairn.client import protocol
from cairn.client.errors import InvalidRange, NoSuchBucket, NoSuchKey
from cairn.client.sdk import CairnClient
from cairn.gateway import native_http
from cairn.gateway.keys import authorization_matches, native_token
from cairn.gateway.objects import ObjectService

from .conftest import SECRET


@pytest.fixture
async def server(service: ObjectService):
    app = web.Application()
    native_http.mount(app, service, native_token(SECRET))
    test_server = TestServer(app)
    await test_server.start_server()
    yield test_server
    await test_server.close()


def url(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


def test_protocol_agrees_with_the_gateway() -> None:
    assert protocol.native_token(SECRET) == native_token(SECRET)
    assert authorization_matches(protocol.authorization(SECRET), native_token(SECRET))
    assert not authorization_matches(protocol.authorization(SECRET + "x"), native_token(SECRET))
    assert protocol.PREFIX == native_http.PREFIX
    assert protocol.WRITE_CONSISTENCY_HEADER == native_http.WRITE_CONSISTENCY_HEADER
    assert protocol.VERSION_ID_HEADER == native_http.VERSION_ID_HEADER


async def test_errors_are_json_with_status(server: TestServer) -> None:
    base = url(server) + native_http.PREFIX
    auth = {"Authorization": protocol.authorization(SECRET)}
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/buckets") as response:
            assert response.status == 403
        async with http.put(f"{base}/buckets/Bad_Name", headers=auth) as response:
            assert response.status == 400
            assert (await response.json())["code"] == "InvalidBucketName"
        async with http.put(f"{base}/buckets/data", headers=auth) as response:
            assert response.status == 200
        async with http.put(f"{base}/buckets/data", headers=auth) as response:
            assert response.status == 409
        async with http.get(f"{base}/objects/data/nope", headers=auth) as response:
            assert response.status == 404
            assert (await response.json())["code"] == "NoSuchKey"
        async with http.head(f"{base}/objects/data/nope", headers=auth) as response:
            assert response.status == 404
            assert response.headers[native_http.ERROR_CODE_HEADER] == "NoSuchKey"
        bad_level = {**auth, native_http.WRITE_CONSISTENCY_HEADER: "most"}
        async with http.put(f"{base}/objects/data/k", data=b"x", headers=bad_level) as response:
            assert response.status == 400
        async with http.get(f"{base}/list/data?max-keys=-1", headers=auth) as response:
            assert response.status == 400
        async with http.get(f"{base}/nowhere", headers=auth) as response:
            assert response.status == 404
        async with http.put(f"{base}/objects/data/k", data=b"xyz", headers=auth) as response:
            assert response.status == 200
        ranged = {**auth, "Range": "bytes=5-"}
        async with http.get(f"{base}/objects/data/k", headers=ranged) as response:
            assert response.status == 416
        ranged = {**auth, "Range": "bytes=1-"}
        async with http.get(f"{base}/objects/data/k", headers=ranged) as response:
            assert response.status == 206
            assert response.headers["Content-Range"] == "bytes 1-2/3"
            assert await response.read() == b"yz"


async def test_sdk_against_the_app(server: TestServer) -> None:
    async with CairnClient([url(server)], SECRET) as client:
        await client.make_bucket("data")
        keys = ["plain", "with space", "a/b/c", "percent%20sign", "q?uery#frag", "ünï", "x" * 1024]
        body = os.urandom(300_000)
        for key in keys:
            await client.put("data", key, body, metadata={"owner": "me"})
            assert await client.get("data", key) == body
            info = await client.head("data", key)
            assert info.size == len(body) and info.metadata == {"owner": "me"}
        listed = [item.key async for item in client.list("data")]  # type: ignore[union-attr]
        assert listed == sorted(keys)
        with pytest.raises(NoSuchKey):
            await client.head("data", "missing")
        with pytest.raises(NoSuchBucket):
            await client.get("nope", "k")
        with pytest.raises(InvalidRange):
            await client.get("data", "plain", first=len(body))


async def test_sdk_fails_over_to_a_live_gateway(server: TestServer) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"  # bound, not listening
        async with CairnClient([dead, url(server)], SECRET, strategy="round-robin") as client:
            for i in range(4):
                await client.make_bucket(f"bucket-{i}")
            assert len(await client.list_buckets()) == 4
