"""S3 XML of multipart upload: the result documents and the CompleteMultipartUpload body. Pure.

Same habits as `xml` (built with ElementTree so every client-supplied value is escaped;
request bodies go through `xml.parse`, which caps the size and refuses document type
declarations); kept apart so the multipart operations are one unit. Builders take plain
values; keys are passed already encoded as the request asked (`encoding-type=url`).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

from cairn.gateway.s3.errors import S3Error
from cairn.gateway.s3.xml import NS, iso8601, parse

PARTS_IN_REQUEST_MAX = 10_000
PART_NUMBER_TEXT_CHARS_MAX = 6


def _root(name: str) -> ET.Element:
    return ET.Element(name, xmlns=NS)


def _add(parent: ET.Element, name: str, text: object | None = None) -> ET.Element:
    element = ET.SubElement(parent, name)
    if text is not None:
        element.text = str(text)
    return element


def _document(root: ET.Element) -> bytes:
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _person(parent: ET.Element, name: str, who: str) -> None:
    element = _add(parent, name)
    _add(element, "ID", who)
    _add(element, "DisplayName", who)


# -- responses --------------------------------------------------------------------------------


def initiate_result(bucket: str, key: str, upload_id: str) -> bytes:
    root = _root("InitiateMultipartUploadResult")
    _add(root, "Bucket", bucket)
    _add(root, "Key", key)
    _add(root, "UploadId", upload_id)
    return _document(root)


def complete_result(location: str, bucket: str, key: str, etag: str) -> bytes:
    root = _root("CompleteMultipartUploadResult")
    _add(root, "Location", location)
    _add(root, "Bucket", bucket)
    _add(root, "Key", key)
    _add(root, "ETag", f'"{etag}"')
    return _document(root)


def copy_part_result(etag: str, last_modified_s: float) -> bytes:
    root = _root("CopyPartResult")
    _add(root, "LastModified", iso8601(last_modified_s))
    _add(root, "ETag", f'"{etag}"')
    return _document(root)


@dataclass(frozen=True, slots=True)
class ListedPart:
    part_number: int
    last_modified_s: float
    etag: str
    size: int
    checksums: dict[str, str]


@dataclass(frozen=True, slots=True)
class PartsListing:
    bucket: str
    key: str
    upload_id: str
    initiator: str
    owner: str
    part_number_marker: int
    next_part_number_marker: int
    max_parts: int
    is_truncated: bool
    parts: Sequence[ListedPart]
    checksum_algorithm: str = ""


def list_parts_result(listing: PartsListing) -> bytes:
    root = _root("ListPartsResult")
    _add(root, "Bucket", listing.bucket)
    _add(root, "Key", listing.key)
    _add(root, "UploadId", listing.upload_id)
    _person(root, "Initiator", listing.initiator)
    _person(root, "Owner", listing.owner)
    _add(root, "StorageClass", "STANDARD")
    _add(root, "PartNumberMarker", listing.part_number_marker)
    _add(root, "NextPartNumberMarker", listing.next_part_number_marker)
    _add(root, "MaxParts", listing.max_parts)
    _add(root, "IsTruncated", _bool(listing.is_truncated))
    if listing.checksum_algorithm:
        _add(root, "ChecksumAlgorithm", listing.checksum_algorithm.upper())
    for part in listing.parts:
        element = _add(root, "Part")
        _add(element, "PartNumber", part.part_number)
        _add(element, "LastModified", iso8601(part.last_modified_s))
        _add(element, "ETag", f'"{part.etag}"')
        _add(element, "Size", part.size)
        for algorithm, value in sorted(part.checksums.items()):
            _add(element, f"Checksum{algorithm.upper()}", value)
    return _document(root)


@dataclass(frozen=True, slots=True)
class ListedUpload:
    key: str
    upload_id: str
    initiator: str
    owner: str
    initiated_s: float


@dataclass(frozen=True, slots=True)
class UploadsListing:
    bucket: str
    prefix: str
    delimiter: str
    key_marker: str
    upload_id_marker: str
    next_key_marker: str
    next_upload_id_marker: str
    max_uploads: int
    is_truncated: bool
    encoding_type: str | None
    uploads: Sequence[ListedUpload]
    common_prefixes: Sequence[str]


def list_uploads_result(listing: UploadsListing) -> bytes:
    root = _root("ListMultipartUploadsResult")
    _add(root, "Bucket", listing.bucket)
    _add(root, "KeyMarker", listing.key_marker)
    _add(root, "UploadIdMarker", listing.upload_id_marker)
    _add(root, "NextKeyMarker", listing.next_key_marker)
    _add(root, "NextUploadIdMarker", listing.next_upload_id_marker)
    if listing.encoding_type:
        _add(root, "EncodingType", listing.encoding_type)
    if listing.delimiter:
        _add(root, "Delimiter", listing.delimiter)
    _add(root, "Prefix", listing.prefix)
    _add(root, "MaxUploads", listing.max_uploads)
    _add(root, "IsTruncated", _bool(listing.is_truncated))
    for upload in listing.uploads:
        element = _add(root, "Upload")
        _add(element, "Key", upload.key)
        _add(element, "UploadId", upload.upload_id)
        _person(element, "Initiator", upload.initiator)
        _person(element, "Owner", upload.owner)
        _add(element, "StorageClass", "STANDARD")
        _add(element, "Initiated", iso8601(upload.initiated_s))
    for prefix in listing.common_prefixes:
        _add(_add(root, "CommonPrefixes"), "Prefix", prefix)
    return _document(root)


# -- request body -----------------------------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _only_text(element: ET.Element, name: str) -> str | None:
    found = [child for child in element if _local(child.tag) == name]
    if len(found) > 1:
        raise S3Error("MalformedXML", f"{name} given more than once in a Part")
    return (found[0].text or "") if found else None


def parse_complete(body: bytes) -> list[tuple[int, str]]:
    """The (part number, ETag without quotes) pairs of a CompleteMultipartUpload body, in
    request order. Their order and existence are the index's to judge (InvalidPartOrder,
    InvalidPart); a body that is not the expected document is `MalformedXML`."""
    if not body.strip():
        raise S3Error("MalformedXML", "the CompleteMultipartUpload body is empty")
    root = parse(body, "CompleteMultipartUpload")
    parts: list[tuple[int, str]] = []
    for element in root:
        if _local(element.tag) != "Part":
            continue
        number_text = (_only_text(element, "PartNumber") or "").strip()
        etag = _only_text(element, "ETag")
        if not number_text.isdigit() or len(number_text) > PART_NUMBER_TEXT_CHARS_MAX:
            raise S3Error("MalformedXML", "every Part needs a PartNumber (a positive integer)")
        if etag is None:
            raise S3Error("MalformedXML", "every Part needs an ETag")
        parts.append((int(number_text), etag.strip().strip('"')))
        if len(parts) > PARTS_IN_REQUEST_MAX:
            raise S3Error("MalformedXML", f"at most {PARTS_IN_REQUEST_MAX} parts")
    if not parts:
        raise S3Error("MalformedXML", "a CompleteMultipartUpload request names at least one Part")
    return parts
