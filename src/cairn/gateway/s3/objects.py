"""S3 object operations: PutObject, GetObject, HeadObject, DeleteObject, DeleteObjects,
CopyObject.

Theory of operation. Each handler checks bucket access (`context.bucket_for`), parses
every header it uses into typed values before touching the object service, and maps the
outcome to S3's headers. The object service (`gateway.objects`) does the storage work:

- PutObject streams the body through `body.RequestBody` (aws-chunked decoding, digest
  checks) into `ObjectService.put`, which commits the manifest only after the body
  iterator ended, so a failed check leaves nothing visible. The verified checksum is
  stored in the manifest and returned on GET/HEAD with `x-amz-checksum-mode: ENABLED`.
  Single PUTs are limited to `PUT_OBJECT_BYTES_MAX` (5 GiB), as in S3. `If-None-Match: *`
  and `If-Match` make it a conditional write, checked in the index shard as the manifest
  commits (412 PreconditionFailed; If-Match on a missing key: 404 NoSuchKey).
- GetObject/HeadObject evaluate the conditional headers (`conditions`) against the
  manifest; Range (`bytes=a-b`, `a-`, `-n`) gives 206 with Content-Range, an
  unsatisfiable one 416; `?partNumber=N` gives one part of a multipart object (206 with
  Content-Range and `x-amz-mp-parts-count`; a single PUT is part 1; 416
  InvalidPartNumber past the last part; 400 together with a Range, as S3 answers);
  `response-*` parameters override response headers. The first
  chunk is fetched before the status line goes out, so a read failure there is still a
  clean S3 error; a failure later can only cut the connection short.
- CopyObject copies the *manifest*: the chunks are content-addressed and shared, so a copy
  of any size moves no data. It touches the chunks first (`present`, which also proves
  they exist) so a GC round racing with a delete of the source cannot sweep them before
  the new manifest refers to them. `x-amz-metadata-directive` COPY keeps the source's
  attributes, REPLACE takes the request's; copying an object onto itself needs REPLACE.
- DeleteObjects deletes up to 1000 keys (each with its VersionId, if given),
  `DELETE_PARALLEL_MAX` at a time; each key's failure is reported in the result, and quiet
  mode reports only failures.
- Delete markers answer as in S3: GET/HEAD of a key whose newest version is a marker is
  404 NoSuchKey with `x-amz-delete-marker: true` (and the marker's version id); GET/HEAD
  `?versionId=` of a marker is 405 MethodNotAllowed with the same headers. Both are
  worked out only on the NoSuchKey path, with one more metadata read.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import unquote_to_bytes

import msgspec
from aiohttp import web

from cairn.gateway.errors import api_error
from cairn.gateway.ranges import content_range, parse_range_header, select_range
from cairn.gateway.s3 import xml
from cairn.gateway.s3.conditions import (
    copy_source_conditions,
    evaluate,
    request_conditions,
    write_condition,
)
from cairn.gateway.s3.context import S3Request, bucket_for, xml_response
from cairn.gateway.s3.errors import S3Error, from_code
from cairn.gateway.s3.headers import attributes_from, http_date, object_headers
from cairn.meta.manifest import Manifest
from cairn.meta.uploads import PART_NUMBER_MAX

PUT_OBJECT_BYTES_MAX = 5 * 1024**3
DELETE_PARALLEL_MAX = 16
TOUCH_BATCH_IDS_MAX = 1024
STREAMING_KEY = web.RequestKey("s3_streaming", bool)


def _checksum_mode(request: S3Request) -> bool:
    return request.headers.get("x-amz-checksum-mode", "").upper() == "ENABLED"


def _not_modified(manifest: Manifest) -> web.Response:
    return web.Response(
        status=304,
        headers={"ETag": f'"{manifest.etag}"', "Last-Modified": http_date(manifest.created_s)},
    )


# -- PUT ------------------------------------------------------------------------------------
async def put_object(request: S3Request) -> web.StreamResponse:
    condition = write_condition(request.headers)
    bucket = await bucket_for(request)
    attributes = attributes_from(request.headers, request.lines)
    body = request.body()
    if body.size > PUT_OBJECT_BYTES_MAX:
        raise S3Error(
            "EntityTooLarge",
            f"a single PUT is at most {PUT_OBJECT_BYTES_MAX} bytes; use multipart upload",
        )
    outcome = await request.service.put(
        bucket.name,
        request.key,
        body.pieces(),
        content_type=attributes.content_type,
        metadata=attributes.metadata,
        expected_size=body.size,
        content_headers=attributes.content_headers,
        checksums=body.verified_checksums,
        condition=condition,
    )
    headers = {"ETag": f'"{outcome.etag}"'}
    for algorithm, value in body.checksums.items():
        headers[f"x-amz-checksum-{algorithm}"] = value
    if outcome.version_id != "null":
        headers["x-amz-version-id"] = outcome.version_id
    return web.Response(status=200, headers=headers)


# -- GET / HEAD -----------------------------------------------------------------------------
def _part_number(request: S3Request) -> int | None:
    """GET/HEAD `?partNumber=N` (1..10000); S3 refuses it together with a Range."""
    value = request.params.get("partNumber")
    if value is None:
        return None
    if not value.isdigit() or not 1 <= int(value) <= PART_NUMBER_MAX:
        raise S3Error("InvalidArgument", f"partNumber must be in 1..{PART_NUMBER_MAX}")
    if "range" in request.headers:
        raise S3Error("InvalidRequest", "cannot specify both Range and partNumber")
    return int(value)


def _part_headers(headers: dict[str, str], manifest: Manifest, part_number: int | None) -> None:
    if part_number is not None and manifest.part_count:
        headers["x-amz-mp-parts-count"] = str(manifest.part_count)


async def get_object(request: S3Request) -> web.StreamResponse:
    part_number = _part_number(request)
    bucket = await bucket_for(request)
    bounds = parse_range_header(request.headers.get("range"))
    version_id = request.params.get("versionId")
    try:
        read = await request.service.get(bucket.name, request.key, bounds, version_id, part_number)
    except Exception as exc:
        raise await _deleted(request, bucket.name, version_id, exc) from None
    async with contextlib.aclosing(read.body) as body:
        manifest = read.manifest
        try:
            evaluate(request_conditions(request.headers), manifest.etag, manifest.created_s)
        except S3Error as exc:
            if exc.code == "NotModified":
                return _not_modified(manifest)
            raise
        headers = object_headers(
            manifest,
            read.version.version_id,
            request.params,
            _checksum_mode(request) and read.byte_range is None,
        )
        _part_headers(headers, manifest, part_number)
        status = 200
        if read.byte_range is not None:
            status = 206
            headers["Content-Range"] = content_range(read.byte_range, manifest.size)
        first = await anext(body, b"")
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = read.content_length
        request.http[STREAMING_KEY] = True
        await response.prepare(request.http)
        if first:
            await response.write(first)
        async for piece in body:
            await response.write(piece)
    await response.write_eof()
    return response


async def head_object(request: S3Request) -> web.StreamResponse:
    part_number = _part_number(request)
    bucket = await bucket_for(request)
    version_id = request.params.get("versionId")
    try:
        version = await request.service.head(bucket.name, request.key, version_id)
    except Exception as exc:
        raise await _deleted(request, bucket.name, version_id, exc) from None
    manifest = version.manifest
    assert manifest is not None
    try:
        evaluate(request_conditions(request.headers), manifest.etag, manifest.created_s)
    except S3Error as exc:
        if exc.code == "NotModified":
            return _not_modified(manifest)
        raise
    bounds = parse_range_header(request.headers.get("range"))
    byte_range = select_range(manifest, bounds, part_number)
    headers = object_headers(
        manifest, version.version_id, request.params, _checksum_mode(request) and byte_range is None
    )
    _part_headers(headers, manifest, part_number)
    status = 200
    length = manifest.size
    if byte_range is not None:
        status = 206
        length = byte_range.length
        headers["Content-Range"] = content_range(byte_range, manifest.size)
    headers["Content-Length"] = str(length)
    return web.Response(status=status, headers=headers)


async def _deleted(
    request: S3Request, bucket: str, version_id: str | None, exc: Exception
) -> Exception:
    """What to raise for a failed read: `exc`, unless it is NoSuchKey because of a delete
    marker (see the module doc)."""
    if api_error(exc).code != "NoSuchKey":
        return exc
    key = request.key
    if version_id is not None:
        version = await request.service.meta.head_object(bucket, key, version_id)
        if not version.is_delete_marker:
            return exc
        headers = _marker_headers(version.version_id, version.created_s)
        message = "The specified method is not allowed against this resource."
        return S3Error("MethodNotAllowed", message, headers=headers)
    versions = request.api.versions
    if versions is None:
        return exc
    newest = (await versions.list_versions(bucket, prefix=key, max_keys=1)).entries
    if not (newest and newest[0].key == key and newest[0].is_delete_marker):
        return exc
    headers = _marker_headers(newest[0].version_id, newest[0].created_s)
    return S3Error("NoSuchKey", "The specified key does not exist.", headers=headers)


def _marker_headers(version_id: str, created_s: float) -> dict[str, str]:
    return {
        "x-amz-delete-marker": "true",
        "x-amz-version-id": version_id,
        "Last-Modified": http_date(created_s),
    }


# -- DELETE ---------------------------------------------------------------------------------
async def delete_object(request: S3Request) -> web.StreamResponse:
    bucket = await bucket_for(request)
    version_id = request.params.get("versionId")
    result = await request.service.delete(bucket.name, request.key, version_id)
    headers: dict[str, str] = {}
    if result.delete_marker:
        headers["x-amz-delete-marker"] = "true"
    if result.version_id and result.version_id != "null":
        headers["x-amz-version-id"] = result.version_id
    return web.Response(status=204, headers=headers)


async def delete_objects(request: S3Request) -> web.StreamResponse:
    bucket = await bucket_for(request)
    parsed = xml.parse_delete(await request.small_body())
    window = asyncio.Semaphore(DELETE_PARALLEL_MAX)

    async def one(key: str, version_id: str | None) -> xml.DeleteOutcome:
        async with window:
            try:
                result = await request.service.delete(bucket.name, key, version_id)
            except Exception as exc:
                error = exc if isinstance(exc, S3Error) else _s3(exc)
                if error.status >= 500:
                    raise
                return xml.DeleteOutcome(
                    key, version_id, error_code=error.code, error_message=error.message
                )
            marker_id = result.version_id if result.delete_marker else None
            return xml.DeleteOutcome(key, version_id, result.delete_marker, marker_id)

    outcomes = await asyncio.gather(*(one(key, version) for key, version in parsed.objects))
    return xml_response(xml.delete_result(outcomes, parsed.quiet))


def _s3(exc: BaseException) -> S3Error:
    error = api_error(exc)
    return from_code(error.code, error.message, error.status)


# -- COPY -----------------------------------------------------------------------------------
def parse_copy_source(value: str) -> tuple[str, str, str | None]:
    """(bucket, key, version id) of an `x-amz-copy-source` header."""
    raw, _, query = value.strip().partition("?")
    try:
        path = unquote_to_bytes(raw.lstrip("/")).decode()
    except UnicodeDecodeError:
        raise S3Error("InvalidArgument", "x-amz-copy-source is not valid UTF-8") from None
    bucket, _, key = path.partition("/")
    if not bucket or not key:
        raise S3Error("InvalidArgument", "x-amz-copy-source must be bucket/key")
    version_id = None
    for item in query.split("&") if query else []:
        name, _, text = item.partition("=")
        if name == "versionId":
            version_id = unquote_to_bytes(text).decode(errors="replace") or None
        else:
            raise S3Error("InvalidArgument", f"unknown x-amz-copy-source parameter {name[:32]!r}")
    return bucket, key, version_id


async def copy_object(request: S3Request) -> web.StreamResponse:
    source_bucket, source_key, source_version = parse_copy_source(
        request.headers["x-amz-copy-source"]
    )
    directive = request.headers.get("x-amz-metadata-directive", "COPY").strip().upper()
    if directive not in ("COPY", "REPLACE"):
        raise S3Error("InvalidArgument", "x-amz-metadata-directive must be COPY or REPLACE")
    attributes = attributes_from(request.headers, request.lines) if directive == "REPLACE" else None
    await bucket_for(request, source_bucket)
    target = await bucket_for(request)
    if not target.writable:
        raise S3Error("InvalidBucketState", f"bucket {target.name!r} is being deleted")
    service = request.service
    version = await service.head(source_bucket, source_key, source_version)
    manifest = version.manifest
    assert manifest is not None
    evaluate(copy_source_conditions(request.headers), manifest.etag, manifest.created_s, copy=True)
    if (source_bucket, source_key) == (target.name, request.key) and attributes is None:
        raise S3Error(
            "InvalidRequest",
            "This copy request is illegal because it is trying to copy an object to itself "
            "without changing the object's metadata",
        )
    now = request.api.clock.wall()
    if attributes is None:
        copied = msgspec.structs.replace(manifest, created_s=now)
    else:
        copied = msgspec.structs.replace(
            manifest,
            created_s=now,
            content_type=attributes.content_type,
            user_metadata=attributes.metadata,
            content_headers=attributes.content_headers,
        )
    await _touch_chunks(request, copied)
    result = await service.meta.put_object(target.name, request.key, copied, target.versioning)
    headers: dict[str, str] = {}
    if version.version_id != "null":
        headers["x-amz-copy-source-version-id"] = version.version_id
    if result.version_id != "null":
        headers["x-amz-version-id"] = result.version_id
    return xml_response(xml.copy_object_result(copied.etag, copied.created_s), headers=headers)


async def _touch_chunks(request: S3Request, manifest: Manifest) -> None:
    """Refresh every chunk's GC clock and make sure each is still stored."""
    ids = list(dict.fromkeys(manifest.chunk_ids()))
    service = request.service
    for start in range(0, len(ids), TOUCH_BATCH_IDS_MAX):
        batch = ids[start : start + TOUCH_BATCH_IDS_MAX]
        present = await service.chunks.present(batch, service.default_level)
        if len(present) < len(set(batch)):
            raise S3Error("ServiceUnavailable", "some chunks of the source are unavailable; retry")
