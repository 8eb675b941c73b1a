"""S3 bucket operations: ListBuckets, CreateBucket, DeleteBucket, HeadBucket,
GetBucketLocation, GetBucketVersioning, PutBucketVersioning.

Buckets made through S3 are owned by the requesting user (the native API's owner is
`cairn`). ListBuckets lists the requester's buckets (an admin user sees every bucket).
CreateBucket accepts a CreateBucketConfiguration body with any LocationConstraint (Cairn
is one region; the constraint is not stored) and answers `BucketAlreadyOwnedByYou` /
`BucketAlreadyExists` (409) for a taken name. DeleteBucket is the two-phase delete of
`meta.buckets` and fails with `BucketNotEmpty` unless every shard holds no version.
PutBucketVersioning takes `Enabled` or `Suspended` (`xml.parse_versioning`) from the
owner or an admin and proposes `SetVersioning` in the root group; object writes read the
bucket's state on every request, so the next write follows it.
"""

from __future__ import annotations

from aiohttp import web

from cairn.gateway.s3 import xml
from cairn.gateway.s3.context import S3Request, bucket_for, xml_response
from cairn.gateway.s3.errors import S3Error
from cairn.meta.buckets import BucketError, VersioningState, validate_bucket_name


async def list_buckets(request: S3Request) -> web.StreamResponse:
    identity = request.identity
    buckets = await request.service.meta.list_buckets(None if identity.admin else identity.user)
    body = xml.list_buckets(identity.user, ((b.name, b.created_s) for b in buckets))
    return xml_response(body)


async def create_bucket(request: S3Request) -> web.StreamResponse:
    name = request.bucket
    try:
        validate_bucket_name(name)
    except BucketError as exc:
        raise S3Error("InvalidBucketName", str(exc)) from None
    xml.parse_create_bucket(await request.small_body())
    service = request.service
    await service.meta.create_bucket(name, request.identity.user, service.default_policy)
    return web.Response(status=200, headers={"Location": f"/{name}"})


async def delete_bucket(request: S3Request) -> web.StreamResponse:
    bucket = await bucket_for(request)
    service = request.service
    await service.meta.delete_bucket(bucket.name, bucket.owner, service.bucket_delete_settle_s)
    return web.Response(status=204)


async def head_bucket(request: S3Request) -> web.StreamResponse:
    await bucket_for(request)
    return web.Response(status=200, headers={"x-amz-bucket-region": request.api.region})


async def get_bucket_location(request: S3Request) -> web.StreamResponse:
    await bucket_for(request)
    return xml_response(xml.location(request.api.region))


async def get_bucket_versioning(request: S3Request) -> web.StreamResponse:
    bucket = await bucket_for(request)
    status = {
        VersioningState.ENABLED: "Enabled",
        VersioningState.SUSPENDED: "Suspended",
    }.get(bucket.versioning)
    return xml_response(xml.versioning(status))


_VERSIONING_OF_STATUS = {
    "Enabled": VersioningState.ENABLED,
    "Suspended": VersioningState.SUSPENDED,
}


async def put_bucket_versioning(request: S3Request) -> web.StreamResponse:
    bucket = await bucket_for(request)
    status = xml.parse_versioning(await request.small_body())
    # The machine checks the owner: an admin acts as the bucket's owner, as DeleteBucket does.
    await request.versions.set_versioning(bucket.name, bucket.owner, _VERSIONING_OF_STATUS[status])
    return web.Response(status=200)
