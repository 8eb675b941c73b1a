"""ListObjects (v1), ListObjectsV2 and ListObjectVersions over the index shards' pages.

Theory of operation. The index (`meta.index`) pages in key order with an opaque
continuation token that encodes the first key the next page may return; both API
versions are thin translations of it:

- V2 passes `continuation-token` and `start-after` through and returns the index's token
  as `NextContinuationToken`.
- V1 has only `marker` ("list keys after this one") and answers `NextMarker` = the last
  key or common prefix it returned. A marker that falls inside a common prefix of the
  request (`prefix` + ... + `delimiter`) resumes *after every key under that prefix*,
  so a page that ended on a common prefix does not return it again on the next page;
  any other marker resumes just after itself. Both become an index token.

ListObjectVersions maps one to one onto the index's versions pages
(`IndexShard.list_versions`), which take S3's `key-marker` and `version-id-marker` and
answer the next ones; objects and delete markers come in key order, each key's newest
first, and versions written while the bucket was unversioned or suspended have the id
`null`.

`max-keys` is 0..1000 (larger asks are clamped to 1000, as S3 does; keys and common
prefixes both count). With `encoding-type=url`, keys, prefixes, the delimiter and the
markers in the response are percent-encoded (space as %20, `/` kept), which boto3 and the
aws cli request by default and decode.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

from aiohttp import web

from cairn.gateway.s3 import xml
from cairn.gateway.s3.context import S3Request, bucket_for, xml_response
from cairn.gateway.s3.errors import S3Error
from cairn.meta.index import (
    LIST_KEYS_MAX,
    ListPage,
    VersionsPage,
    encode_token,
    successor_of_prefix,
)

MAX_KEYS_TEXT_CHARS_MAX = 10


def _max_keys(request: S3Request) -> int:
    text = request.params.get("max-keys")
    if text is None or text == "":
        return LIST_KEYS_MAX
    if not text.isdigit() or len(text) > MAX_KEYS_TEXT_CHARS_MAX:
        raise S3Error("InvalidArgument", "max-keys must be a non-negative integer")
    return min(int(text), LIST_KEYS_MAX)


def _encoding(request: S3Request) -> str | None:
    encoding = request.params.get("encoding-type")
    if encoding is None or encoding == "":
        return None
    if encoding.lower() != "url":
        raise S3Error("InvalidArgument", "Invalid Encoding Method specified in Request")
    return "url"


def _url_encode(text: str) -> str:
    return quote(text, safe="/")


def _as_is(text: str) -> str:
    return text


def _encoder(encoding: str | None) -> Callable[[str], str]:
    return _url_encode if encoding == "url" else _as_is


def _result(
    request: S3Request,
    owner: str,
    page: ListPage,
    prefix: str,
    delimiter: str,
    max_keys: int,
    encoding: str | None,
) -> xml.ListResult:
    encode = _encoder(encoding)
    objects = []
    for entry in page.entries:
        manifest = entry.version.manifest
        objects.append(
            xml.ListedObject(
                key=encode(entry.key),
                last_modified_s=entry.version.created_s,
                etag=manifest.etag if manifest is not None else "",
                size=entry.version.size,
                owner=owner,
            )
        )
    return xml.ListResult(
        bucket=request.bucket,
        prefix=encode(prefix),
        delimiter=encode(delimiter),
        max_keys=max_keys,
        encoding_type=encoding,
        objects=objects,
        common_prefixes=[encode(p) for p in page.common_prefixes],
        is_truncated=page.is_truncated,
    )


async def list_objects_v2(request: S3Request) -> web.StreamResponse:
    bucket = await bucket_for(request)
    params = request.params
    prefix = params.get("prefix", "")
    delimiter = params.get("delimiter", "")
    token = params.get("continuation-token")
    start_after = params.get("start-after")
    max_keys = _max_keys(request)
    encoding = _encoding(request)
    if token == "":
        raise S3Error("InvalidArgument", "The continuation token provided is incorrect")
    page = await request.service.list(
        bucket.name,
        prefix=prefix,
        delimiter=delimiter,
        continuation_token=token,
        max_keys=max_keys,
        start_after=start_after or "",
    )
    encode = _encoder(encoding)
    body = xml.list_objects_v2(
        _result(request, bucket.owner, page, prefix, delimiter, max_keys, encoding),
        key_count=page.key_count,
        continuation_token=token,
        next_continuation_token=page.next_continuation_token if page.is_truncated else None,
        start_after=encode(start_after) if start_after is not None else None,
        fetch_owner=params.get("fetch-owner", "").lower() == "true",
    )
    return xml_response(body)


def marker_token(marker: str, prefix: str, delimiter: str) -> str | None:
    """The index token that resumes a V1 listing after `marker` (see the module doc)."""
    if not marker:
        return None
    raw = marker.encode()
    if delimiter and marker.startswith(prefix):
        cut = marker.find(delimiter, len(prefix))
        if cut >= 0:
            common = marker[: cut + len(delimiter)].encode()
            after = successor_of_prefix(common)
            if after is not None:
                return encode_token(max(after, raw + b"\x00"))
    return encode_token(raw + b"\x00")


async def list_objects_v1(request: S3Request) -> web.StreamResponse:
    bucket = await bucket_for(request)
    params = request.params
    prefix = params.get("prefix", "")
    delimiter = params.get("delimiter", "")
    marker = params.get("marker", "")
    max_keys = _max_keys(request)
    encoding = _encoding(request)
    page = await request.service.list(
        bucket.name,
        prefix=prefix,
        delimiter=delimiter,
        continuation_token=marker_token(marker, prefix, delimiter),
        max_keys=max_keys,
    )
    encode = _encoder(encoding)
    next_marker = None
    if page.is_truncated:
        last = [e.key for e in page.entries[-1:]] + page.common_prefixes[-1:]
        next_marker = encode(max(last)) if last else None
    body = xml.list_objects_v1(
        _result(request, bucket.owner, page, prefix, delimiter, max_keys, encoding),
        encode(marker),
        next_marker,
    )
    return xml_response(body)


async def list_object_versions(request: S3Request) -> web.StreamResponse:
    bucket = await bucket_for(request)
    params = request.params
    key_marker = params.get("key-marker", "")
    version_id_marker = params.get("version-id-marker", "")
    max_keys = _max_keys(request)
    encoding = _encoding(request)
    if version_id_marker and not key_marker:
        raise S3Error(
            "InvalidArgument", "A version-id marker cannot be specified without a key marker."
        )
    page = await request.versions.list_versions(
        bucket.name,
        prefix=params.get("prefix", ""),
        delimiter=params.get("delimiter", ""),
        key_marker=key_marker,
        version_id_marker=version_id_marker,
        max_keys=max_keys,
    )
    return xml_response(xml.list_versions(_versions_result(request, bucket.owner, page, encoding)))


def _versions_result(
    request: S3Request, owner: str, page: VersionsPage, encoding: str | None
) -> xml.VersionsResult:
    params = request.params
    encode = _encoder(encoding)
    truncated = page.is_truncated
    return xml.VersionsResult(
        bucket=request.bucket,
        prefix=encode(params.get("prefix", "")),
        delimiter=encode(params.get("delimiter", "")),
        key_marker=encode(params.get("key-marker", "")),
        version_id_marker=params.get("version-id-marker", ""),
        max_keys=_max_keys(request),
        encoding_type=encoding,
        owner=owner,
        versions=[
            xml.ListedVersion(
                key=encode(entry.key),
                version_id=entry.version_id,
                is_latest=entry.is_latest,
                last_modified_s=entry.created_s,
                etag=entry.etag,
                size=entry.size,
                delete_marker=entry.is_delete_marker,
            )
            for entry in page.entries
        ],
        common_prefixes=[encode(p) for p in page.common_prefixes],
        is_truncated=truncated,
        next_key_marker=encode(page.next_key_marker or "") if truncated else None,
        next_version_id_marker=page.next_version_id_marker if truncated else None,
    )
