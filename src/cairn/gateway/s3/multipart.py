"""S3 multipart upload: Create, UploadPart, UploadPartCopy, Complete, Abort, ListParts,
ListMultipartUploads.

Theory of operation. The upload's state lives in the index shard of its key
(`meta.uploads`, through `node.upload_client`); the gateway streams part bodies into
chunks and commits each part's chunk list there. Every handler checks bucket access
(`context.bucket_for`) first, as the object handlers do.

- UploadPart first checks that the upload exists (so a 5 GiB body is not read for
  nothing), then streams the body through `body.RequestBody` -- aws-chunked decoding,
  Content-MD5 and x-amz-checksum-* verification, exactly as PutObject -- into
  `ObjectService.store_part`, the write path without the manifest commit: memory stays
  bounded by the write path's queues whatever the part's size (up to 5 GiB). Parts are
  always chunked, never inline, so completing is a concatenation of chunk lists. The
  part is committed only after the body ended and verified, so a bad body leaves no part.
- UploadPartCopy takes a source object (and optionally `x-amz-copy-source-range`). When
  the range covers whole chunks of the source, the part reuses the source's chunk refs
  and no data is written: the chunks are touched (which also proves they still exist)
  so a GC round racing with a delete of the source cannot reclaim them, and the part's
  MD5 is the source ETag for a whole single-PUT object, else computed by reading the
  range. Any other range is read and re-chunked through the read and write paths
  (deduplication still skips chunks the cluster already holds).
- CompleteMultipartUpload parses the part list (`MalformedXML` for a bad body) and hands
  it to the index shard, which applies S3's rules (InvalidPartOrder, InvalidPart,
  EntityTooSmall), commits the object with the multipart ETag and drops the upload in one
  Raft command: the object appears atomically or not at all.
- Abandoned uploads are aborted by the shard leaders after `multipart_expiry_s`
  (`node.upload_service`); their chunks then go at the next GC round.

`register_multipart` adds the handlers to an `S3App`; `gateway.process` calls it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from aiohttp import web

from cairn.gateway.objects import validate_key
from cairn.gateway.s3 import multipart_xml as mxml
from cairn.gateway.s3.app import S3App
from cairn.gateway.s3.checksums import DIGEST_BYTES
from cairn.gateway.s3.conditions import copy_source_conditions, evaluate, write_condition
from cairn.gateway.s3.context import Handler, S3Request, bucket_for, xml_response
from cairn.gateway.s3.endpoint import Op
from cairn.gateway.s3.errors import S3Error
from cairn.gateway.s3.headers import attributes_from
from cairn.gateway.s3.objects import TOUCH_BATCH_IDS_MAX, parse_copy_source
from cairn.meta.buckets import Bucket
from cairn.meta.manifest import ByteRange, Manifest, slices_for_range
from cairn.meta.uploads import (
    LIST_PARTS_MAX,
    LIST_UPLOADS_MAX,
    PART_NUMBER_MAX,
    PART_SIZE_BYTES_MAX,
    Part,
    PartChunk,
)
from cairn.meta.write_condition import Fence
from cairn.node.upload_client import UploadClient

NUMBER_TEXT_CHARS_MAX = 10
HASH_OFFLOAD_BYTES_MIN = 64 * 1024
_EMPTY_MD5 = hashlib.md5(b"", usedforsecurity=False).hexdigest()


def _int_param(request: S3Request, name: str, default: int, low: int, high: int) -> int:
    text = request.params.get(name)
    if text is None or text == "":
        return default
    if not text.isdigit() or len(text) > NUMBER_TEXT_CHARS_MAX or not low <= int(text) <= high:
        raise S3Error("InvalidArgument", f"{name} must be an integer in {low}..{high}")
    return int(text)


def _part_number(request: S3Request) -> int:
    text = request.params.get("partNumber", "")
    if not text.isdigit() or len(text) > NUMBER_TEXT_CHARS_MAX:
        raise S3Error(
            "InvalidArgument",
            f"Part number must be an integer between 1 and {PART_NUMBER_MAX}, inclusive",
        )
    number = int(text)
    if not 1 <= number <= PART_NUMBER_MAX:
        raise S3Error(
            "InvalidArgument",
            f"Part number must be an integer between 1 and {PART_NUMBER_MAX}, inclusive",
        )
    return number


def _upload_id(request: S3Request) -> str:
    upload_id = request.params.get("uploadId", "")
    if not upload_id:
        raise S3Error("InvalidArgument", "uploadId must not be empty")
    return upload_id


def _encoder(request: S3Request) -> tuple[str | None, Callable[[str], str]]:
    encoding = request.params.get("encoding-type") or None
    if encoding is None:
        return None, lambda text: text
    if encoding.lower() != "url":
        raise S3Error("InvalidArgument", "Invalid Encoding Method specified in Request")
    return "url", lambda text: quote(text, safe="/")


async def _writable(request: S3Request, name: str | None = None) -> Bucket:
    bucket = await bucket_for(request, name)
    if not bucket.writable:
        raise S3Error("InvalidBucketState", f"bucket {bucket.name!r} is being deleted")
    return bucket


def parse_copy_range(value: str | None, size: int) -> ByteRange:
    """`x-amz-copy-source-range: bytes=first-last` (both required) against the source's
    size; no header is the whole object (which may be empty: `ByteRange(0, 0)`)."""
    if value is None:
        return ByteRange(0, size)
    unit, _, spec = value.strip().partition("=")
    first_text, dash, last_text = spec.partition("-")
    if (
        unit != "bytes"
        or not dash
        or not first_text.isdigit()
        or not last_text.isdigit()
        or max(len(first_text), len(last_text)) > 20
    ):
        raise S3Error("InvalidArgument", "x-amz-copy-source-range must be bytes=first-last")
    first, last = int(first_text), int(last_text)
    if first > last or last >= size:
        raise S3Error(
            "InvalidArgument",
            f"Range specified is not valid for source object of size: {size}",
        )
    return ByteRange(first, last + 1)


FenceCheck = Callable[[], Awaitable[Fence | None]]
"""The request's `X-Cairn-Fence`, once the lock service says it is still held (None: no
fence sent); `gateway.lock_http.FencedMeta.check_fence` in a node."""


async def _no_fence() -> Fence | None:
    return None


class MultipartHandlers:
    """The handlers of the multipart operations over one `UploadClient`."""

    def __init__(self, uploads: UploadClient, fence: FenceCheck = _no_fence) -> None:
        self.uploads = uploads
        self.fence = fence

    def handlers(self) -> dict[Op, Handler]:
        return {
            Op.CREATE_MULTIPART_UPLOAD: self.create,
            Op.UPLOAD_PART: self.upload_part,
            Op.UPLOAD_PART_COPY: self.upload_part_copy,
            Op.COMPLETE_MULTIPART_UPLOAD: self.complete,
            Op.ABORT_MULTIPART_UPLOAD: self.abort,
            Op.LIST_PARTS: self.list_parts,
            Op.LIST_MULTIPART_UPLOADS: self.list_uploads,
        }

    # -- create / abort ----------------------------------------------------------------
    async def create(self, request: S3Request) -> web.StreamResponse:
        bucket = await _writable(request)
        validate_key(request.key)
        attributes = attributes_from(request.headers, request.lines)
        algorithm = request.headers.get("x-amz-checksum-algorithm", "").strip().lower()
        if algorithm and algorithm not in DIGEST_BYTES:
            raise S3Error("InvalidRequest", f"unsupported checksum algorithm {algorithm[:32]!r}")
        upload_id = await self.uploads.create(
            bucket.name,
            request.key,
            initiator=request.identity.user,
            content_type=attributes.content_type,
            user_metadata=attributes.metadata,
            content_headers=attributes.content_headers,
            checksum_algorithm=algorithm,
            created_s=request.api.clock.wall(),
        )
        headers = {"x-amz-checksum-algorithm": algorithm.upper()} if algorithm else {}
        body = mxml.initiate_result(bucket.name, request.key, upload_id)
        return xml_response(body, headers=headers)

    async def abort(self, request: S3Request) -> web.StreamResponse:
        bucket = await bucket_for(request)
        await self.uploads.abort(bucket.name, request.key, _upload_id(request))
        return web.Response(status=204)

    # -- parts -------------------------------------------------------------------------
    async def upload_part(self, request: S3Request) -> web.StreamResponse:
        number = _part_number(request)
        upload_id = _upload_id(request)
        bucket = await _writable(request)
        await self.uploads.upload(bucket.name, request.key, upload_id)  # NoSuchUpload early
        body = request.body()
        if body.size > PART_SIZE_BYTES_MAX:
            raise S3Error("EntityTooLarge", f"a part is at most {PART_SIZE_BYTES_MAX} bytes")
        stored = await request.service.store_part(
            bucket.name, body.pieces(), expected_size=body.size
        )
        part = Part(
            number,
            stored.size,
            stored.md5.hex(),
            request.api.clock.wall(),
            tuple(PartChunk(chunk_id, length) for chunk_id, length in stored.refs),
            dict(body.checksums),
        )
        await self.uploads.put_part(bucket.name, request.key, upload_id, part)
        headers = {"ETag": f'"{part.etag}"'}
        for algorithm, value in body.checksums.items():
            headers[f"x-amz-checksum-{algorithm}"] = value
        return web.Response(status=200, headers=headers)

    async def upload_part_copy(self, request: S3Request) -> web.StreamResponse:
        number = _part_number(request)
        upload_id = _upload_id(request)
        source_bucket, source_key, source_version = parse_copy_source(
            request.headers["x-amz-copy-source"]
        )
        await bucket_for(request, source_bucket)
        target = await _writable(request)
        await self.uploads.upload(target.name, request.key, upload_id)
        version = await request.service.head(source_bucket, source_key, source_version)
        manifest = version.manifest
        assert manifest is not None
        evaluate(
            copy_source_conditions(request.headers), manifest.etag, manifest.created_s, copy=True
        )
        byte_range = parse_copy_range(request.headers.get("x-amz-copy-source-range"), manifest.size)
        if byte_range.length > PART_SIZE_BYTES_MAX:
            raise S3Error(
                "InvalidRequest",
                f"the copy source range is larger than the maximum part size {PART_SIZE_BYTES_MAX}",
            )
        part = await self._copied_part(request, target, manifest, byte_range, number)
        await self.uploads.put_part(target.name, request.key, upload_id, part)
        headers: dict[str, str] = {}
        if version.version_id != "null":
            headers["x-amz-copy-source-version-id"] = version.version_id
        body = mxml.copy_part_result(part.etag, part.created_s)
        return xml_response(body, headers=headers)

    async def _copied_part(
        self,
        request: S3Request,
        target: Bucket,
        manifest: Manifest,
        byte_range: ByteRange,
        number: int,
    ) -> Part:
        now = request.api.clock.wall()
        if byte_range.length == 0:
            return Part(number, 0, _EMPTY_MD5, now)
        slices = slices_for_range(manifest, byte_range) if manifest.inline is None else []
        if slices and all(s.start == 0 and s.end == s.ref.length for s in slices):
            chunks = tuple(PartChunk(s.ref.chunk_id, s.ref.length) for s in slices)
            whole = byte_range.length == manifest.size
            if whole and manifest.part_count == 0:
                md5 = manifest.etag  # a single PUT's ETag is the MD5 of its bytes
            else:
                md5 = await self._md5_of(request, manifest, byte_range)
            await self._touch(request, [c.chunk_id for c in chunks])
            return Part(number, byte_range.length, md5, now, chunks)
        service = request.service
        body = service.reader.stream(manifest, byte_range)
        async with contextlib.aclosing(body):
            stored = await service.store_part(target.name, body, expected_size=byte_range.length)
        chunks = tuple(PartChunk(chunk_id, length) for chunk_id, length in stored.refs)
        return Part(number, stored.size, stored.md5.hex(), now, chunks)

    @staticmethod
    async def _md5_of(request: S3Request, manifest: Manifest, byte_range: ByteRange) -> str:
        digest = hashlib.md5(usedforsecurity=False)
        loop = asyncio.get_running_loop()
        body = request.service.reader.stream(manifest, byte_range)
        async with contextlib.aclosing(body):
            async for piece in body:
                if len(piece) >= HASH_OFFLOAD_BYTES_MIN:
                    await loop.run_in_executor(request.api.executor, digest.update, piece)
                else:
                    digest.update(piece)
        return digest.hexdigest()

    @staticmethod
    async def _touch(request: S3Request, chunk_ids: list[bytes]) -> None:
        """Refresh the GC clock of every chunk and make sure each is still stored."""
        ids = list(dict.fromkeys(chunk_ids))
        service = request.service
        for start in range(0, len(ids), TOUCH_BATCH_IDS_MAX):
            batch = ids[start : start + TOUCH_BATCH_IDS_MAX]
            present = await service.chunks.present(batch, service.default_level)
            if len(present) < len(batch):
                raise S3Error(
                    "ServiceUnavailable", "some chunks of the copy source are unavailable; retry"
                )

    # -- complete ----------------------------------------------------------------------
    async def complete(self, request: S3Request) -> web.StreamResponse:
        # `If-None-Match: *` / `If-Match`, checked by the index shard in the same command
        # that commits the object (a failed condition leaves the upload to retry or abort).
        condition = write_condition(request.headers)
        upload_id = _upload_id(request)
        fence = await self.fence()  # a stale one is refused here, or by the shard
        bucket = await _writable(request)
        parts = mxml.parse_complete(await request.small_body())
        result = await self.uploads.complete(
            bucket.name,
            request.key,
            upload_id,
            parts,
            bucket.versioning,
            created_s=request.api.clock.wall(),
            condition=condition,
            fence=fence,
        )
        location = str(request.http.url.with_query(None))
        headers: dict[str, str] = {}
        if result.version_id != "null":
            headers["x-amz-version-id"] = result.version_id
        body = mxml.complete_result(location, bucket.name, request.key, result.etag)
        return xml_response(body, headers=headers)

    # -- listings ----------------------------------------------------------------------
    async def list_parts(self, request: S3Request) -> web.StreamResponse:
        upload_id = _upload_id(request)
        bucket = await bucket_for(request)
        marker = _int_param(request, "part-number-marker", 0, 0, PART_NUMBER_MAX)
        max_parts = _int_param(request, "max-parts", LIST_PARTS_MAX, 0, 2**31)
        max_parts = min(max_parts, LIST_PARTS_MAX)
        page = await self.uploads.list_parts(bucket.name, request.key, upload_id, marker, max_parts)
        listing = mxml.PartsListing(
            bucket=bucket.name,
            key=request.key,
            upload_id=upload_id,
            initiator=page.upload.initiator or bucket.owner,
            owner=bucket.owner,
            part_number_marker=marker,
            next_part_number_marker=page.next_part_number_marker,
            max_parts=max_parts,
            is_truncated=page.is_truncated,
            parts=[
                mxml.ListedPart(p.part_number, p.created_s, p.etag, p.size, p.checksums)
                for p in page.parts
            ],
            checksum_algorithm=page.upload.checksum_algorithm,
        )
        return xml_response(mxml.list_parts_result(listing))

    async def list_uploads(self, request: S3Request) -> web.StreamResponse:
        bucket = await bucket_for(request)
        encoding, encode = _encoder(request)
        params = request.params
        prefix = params.get("prefix", "")
        delimiter = params.get("delimiter", "")
        key_marker = params.get("key-marker", "")
        upload_id_marker = params.get("upload-id-marker", "") if key_marker else ""
        max_uploads = _int_param(request, "max-uploads", LIST_UPLOADS_MAX, 0, 2**31)
        max_uploads = min(max_uploads, LIST_UPLOADS_MAX)
        page = await self.uploads.list_uploads(
            bucket.name, prefix, delimiter, key_marker, upload_id_marker, max_uploads
        )
        listing = mxml.UploadsListing(
            bucket=bucket.name,
            prefix=encode(prefix),
            delimiter=encode(delimiter),
            key_marker=encode(key_marker),
            upload_id_marker=upload_id_marker,
            next_key_marker=encode(page.next_key_marker),
            next_upload_id_marker=page.next_upload_id_marker,
            max_uploads=max_uploads,
            is_truncated=page.is_truncated,
            encoding_type=encoding,
            uploads=[
                mxml.ListedUpload(
                    encode(u.key),
                    u.upload_id,
                    u.initiator or bucket.owner,
                    bucket.owner,
                    u.created_s,
                )
                for u in page.uploads
            ],
            common_prefixes=[encode(p) for p in page.common_prefixes],
        )
        return xml_response(mxml.list_uploads_result(listing))


def register_multipart(
    app: S3App, uploads: UploadClient, fence: FenceCheck = _no_fence
) -> MultipartHandlers:
    """Serve the multipart operations of `app` from the index shards behind `uploads`;
    `fence` checks a Complete's `X-Cairn-Fence`."""
    handlers = MultipartHandlers(uploads, fence)
    for op, handler in handlers.handlers().items():
        app.register(op, handler)
    return handlers
