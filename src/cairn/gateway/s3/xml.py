"""S3 XML: the response documents the gateway writes and the request bodies it reads. Pure.

Theory of operation. Every document is built as an `xml.etree.ElementTree` tree and
serialised by it, so every value -- keys, prefixes, messages, all of which come from
clients -- is escaped by the serialiser; no XML is made by concatenating strings.
Builders take plain values (not service objects), so this module knows nothing of the
layers below.

Parsing is for the few small bodies S3 requests carry (CreateBucketConfiguration,
Delete, VersioningConfiguration). Bodies are capped (`XML_BODY_BYTES_MAX`) by the caller
before they get here; a document type declaration is refused outright (no entity
expansion, no external entities), and anything that is not the expected shape is
`MalformedXML`. Element names are matched without their namespace, as S3 does.

Keys are written as they are; a key holding characters XML 1.0 cannot carry (control
characters) only round-trips through a listing with `encoding-type=url`, which boto3 and
the aws cli ask for by default.
"""

from __future__ import annotations

import datetime
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cairn.gateway.s3.errors import S3Error

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
XML_BODY_BYTES_MAX = 2 * 1024 * 1024
DELETE_OBJECTS_MAX = 1000


def iso8601(seconds: float) -> str:
    """S3's timestamp form: 2009-10-12T17:50:30.000Z."""
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _document(root: ET.Element) -> bytes:
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document


def _root(name: str) -> ET.Element:
    return ET.Element(name, xmlns=NS)


def _add(parent: ET.Element, name: str, text: object | None = None) -> ET.Element:
    element = ET.SubElement(parent, name)
    if text is not None:
        element.text = str(text)
    return element


def _bool(value: bool) -> str:
    return "true" if value else "false"


# -- responses --------------------------------------------------------------------------------


def error(code: str, message: str, resource: str, request_id: str) -> bytes:
    root = ET.Element("Error")
    _add(root, "Code", code)
    _add(root, "Message", message)
    _add(root, "Resource", resource)
    _add(root, "RequestId", request_id)
    return _document(root)


def list_buckets(owner: str, buckets: Iterable[tuple[str, float]]) -> bytes:
    root = _root("ListAllMyBucketsResult")
    owner_element = _add(root, "Owner")
    _add(owner_element, "ID", owner)
    _add(owner_element, "DisplayName", owner)
    listed = _add(root, "Buckets")
    for name, created_s in buckets:
        bucket = _add(listed, "Bucket")
        _add(bucket, "Name", name)
        _add(bucket, "CreationDate", iso8601(created_s))
    return _document(root)


def location(region: str) -> bytes:
    root = _root("LocationConstraint")
    # us-east-1 is reported as an empty constraint, as S3 does.
    root.text = "" if region == "us-east-1" else region
    return _document(root)


def versioning(status: str | None) -> bytes:
    root = _root("VersioningConfiguration")
    if status:
        _add(root, "Status", status)
    return _document(root)


@dataclass(frozen=True, slots=True)
class ListedObject:
    key: str
    last_modified_s: float
    etag: str
    size: int
    owner: str


@dataclass(frozen=True, slots=True)
class ListResult:
    """A listing page, with keys and prefixes already encoded as the request asked."""

    bucket: str
    prefix: str
    delimiter: str
    max_keys: int
    encoding_type: str | None
    objects: Sequence[ListedObject]
    common_prefixes: Sequence[str]
    is_truncated: bool


def _listing_body(root: ET.Element, result: ListResult, fetch_owner: bool) -> None:
    for item in result.objects:
        contents = _add(root, "Contents")
        _add(contents, "Key", item.key)
        _add(contents, "LastModified", iso8601(item.last_modified_s))
        _add(contents, "ETag", f'"{item.etag}"')
        _add(contents, "Size", item.size)
        if fetch_owner:
            owner = _add(contents, "Owner")
            _add(owner, "ID", item.owner)
            _add(owner, "DisplayName", item.owner)
        _add(contents, "StorageClass", "STANDARD")
    for prefix in result.common_prefixes:
        _add(_add(root, "CommonPrefixes"), "Prefix", prefix)


def _listing_head(root: ET.Element, result: ListResult) -> None:
    _add(root, "Name", result.bucket)
    _add(root, "Prefix", result.prefix)


def list_objects_v2(
    result: ListResult,
    key_count: int,
    continuation_token: str | None,
    next_continuation_token: str | None,
    start_after: str | None,
    fetch_owner: bool,
) -> bytes:
    root = _root("ListBucketResult")
    _listing_head(root, result)
    if continuation_token is not None:
        _add(root, "ContinuationToken", continuation_token)
    if next_continuation_token is not None:
        _add(root, "NextContinuationToken", next_continuation_token)
    if start_after is not None:
        _add(root, "StartAfter", start_after)
    _add(root, "KeyCount", key_count)
    _add(root, "MaxKeys", result.max_keys)
    if result.delimiter:
        _add(root, "Delimiter", result.delimiter)
    if result.encoding_type:
        _add(root, "EncodingType", result.encoding_type)
    _add(root, "IsTruncated", _bool(result.is_truncated))
    _listing_body(root, result, fetch_owner)
    return _document(root)


def list_objects_v1(result: ListResult, marker: str, next_marker: str | None) -> bytes:
    root = _root("ListBucketResult")
    _listing_head(root, result)
    _add(root, "Marker", marker)
    if next_marker is not None:
        _add(root, "NextMarker", next_marker)
    _add(root, "MaxKeys", result.max_keys)
    if result.delimiter:
        _add(root, "Delimiter", result.delimiter)
    if result.encoding_type:
        _add(root, "EncodingType", result.encoding_type)
    _add(root, "IsTruncated", _bool(result.is_truncated))
    _listing_body(root, result, fetch_owner=True)
    return _document(root)


@dataclass(frozen=True, slots=True)
class ListedVersion:
    """A `Version` (an object) or, with `delete_marker`, a `DeleteMarker` entry."""

    key: str
    version_id: str
    is_latest: bool
    last_modified_s: float
    etag: str
    size: int
    delete_marker: bool


@dataclass(frozen=True, slots=True)
class VersionsResult:
    """A ListObjectVersions page, with keys, prefixes and markers already encoded."""

    bucket: str
    prefix: str
    delimiter: str
    key_marker: str
    version_id_marker: str
    max_keys: int
    encoding_type: str | None
    owner: str
    versions: Sequence[ListedVersion]
    """In key order and, per key, newest first: objects and markers interleaved."""
    common_prefixes: Sequence[str]
    is_truncated: bool
    next_key_marker: str | None
    next_version_id_marker: str | None


def list_versions(result: VersionsResult) -> bytes:
    root = _root("ListVersionsResult")
    _add(root, "Name", result.bucket)
    _add(root, "Prefix", result.prefix)
    _add(root, "KeyMarker", result.key_marker)
    _add(root, "VersionIdMarker", result.version_id_marker)
    if result.next_key_marker is not None:
        _add(root, "NextKeyMarker", result.next_key_marker)
    if result.next_version_id_marker is not None:
        _add(root, "NextVersionIdMarker", result.next_version_id_marker)
    _add(root, "MaxKeys", result.max_keys)
    if result.delimiter:
        _add(root, "Delimiter", result.delimiter)
    if result.encoding_type:
        _add(root, "EncodingType", result.encoding_type)
    _add(root, "IsTruncated", _bool(result.is_truncated))
    for item in result.versions:
        entry = _add(root, "DeleteMarker" if item.delete_marker else "Version")
        _add(entry, "Key", item.key)
        _add(entry, "VersionId", item.version_id)
        _add(entry, "IsLatest", _bool(item.is_latest))
        _add(entry, "LastModified", iso8601(item.last_modified_s))
        if not item.delete_marker:
            _add(entry, "ETag", f'"{item.etag}"')
            _add(entry, "Size", item.size)
            _add(entry, "StorageClass", "STANDARD")
        owner = _add(entry, "Owner")
        _add(owner, "ID", result.owner)
        _add(owner, "DisplayName", result.owner)
    for prefix in result.common_prefixes:
        _add(_add(root, "CommonPrefixes"), "Prefix", prefix)
    return _document(root)


def copy_object_result(etag: str, last_modified_s: float) -> bytes:
    root = _root("CopyObjectResult")
    _add(root, "LastModified", iso8601(last_modified_s))
    _add(root, "ETag", f'"{etag}"')
    return _document(root)


@dataclass(frozen=True, slots=True)
class DeleteOutcome:
    key: str
    version_id: str | None = None
    """The version the request named (None: the key's current object)."""
    delete_marker: bool = False
    """A delete marker was written, or the version removed was one."""
    delete_marker_version_id: str | None = None
    error_code: str | None = None
    error_message: str = ""


def delete_result(outcomes: Iterable[DeleteOutcome], quiet: bool) -> bytes:
    """Quiet mode reports only the failures, as S3 does. A deleted entry names the
    version the request named; a marker written or removed is `DeleteMarker` with its
    id."""
    root = _root("DeleteResult")
    for outcome in outcomes:
        if outcome.error_code is not None:
            element = _add(root, "Error")
            _add(element, "Key", outcome.key)
            if outcome.version_id:
                _add(element, "VersionId", outcome.version_id)
            _add(element, "Code", outcome.error_code)
            _add(element, "Message", outcome.error_message)
        elif not quiet:
            element = _add(root, "Deleted")
            _add(element, "Key", outcome.key)
            if outcome.version_id:
                _add(element, "VersionId", outcome.version_id)
            if outcome.delete_marker:
                _add(element, "DeleteMarker", "true")
                if outcome.delete_marker_version_id:
                    _add(element, "DeleteMarkerVersionId", outcome.delete_marker_version_id)
    return _document(root)


# -- request bodies ---------------------------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse(body: bytes, root_name: str) -> ET.Element:
    """The document's root element, after the safety checks of the module doc."""
    if len(body) > XML_BODY_BYTES_MAX:
        raise S3Error("MalformedXML", f"XML bodies are at most {XML_BODY_BYTES_MAX} bytes")
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise S3Error("MalformedXML", "document type declarations are not accepted")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise S3Error("MalformedXML", f"the XML you provided was not well-formed: {exc}") from None
    if _local(root.tag) != root_name:
        raise S3Error("MalformedXML", f"expected a {root_name} document")
    return root


def _children(element: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in element if _local(child.tag) == name]


def _text(element: ET.Element, name: str) -> str | None:
    found = _children(element, name)
    if len(found) > 1:
        raise S3Error("MalformedXML", f"{name} given more than once")
    return (found[0].text or "") if found else None


def parse_create_bucket(body: bytes) -> str | None:
    """The LocationConstraint of a CreateBucketConfiguration (None if absent or empty)."""
    if not body.strip():
        return None
    root = parse(body, "CreateBucketConfiguration")
    constraint = _text(root, "LocationConstraint")
    return constraint.strip() or None if constraint is not None else None


VERSIONING_STATUSES = ("Enabled", "Suspended")


def parse_versioning(body: bytes) -> str:
    """The Status of a VersioningConfiguration: "Enabled" or "Suspended" (there is no way
    back to unversioned in S3). MFA delete is not served: `MfaDelete` may only be
    `Disabled`."""
    if not body.strip():
        raise S3Error("MalformedXML", "a VersioningConfiguration body is required")
    root = parse(body, "VersioningConfiguration")
    mfa_delete = _text(root, "MfaDelete")
    if mfa_delete is not None and mfa_delete.strip() != "Disabled":
        if mfa_delete.strip() == "Enabled":
            raise S3Error("NotImplemented", "MFA delete is not supported")
        raise S3Error("MalformedXML", "MfaDelete must be Enabled or Disabled")
    status = (_text(root, "Status") or "").strip()
    if status not in VERSIONING_STATUSES:
        raise S3Error(
            "IllegalVersioningConfigurationException",
            "The versioning configuration specified in the request is invalid:"
            " Status must be Enabled or Suspended",
        )
    return status


@dataclass(frozen=True, slots=True)
class DeleteRequest:
    quiet: bool
    objects: list[tuple[str, str | None]]
    """(key, version id) in request order."""


def parse_delete(body: bytes) -> DeleteRequest:
    root = parse(body, "Delete")
    quiet_text = (_text(root, "Quiet") or "false").strip().lower()
    if quiet_text not in ("true", "false"):
        raise S3Error("MalformedXML", "Quiet must be true or false")
    objects: list[tuple[str, str | None]] = []
    for element in _children(root, "Object"):
        key = _text(element, "Key")
        if key is None:
            raise S3Error("MalformedXML", "every Object needs a Key")
        version_id = _text(element, "VersionId")
        objects.append((key, version_id or None))
    if not objects:
        raise S3Error("MalformedXML", "a Delete request names at least one Object")
    if len(objects) > DELETE_OBJECTS_MAX:
        raise S3Error("MalformedXML", f"at most {DELETE_OBJECTS_MAX} objects per Delete request")
    return DeleteRequest(quiet_text == "true", objects)
