"""What every S3 handler gets: the parsed request, who sent it, and the shared services.

`S3Request` is built by `app` after the endpoint is parsed and the signature verified; a
handler never looks at authentication again. Versioning configuration and version
listings go to the metadata client through `VersionsPort` (`S3Api.versions`), which the
object service's `MetaPort` does not carry. Bucket access goes through `bucket_for`,
the one place that enforces ownership: a bucket's owner (or an admin user) may do
anything with it and its objects, anyone else gets `AccessDenied`, and a bucket that does
not exist is `NoSuchBucket` whoever asks.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from cairn.gateway.objects import ObjectService
from cairn.gateway.s3.auth import Authenticated, Authenticator, Identity
from cairn.gateway.s3.body import RequestBody
from cairn.gateway.s3.endpoint import Endpoint
from cairn.gateway.s3.errors import S3Error
from cairn.gateway.s3.xml import XML_BODY_BYTES_MAX
from cairn.meta.buckets import Bucket, BucketError, VersioningState, validate_bucket_name
from cairn.meta.index import VersionsPage
from cairn.runtime.clock import Clock

REGION = "us-east-1"
"""The region Cairn reports (signatures for any region are accepted)."""
XML_CONTENT_TYPE = "application/xml"


class VersionsPort(Protocol):
    """What versioning needs from the metadata service (`node.meta_client.MetaClient`)."""

    async def set_versioning(
        self, name: str, owner: str, versioning: VersioningState
    ) -> Bucket: ...

    async def list_versions(
        self,
        bucket: str,
        prefix: str = "",
        delimiter: str = "",
        key_marker: str = "",
        version_id_marker: str = "",
        max_keys: int = 1000,
    ) -> VersionsPage: ...


@dataclass
class S3Api:
    """The long-lived parts every request shares."""

    service: ObjectService
    authenticator: Authenticator
    clock: Clock
    executor: concurrent.futures.Executor
    region: str = REGION
    versions: VersionsPort | None = None
    """None: PutBucketVersioning and ListObjectVersions answer NotImplemented."""


@dataclass
class S3Request:
    http: web.Request
    endpoint: Endpoint
    auth: Authenticated
    headers: Mapping[str, str]
    """Lower-case header names, first value of each."""
    lines: list[tuple[str, str]]
    """Every header line as received."""
    api: S3Api

    @property
    def identity(self) -> Identity:
        return self.auth.identity

    @property
    def service(self) -> ObjectService:
        return self.api.service

    @property
    def versions(self) -> VersionsPort:
        if self.api.versions is None:
            raise S3Error("NotImplemented", f"{self.endpoint.op} needs the metadata client")
        return self.api.versions

    @property
    def bucket(self) -> str:
        return self.endpoint.bucket

    @property
    def key(self) -> str:
        return self.endpoint.key

    @property
    def params(self) -> Mapping[str, str]:
        return self.endpoint.params

    def body(self) -> RequestBody:
        return RequestBody(self.http.content, self.headers, self.auth, self.api.executor)

    async def small_body(self, limit: int = XML_BODY_BYTES_MAX) -> bytes:
        """The whole (verified) body of a request that carries a small document."""
        if not self.http.can_read_body:
            return b""
        body = self.body()
        if body.size > limit:
            raise S3Error("MalformedXML", f"the request body is over {limit} bytes")
        parts: list[bytes] = []
        async for piece in body.pieces():
            parts.append(bytes(piece))
        return b"".join(parts)


Handler = Callable[[S3Request], Awaitable[web.StreamResponse]]


def xml_response(
    body: bytes, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=body, status=status, content_type=XML_CONTENT_TYPE, headers=dict(headers or {})
    )


async def bucket_for(request: S3Request, name: str | None = None) -> Bucket:
    """The bucket, if it exists and the requester may use it (see the module doc)."""
    name = request.bucket if name is None else name
    try:
        validate_bucket_name(name)
    except BucketError:
        raise S3Error("NoSuchBucket", "the specified bucket does not exist") from None
    bucket = await request.service.meta.get_bucket(name)
    if not request.identity.may_use(bucket.owner):
        raise S3Error("AccessDenied", "Access Denied")
    return bucket
