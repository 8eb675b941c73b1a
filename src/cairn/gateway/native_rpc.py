"""The native object API over the node's authenticated RPC (`wire`).

Why a second front end: the RPC path skips HTTP parsing and rides connections the SDK
and benchmarks already hold authenticated with the cluster secret, so it measures the
object pipeline rather than the HTTP stack. It is a request/reply API: a PUT carries the
whole object as the request payload and a GET returns it (or the requested range) as the
reply payload, so objects (and ranges) are limited to `NATIVE_RPC_OBJECT_BYTES_MAX`;
larger ones go through the streaming HTTP API.

Every handler calls the same `ObjectService` as the HTTP API. Failures travel as
`RemoteError(code, message)` with the object API's S3-style codes, which the SDK maps to
its exception tree exactly as it does the HTTP API's JSON errors.
"""

from typing import Any

from cairn.base.errors import RemoteError
from cairn.gateway.errors import ApiError, api_error
from cairn.gateway.native_messages import (
    BucketInfo,
    ListedObject,
    NativeBucketReply,
    NativeDelete,
    NativeDeleteReply,
    NativeGet,
    NativeGetReply,
    NativeHead,
    NativeHeadReply,
    NativeList,
    NativeListBuckets,
    NativeListReply,
    NativeMakeBucket,
    NativePut,
    NativePutReply,
    NativeRemoveBucket,
    ObjectInfo,
)
from cairn.gateway.objects import ObjectService, parse_level
from cairn.meta.index import ObjectVersion
from cairn.wire import CallContext, Reply, Router
from cairn.wire.server import Handler

NATIVE_RPC_OBJECT_BYTES_MAX = 64 << 20
"""The largest object (or range) one native RPC PUT or GET carries."""


def object_info(version: ObjectVersion) -> ObjectInfo:
    manifest = version.manifest
    assert manifest is not None
    return ObjectInfo(
        manifest.size,
        manifest.etag,
        version.version_id,
        manifest.created_s,
        manifest.content_type,
        dict(manifest.user_metadata),
    )


class NativeRpc:
    def __init__(self, service: ObjectService) -> None:
        self.service = service

    def register(self, router: Router) -> None:
        for request_type, handler in (
            (NativePut, self._put),
            (NativeGet, self._get),
            (NativeHead, self._head),
            (NativeDelete, self._delete),
            (NativeList, self._list),
            (NativeMakeBucket, self._make_bucket),
            (NativeRemoveBucket, self._remove_bucket),
            (NativeListBuckets, self._list_buckets),
        ):
            router.register(request_type, _reporting(handler))

    async def _put(self, request: NativePut, payload: memoryview, _ctx: CallContext) -> Reply:
        if len(payload) > NATIVE_RPC_OBJECT_BYTES_MAX:
            raise ApiError(
                "EntityTooLarge",
                f"RPC PUT carries at most {NATIVE_RPC_OBJECT_BYTES_MAX} bytes; use HTTP",
            )
        level = parse_level(request.level, self.service.default_level)
        outcome = await self.service.put(
            request.bucket,
            request.key,
            payload,
            level=level,
            content_type=request.content_type or None,
            metadata=dict(request.metadata),
        )
        return NativePutReply(
            outcome.etag,
            outcome.size,
            outcome.version_id,
            outcome.chunks,
            outcome.new_chunks,
            outcome.new_bytes,
            outcome.stored_bytes,
        )

    async def _get(self, request: NativeGet, _payload: memoryview, _ctx: CallContext) -> Reply:
        ranged = request.first is not None or request.last is not None
        bounds = (request.first, request.last) if ranged else None
        read = await self.service.get(request.bucket, request.key, bounds, request.version_id)
        start = read.byte_range.start if read.byte_range else 0
        if read.content_length > NATIVE_RPC_OBJECT_BYTES_MAX:
            await read.body.aclose()
            raise ApiError(
                "EntityTooLarge",
                f"RPC GET returns at most {NATIVE_RPC_OBJECT_BYTES_MAX} bytes; ask for a "
                "range or use HTTP",
            )
        data = bytearray()
        async for piece in read.body:
            data += piece
        reply = NativeGetReply(object_info(read.version), start, start + len(data))
        return reply, data

    async def _head(self, request: NativeHead, _payload: memoryview, _ctx: CallContext) -> Reply:
        version = await self.service.head(request.bucket, request.key, request.version_id)
        return NativeHeadReply(object_info(version))

    async def _delete(
        self, request: NativeDelete, _payload: memoryview, _ctx: CallContext
    ) -> Reply:
        result = await self.service.delete(request.bucket, request.key, request.version_id)
        return NativeDeleteReply(result.deleted, result.version_id, result.delete_marker)

    async def _list(self, request: NativeList, _payload: memoryview, _ctx: CallContext) -> Reply:
        page = await self.service.list(
            request.bucket,
            request.prefix,
            request.delimiter,
            request.continuation_token,
            request.max_keys,
        )
        entries = [
            ListedObject(
                e.key,
                e.version.size,
                e.version.manifest.etag if e.version.manifest else "",
                e.version.created_s,
                e.version.version_id,
            )
            for e in page.entries
        ]
        return NativeListReply(
            entries, page.common_prefixes, page.is_truncated, page.next_continuation_token
        )

    async def _make_bucket(
        self, request: NativeMakeBucket, _payload: memoryview, _ctx: CallContext
    ) -> Reply:
        bucket = await self.service.make_bucket(request.bucket)
        return NativeBucketReply(
            [BucketInfo(bucket.name, bucket.created_s, str(bucket.versioning))]
        )

    async def _remove_bucket(
        self, request: NativeRemoveBucket, _payload: memoryview, _ctx: CallContext
    ) -> Reply:
        await self.service.remove_bucket(request.bucket)
        return NativeBucketReply([])

    async def _list_buckets(
        self, _request: NativeListBuckets, _payload: memoryview, _ctx: CallContext
    ) -> Reply:
        buckets = await self.service.list_buckets()
        return NativeBucketReply(
            [BucketInfo(b.name, b.created_s, str(b.versioning)) for b in buckets]
        )


def _reporting(handler: Handler) -> Handler:
    """Wrap a handler so every failure leaves as `RemoteError` with an API code."""

    async def handle(request: Any, payload: memoryview, context: CallContext) -> Reply:
        try:
            return await handler(request, payload, context)
        except Exception as exc:
            error = api_error(exc)
            raise RemoteError(error.code, error.message) from None

    return handle
