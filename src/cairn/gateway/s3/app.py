"""The S3 API as an aiohttp application: parse, authenticate, dispatch, answer errors in XML.

Theory of operation. One catch-all route receives every request that is not the native
API's (`/_cairn/...`; S3 bucket names cannot start with `_`). For each request:

1. the raw path and query are parsed into an `Endpoint` (`endpoint.parse_endpoint`): the
   operation, the bucket, the key -- a request that names no operation is answered
   before anything else happens;
2. the signature is verified (`auth.Authenticator`), giving the user;
3. the handler registered for the operation runs (`HANDLERS`; the multipart operations
   are answered `NotImplemented` until `multipart.py` registers its handlers with
   `S3App.register` -- see `endpoint.Op`);
4. any exception becomes the S3 XML error body with its status (`errors`), never a
   traceback; a 5xx is logged. A HEAD answer carries no body, only the status and an
   `x-amz-error-code` header. A GET whose headers already went out cannot change its
   status: the connection is cut short, which clients detect by the missing bytes.

Every response carries `x-amz-request-id` (also in error bodies and in the log line of a
failure) and `Server: Cairn`.
"""

from __future__ import annotations

import concurrent.futures
import logging
import secrets

from aiohttp import web

from cairn.gateway.errors import api_error
from cairn.gateway.objects import ObjectService
from cairn.gateway.s3 import buckets, listing, objects, sigv4
from cairn.gateway.s3 import xml as s3xml
from cairn.gateway.s3.auth import Authenticator, KeyLookup
from cairn.gateway.s3.context import Handler, S3Api, S3Request, VersionsPort
from cairn.gateway.s3.endpoint import Endpoint, Op, parse_endpoint
from cairn.gateway.s3.errors import S3Error, from_code
from cairn.monitor.logs import log_event
from cairn.runtime.clock import Clock, SystemClock

log = logging.getLogger("cairn.gateway.s3")

HASH_WORKERS = 2
"""Threads that hash large upload pieces (hashlib/zlib/crc32c release the GIL)."""

HANDLERS: dict[Op, Handler] = {
    Op.LIST_BUCKETS: buckets.list_buckets,
    Op.CREATE_BUCKET: buckets.create_bucket,
    Op.DELETE_BUCKET: buckets.delete_bucket,
    Op.HEAD_BUCKET: buckets.head_bucket,
    Op.GET_BUCKET_LOCATION: buckets.get_bucket_location,
    Op.GET_BUCKET_VERSIONING: buckets.get_bucket_versioning,
    Op.PUT_BUCKET_VERSIONING: buckets.put_bucket_versioning,
    Op.LIST_OBJECTS: listing.list_objects_v1,
    Op.LIST_OBJECTS_V2: listing.list_objects_v2,
    Op.LIST_OBJECT_VERSIONS: listing.list_object_versions,
    Op.DELETE_OBJECTS: objects.delete_objects,
    Op.PUT_OBJECT: objects.put_object,
    Op.COPY_OBJECT: objects.copy_object,
    Op.GET_OBJECT: objects.get_object,
    Op.HEAD_OBJECT: objects.head_object,
    Op.DELETE_OBJECT: objects.delete_object,
}
"""The handler of each operation; operations missing here are answered NotImplemented."""


def _headers(request: web.Request) -> tuple[dict[str, str], list[tuple[str, str]]]:
    lines = list(request.headers.items())
    first: dict[str, str] = {}
    for name, value in lines:
        first.setdefault(name.lower(), value)
    return first, lines


class S3App:
    def __init__(
        self,
        service: ObjectService,
        keys: KeyLookup,
        cluster_secret: str,
        *,
        clock: Clock | None = None,
        versions: VersionsPort | None = None,
    ) -> None:
        """`versions`: the metadata client for versioning configuration and version
        listings (without it those answer NotImplemented)."""
        self.clock = clock or SystemClock()
        self._executor = concurrent.futures.ThreadPoolExecutor(
            HASH_WORKERS, thread_name_prefix="cairn-s3-hash"
        )
        self.api = S3Api(
            service,
            Authenticator(keys, cluster_secret, self.clock),
            self.clock,
            self._executor,
            versions=versions,
        )
        self.handlers: dict[Op, Handler] = dict(HANDLERS)

    def register(self, op: Op, handler: Handler) -> None:
        """Serve `op` with `handler` (how multipart.py adds its operations)."""
        self.handlers[op] = handler

    def mount(self, app: web.Application) -> None:
        """Add the catch-all S3 route to `app` (after the native API's sub-application)."""
        app.router.add_route("*", "/{tail:.*}", self.handle)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def handle(self, http: web.Request) -> web.StreamResponse:
        request_id = secrets.token_hex(8).upper()
        endpoint: Endpoint | None = None
        try:
            raw_path, _, raw_query = http.raw_path.partition("?")
            query = sigv4.parse_query(raw_query)
            headers, lines = _headers(http)
            endpoint = parse_endpoint(http.method, raw_path, query, headers)
            view = sigv4.RequestView(http.method, raw_path, query, lines)
            authenticated = await self.api.authenticator.authenticate(view)
            handler = self.handlers.get(endpoint.op)
            if handler is None:
                raise S3Error("NotImplemented", f"{endpoint.op} is not implemented yet")
            request = S3Request(http, endpoint, authenticated, headers, lines, self.api)
            response = await handler(request)
        except Exception as exc:
            if http.get(objects.STREAMING_KEY):
                raise  # the status line is out: aiohttp cuts the connection short
            return self._error(http, exc, endpoint, request_id)
        response.headers.setdefault("x-amz-request-id", request_id)
        response.headers.setdefault("Server", "Cairn")
        return response

    def _error(
        self, http: web.Request, exc: Exception, endpoint: Endpoint | None, request_id: str
    ) -> web.Response:
        if isinstance(exc, S3Error):
            error = exc
        else:
            api = api_error(exc)
            error = from_code(api.code, api.message, api.status)
        if error.status >= 500:
            log_event(
                log,
                "s3.request_failed",
                logging.WARNING,
                method=http.method,
                path=http.path[:512],
                code=error.code,
                error=error.message[:1024],
                request_id=request_id,
            )
        headers = {
            **error.headers,
            "x-amz-request-id": request_id,
            "x-amz-error-code": error.code,
            "Server": "Cairn",
        }
        if http.method == "HEAD" or error.status == 304:
            return web.Response(status=error.status, headers=headers)
        resource = endpoint.resource if endpoint is not None else http.path[:1024]
        body = s3xml.error(error.code, error.message[:4096], resource, request_id)
        return web.Response(
            body=body, status=error.status, content_type="application/xml", headers=headers
        )
