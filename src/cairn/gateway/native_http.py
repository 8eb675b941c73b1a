"""The native HTTP object API, mounted under `/_cairn/v1/` on the gateway's HTTP port.

Why its own prefix: the S3 API (issue 7) will serve the same port, with buckets as the
first path segment. S3 bucket names cannot start with `_`, so nothing under `/_cairn/`
can ever be a bucket, and the two APIs never compete for a path.

Routes (all under `/_cairn/v1`):

| method | path                        | does                                         |
|--------|-----------------------------|----------------------------------------------|
| GET    | /buckets                    | list buckets (JSON)                          |
| PUT    | /buckets/{bucket}           | make a bucket                                |
| DELETE | /buckets/{bucket}           | remove an empty bucket (204)                 |
| PUT    | /objects/{bucket}/{key}     | store the body (streamed); JSON outcome      |
| GET    | /objects/{bucket}/{key}     | the bytes (streamed); `Range` -> 206         |
| HEAD   | /objects/{bucket}/{key}     | the headers of GET without a body            |
| DELETE | /objects/{bucket}/{key}     | delete; JSON `{"deleted": ...}`              |
| GET    | /list/{bucket}?prefix=&delimiter=&continuation-token=&max-keys=  | one page |

Keys are percent-encoded in the path (`/` may stay as is). Request headers:
`Authorization: Cairn <token>` (see `keys.native_token`; anything else is a 403),
`X-Cairn-Write-Consistency: one|quorum|all` on PUT, `Content-Type` and
`X-Cairn-Meta-<name>` (user metadata) on PUT, `Range: bytes=...` on GET. Response
headers of GET/HEAD: `ETag` (quoted), `Content-Length`, `Last-Modified`, `Content-Type`,
`Accept-Ranges`, `Content-Range` (206), `X-Cairn-Version-Id`, `X-Cairn-Meta-<name>`.

Errors are a JSON body `{"code": ..., "message": ...}` with the status of
`errors.STATUS_OF_CODE`; every input is parsed before it is used, so bad input is a 4xx,
never a 500. A GET that fails after its headers went out (a chunk became unreadable
mid-stream) can only be cut short: the connection is closed before `Content-Length`
bytes, which every HTTP client reports as an error.
"""

import contextlib
import email.utils
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

from cairn.base.checksum import Buffer
from cairn.gateway.errors import ApiError, api_error
from cairn.gateway.keys import authorization_matches
from cairn.gateway.objects import ObjectService, parse_level
from cairn.gateway.ranges import content_range, parse_range_header
from cairn.meta.index import ObjectVersion
from cairn.meta.manifest import Manifest
from cairn.monitor.logs import log_event

log = logging.getLogger("cairn.gateway")

PREFIX = "/_cairn/v1"
WRITE_CONSISTENCY_HEADER = "X-Cairn-Write-Consistency"
VERSION_ID_HEADER = "X-Cairn-Version-Id"
META_HEADER_PREFIX = "X-Cairn-Meta-"
BODY_PIECE_BYTES = 256 * 1024
_SERVICE = web.AppKey("service", ObjectService)
_STREAMING = web.RequestKey("streaming", bool)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


ERROR_CODE_HEADER = "X-Cairn-Error-Code"


def error_response(error: ApiError) -> web.Response:
    """The JSON error body; the code is also a header, for HEAD (which has no body)."""
    return web.json_response(
        {"code": error.code, "message": error.message[:4096]},
        status=error.status,
        headers={ERROR_CODE_HEADER: error.code},
    )


def native_app(service: ObjectService, token: str) -> web.Application:
    """The native API as an aiohttp sub-application; mount it at `PREFIX`."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not authorization_matches(request.headers.get("Authorization"), token):
            return error_response(ApiError("AccessDenied", "missing or wrong Cairn token"))
        try:
            return await handler(request)
        except web.HTTPException as exc:  # no such route, wrong method
            code = "MethodNotAllowed" if exc.status == 405 else "InvalidRequest"
            return error_response(ApiError(code, exc.reason, exc.status))
        except Exception as exc:
            if request.get(_STREAMING):
                raise  # headers are out: aiohttp cuts the connection short
            error = api_error(exc)
            if error.status >= 500:
                log_event(
                    log,
                    "gateway.request_failed",
                    logging.WARNING,
                    method=request.method,
                    path=request.path,
                    code=error.code,
                    error=error.message,
                )
            return error_response(error)

    app = web.Application(middlewares=[guard])
    app[_SERVICE] = service
    routes = [
        web.get("/buckets", _list_buckets),
        web.put("/buckets/{bucket}", _make_bucket),
        web.delete("/buckets/{bucket}", _remove_bucket),
        web.put("/objects/{bucket}/{key:.*}", _put_object),
        web.get("/objects/{bucket}/{key:.*}", _get_object, allow_head=False),
        web.head("/objects/{bucket}/{key:.*}", _head_object),
        web.delete("/objects/{bucket}/{key:.*}", _delete_object),
        web.get("/list/{bucket}", _list_objects),
    ]
    app.add_routes(routes)
    return app


def mount(app: web.Application, service: ObjectService, token: str) -> None:
    app.add_subapp(PREFIX, native_app(service, token))


def _service(request: web.Request) -> ObjectService:
    return request.config_dict[_SERVICE]


def _http_date(seconds: float) -> str:
    return email.utils.formatdate(seconds, usegmt=True)


def _int_query(request: web.Request, name: str, default: int) -> int:
    text = request.query.get(name)
    if text is None or text == "":
        return default
    if not text.isdigit() or len(text) > 9:
        raise ApiError("InvalidArgument", f"{name} must be a non-negative integer: {text!r}")
    return int(text)


# -- buckets -----------------------------------------------------------------------------
async def _list_buckets(request: web.Request) -> web.Response:
    buckets = await _service(request).list_buckets()
    return web.json_response(
        {
            "buckets": [
                {"name": b.name, "created_s": b.created_s, "versioning": str(b.versioning)}
                for b in buckets
            ]
        }
    )


async def _make_bucket(request: web.Request) -> web.Response:
    bucket = await _service(request).make_bucket(request.match_info["bucket"])
    return web.json_response({"name": bucket.name, "created_s": bucket.created_s})


async def _remove_bucket(request: web.Request) -> web.Response:
    await _service(request).remove_bucket(request.match_info["bucket"])
    return web.Response(status=204)


# -- objects -----------------------------------------------------------------------------
async def _body(request: web.Request) -> AsyncIterator[Buffer]:
    """The request body in pieces; a client that goes away mid-body is a 400, not a 500."""
    try:
        async for piece in request.content.iter_chunked(BODY_PIECE_BYTES):
            yield piece
    except (aiohttp.ClientPayloadError, ConnectionError) as exc:
        raise ApiError("IncompleteBody", f"the request body was cut short: {exc}") from None


async def _put_object(request: web.Request) -> web.Response:
    service = _service(request)
    level = parse_level(request.headers.get(WRITE_CONSISTENCY_HEADER), service.default_level)
    metadata = {
        name[len(META_HEADER_PREFIX) :].lower(): value
        for name, value in request.headers.items()
        if name.lower().startswith(META_HEADER_PREFIX.lower())
    }
    outcome = await service.put(
        request.match_info["bucket"],
        request.match_info["key"],
        _body(request),
        level=level,
        content_type=request.headers.get("Content-Type"),
        metadata=metadata,
        expected_size=request.content_length,
    )
    return web.json_response(
        {
            "etag": outcome.etag,
            "size": outcome.size,
            "version_id": outcome.version_id,
            "chunks": outcome.chunks,
            "new_chunks": outcome.new_chunks,
            "new_bytes": outcome.new_bytes,
            "stored_bytes": outcome.stored_bytes,
        },
        headers={"ETag": f'"{outcome.etag}"', VERSION_ID_HEADER: outcome.version_id},
    )


def _object_headers(version: ObjectVersion, manifest: Manifest) -> dict[str, str]:
    headers = {
        "ETag": f'"{manifest.etag}"',
        "Last-Modified": _http_date(manifest.created_s),
        "Content-Type": manifest.content_type,
        "Accept-Ranges": "bytes",
        VERSION_ID_HEADER: version.version_id,
    }
    for name, value in manifest.user_metadata.items():
        headers[META_HEADER_PREFIX + name] = value
    return headers


async def _head_object(request: web.Request) -> web.Response:
    version = await _service(request).head(request.match_info["bucket"], request.match_info["key"])
    assert version.manifest is not None
    headers = _object_headers(version, version.manifest)
    headers["Content-Length"] = str(version.manifest.size)
    return web.Response(status=200, headers=headers)


async def _get_object(request: web.Request) -> web.StreamResponse:
    bounds = parse_range_header(request.headers.get("Range"))
    read = await _service(request).get(
        request.match_info["bucket"], request.match_info["key"], bounds
    )
    headers = _object_headers(read.version, read.manifest)
    status = 200
    if read.byte_range is not None:
        status = 206
        headers["Content-Range"] = content_range(read.byte_range, read.manifest.size)
    async with contextlib.aclosing(read.body) as body:
        first = await anext(body, b"")  # the first chunk's failure is still a clean error
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = read.content_length
        request[_STREAMING] = True
        await response.prepare(request)
        if first:
            await response.write(first)
        async for piece in body:
            await response.write(piece)
    await response.write_eof()
    return response


async def _delete_object(request: web.Request) -> web.Response:
    result = await _service(request).delete(request.match_info["bucket"], request.match_info["key"])
    body: dict[str, Any] = {
        "deleted": result.deleted,
        "version_id": result.version_id,
        "delete_marker": result.delete_marker,
    }
    return web.json_response(body)


async def _list_objects(request: web.Request) -> web.Response:
    page = await _service(request).list(
        request.match_info["bucket"],
        prefix=request.query.get("prefix", ""),
        delimiter=request.query.get("delimiter", ""),
        continuation_token=request.query.get("continuation-token") or None,
        max_keys=_int_query(request, "max-keys", 1000),
        start_after=request.query.get("start-after", ""),
    )
    entries = []
    for entry in page.entries:
        manifest = entry.version.manifest
        entries.append(
            {
                "key": entry.key,
                "size": entry.version.size,
                "etag": manifest.etag if manifest else "",
                "last_modified_s": entry.version.created_s,
                "version_id": entry.version.version_id,
            }
        )
    return web.json_response(
        {
            "entries": entries,
            "common_prefixes": page.common_prefixes,
            "is_truncated": page.is_truncated,
            "next_continuation_token": page.next_continuation_token,
        }
    )
