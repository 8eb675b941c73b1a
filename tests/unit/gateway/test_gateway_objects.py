"""The object service over in-memory metadata and chunks: round trips at the inline
boundary and past it, ranges, dedup, bounded write concurrency, GC re-touch, bucket rules
and the error codes."""

import os
from collections.abc import AsyncIterator

import pytest

from cairn.base.errors import RemoteError
from cairn.gateway.errors import ApiError, api_error
from cairn.gateway.objects import ObjectService
from cairn.gateway.ranges import parse_range_header
from cairn.gateway.write_path import WriteLimits
from cairn.meta.manifest import INLINE_BYTES_MAX, InvalidRange, etag_of_bytes

from .conftest import SECRET, SMALL_CHUNKS, FakeChunks, FakeMeta


async def read_all(service: ObjectService, bucket: str, key: str, bounds=None) -> bytes:
    read = await service.get(bucket, key, bounds)
    return b"".join([piece async for piece in read.body])


async def pieces(data: bytes, size: int = 7000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize("size", [0, 1, INLINE_BYTES_MAX, INLINE_BYTES_MAX + 1, 300_000, 1_500_000])
async def test_round_trip(service: ObjectService, chunks: FakeChunks, size: int) -> None:
    await service.make_bucket("data")
    body = os.urandom(size)
    outcome = await service.put("data", "k", pieces(body))
    assert outcome.size == size
    assert outcome.etag == etag_of_bytes(body)
    if size <= INLINE_BYTES_MAX:
        assert outcome.chunks == 0 and chunks.writes == 0
    else:
        assert outcome.chunks >= 1 and outcome.new_chunks == outcome.chunks
        assert outcome.new_bytes == size
    assert await read_all(service, "data", "k") == body
    version = await service.head("data", "k")
    assert version.manifest is not None and version.manifest.size == size


async def test_bytes_body_and_ranges(service: ObjectService) -> None:
    await service.make_bucket("data")
    body = os.urandom(700_000)
    await service.put("data", "k", body)
    for header, expected in [
        ("bytes=0-0", body[:1]),
        ("bytes=0-99999", body[:100_000]),
        ("bytes=123456-654321", body[123456:654322]),
        ("bytes=-1000", body[-1000:]),
        ("bytes=699000-", body[699000:]),
        ("bytes=0-99999999", body),
    ]:
        assert await read_all(service, "data", "k", parse_range_header(header)) == expected
    with pytest.raises(InvalidRange):
        await service.get("data", "k", parse_range_header("bytes=700000-"))
    assert api_error(InvalidRange("x")).status == 416


async def test_dedup(service: ObjectService, chunks: FakeChunks) -> None:
    await service.make_bucket("data")
    body = os.urandom(900_000)
    first = await service.put("data", "a", pieces(body))
    writes = chunks.writes
    second = await service.put("data", "b", pieces(body, 65536))
    assert first.new_chunks == first.chunks > 1
    assert second.new_chunks == 0 and second.new_bytes == 0
    assert chunks.writes == writes
    await service.delete("data", "a")
    assert await read_all(service, "data", "b") == body


async def test_repeated_chunk_stored_once(service: ObjectService, chunks: FakeChunks) -> None:
    await service.make_bucket("data")
    block = os.urandom(256 * 1024)  # the max chunk size: cut into identical chunks
    outcome = await service.put("data", "k", block * 4)
    assert outcome.new_chunks < outcome.chunks
    assert await read_all(service, "data", "k") == block * 4


async def test_write_window_is_bounded(meta: FakeMeta, chunks: FakeChunks) -> None:
    from cairn.codec import Chunker

    service = ObjectService(
        meta,
        chunks,
        b"k" * 32,
        chunker=Chunker(SMALL_CHUNKS),
        limits=WriteLimits(writes_in_flight_max=2),
    )
    try:
        await meta.create_bucket("data", "cairn")
        await service.put("data", "k", os.urandom(3_000_000))
        assert 1 <= chunks.in_flight_max <= 2
    finally:
        service.close()


async def test_failed_write_commits_nothing(
    service: ObjectService, meta: FakeMeta, chunks: FakeChunks
) -> None:
    await service.make_bucket("data")
    chunks.fail_writes = True
    with pytest.raises(Exception) as info:
        await service.put("data", "k", os.urandom(2_000_000))
    assert api_error(info.value).status == 503
    assert meta.puts == 0
    with pytest.raises(RemoteError):
        await service.head("data", "k")


async def test_slow_upload_retouches_chunks(meta: FakeMeta, chunks: FakeChunks) -> None:
    from cairn.codec import Chunker

    class SlowClock:
        now = 0.0

        def monotonic(self) -> float:
            self.now += 100.0
            return self.now

        def wall(self) -> float:
            return 1.0

    service = ObjectService(
        meta, chunks, b"k" * 32, chunker=Chunker(SMALL_CHUNKS), gc_grace_s=10, clock=SlowClock()
    )
    try:
        await meta.create_bucket("data", "cairn")
        await service.put("data", "ok", os.urandom(500_000))
        assert len(chunks.present_calls) >= 2  # the dedup check and the re-touch
        original_present = chunks.present

        async def losing(ids, level="quorum"):  # GC swept them meanwhile
            found = await original_present(ids, level)
            return set() if len(chunks.present_calls) > 1 else found

        chunks.present_calls.clear()
        chunks.present = losing  # type: ignore[method-assign]
        with pytest.raises(ApiError) as info:
            await service.put("data", "gone", os.urandom(500_000))
        assert info.value.code == "RequestTimeout"
        assert meta.puts == 1
    finally:
        service.close()


@pytest.mark.parametrize("inline_decode", [True, False])
async def test_corrupt_record_is_read_again(
    service: ObjectService, chunks: FakeChunks, inline_decode: bool
) -> None:
    service.reader.decode_inline_bytes_max = 1 << 30 if inline_decode else 0
    await service.make_bucket("data")
    body = os.urandom(600_000)
    await service.put("data", "k", body)
    chunks.corrupt_once.update(chunks.records)
    assert await read_all(service, "data", "k") == body


async def test_bucket_errors(service: ObjectService) -> None:
    with pytest.raises(ApiError) as info:
        await service.make_bucket("Bad_Name")
    assert info.value.code == "InvalidBucketName" and info.value.status == 400
    with pytest.raises(ApiError) as info:
        await service.make_bucket("_cairn")
    assert info.value.code == "InvalidBucketName"
    await service.make_bucket("data")
    with pytest.raises(RemoteError) as remote:
        await service.make_bucket("data")
    assert api_error(remote.value).status == 409
    await service.put("data", "k", b"x")
    with pytest.raises(RemoteError) as remote:
        await service.remove_bucket("data")
    assert remote.value.code == "BucketNotEmpty" and api_error(remote.value).status == 409
    for call in (
        service.head("nope", "k"),
        service.put("nope", "k", b"x"),
        service.list("nope"),
        service.delete("nope", "k"),
    ):
        with pytest.raises((ApiError, RemoteError)) as error:
            await call
        assert api_error(error.value).code == "NoSuchBucket"
    with pytest.raises(RemoteError) as remote:
        await service.head("data", "missing")
    assert remote.value.code == "NoSuchKey" and api_error(remote.value).status == 404
    with pytest.raises(ApiError) as info:
        await service.put("data", "", b"x")
    assert info.value.status == 400
    with pytest.raises(ApiError) as info:
        await service.put("data", "k" * 1025, b"x")
    assert info.value.status == 400
    await service.delete("data", "k")
    await service.remove_bucket("data")
    assert await service.list_buckets() == []


async def test_size_mismatch_is_rejected(service: ObjectService, meta: FakeMeta) -> None:
    await service.make_bucket("data")
    for body in (b"abc", os.urandom(100_000)):
        with pytest.raises(ApiError) as info:
            await service.put("data", "k", body, expected_size=len(body) + 1)
        assert info.value.code == "IncompleteBody"
    assert meta.puts == 0


async def test_list_pages(service: ObjectService) -> None:
    await service.make_bucket("data")
    for key in ["a/1", "a/2", "b/1", "c"]:
        await service.put("data", key, key.encode())
    page = await service.list("data", delimiter="/")
    assert [e.key for e in page.entries] == ["c"]
    assert page.common_prefixes == ["a/", "b/"]
    page = await service.list("data", prefix="a/", max_keys=1)
    assert [e.key for e in page.entries] == ["a/1"] and page.is_truncated
    page = await service.list("data", prefix="a/", continuation_token=page.next_continuation_token)
    assert [e.key for e in page.entries] == ["a/2"] and not page.is_truncated


def test_cluster_key_is_stable() -> None:
    from cairn.gateway.keys import cluster_key, native_token

    assert cluster_key(SECRET) == cluster_key(SECRET) != cluster_key(SECRET + "x")
    assert len(native_token(SECRET)) == 64
