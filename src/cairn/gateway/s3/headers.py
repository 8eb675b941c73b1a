"""Object attributes in S3 headers: what a PUT sets, what a GET/HEAD answers with. Pure.

A PUT (or a CopyObject with `x-amz-metadata-directive: REPLACE`) sets the content type,
user metadata (`x-amz-meta-*`, names lower-cased as S3 does) and the standard content
headers S3 stores (`STORED_CONTENT_HEADERS`); all are size-checked before the body is
read. A GET or HEAD answers with them, and `response-*` query parameters override the
corresponding response headers (S3's "response header overrides").
"""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from dataclasses import dataclass

from cairn.gateway.s3.errors import S3Error
from cairn.meta.manifest import (
    CONTENT_HEADERS_BYTES_MAX,
    CONTENT_TYPE_BYTES_MAX,
    USER_METADATA_BYTES_MAX,
    Manifest,
)

META_PREFIX = "x-amz-meta-"
DEFAULT_CONTENT_TYPE = "binary/octet-stream"
STORED_CONTENT_HEADERS = (
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "expires",
)
RESPONSE_OVERRIDES: dict[str, str] = {
    "response-content-type": "Content-Type",
    "response-content-language": "Content-Language",
    "response-expires": "Expires",
    "response-cache-control": "Cache-Control",
    "response-content-disposition": "Content-Disposition",
    "response-content-encoding": "Content-Encoding",
}
_CANONICAL_NAMES = {
    name: "-".join(p.capitalize() for p in name.split("-")) for name in STORED_CONTENT_HEADERS
}


@dataclass(frozen=True, slots=True)
class ObjectAttributes:
    content_type: str
    metadata: dict[str, str]
    content_headers: dict[str, str]


def _content_encoding(value: str) -> str | None:
    """The stored Content-Encoding: `aws-chunked` is transfer framing, not the object's."""
    codings = [
        c.strip() for c in value.split(",") if c.strip() and c.strip().lower() != "aws-chunked"
    ]
    return ",".join(codings) or None


def attributes_from(headers: Mapping[str, str], multi: list[tuple[str, str]]) -> ObjectAttributes:
    """The attributes a request sets; `headers` lower-case first values, `multi` every line."""
    content_type = headers.get("content-type") or DEFAULT_CONTENT_TYPE
    if len(content_type.encode(errors="replace")) > CONTENT_TYPE_BYTES_MAX:
        raise S3Error("InvalidArgument", f"Content-Type is over {CONTENT_TYPE_BYTES_MAX} bytes")
    metadata: dict[str, str] = {}
    for name, value in multi:
        lower = name.lower()
        if lower.startswith(META_PREFIX):
            short = lower[len(META_PREFIX) :]
            metadata[short] = f"{metadata[short]},{value}" if short in metadata else value
    size = sum(
        len(k.encode(errors="replace")) + len(v.encode(errors="replace"))
        for k, v in metadata.items()
    )
    if size > USER_METADATA_BYTES_MAX:
        raise S3Error("MetadataTooLarge", f"user metadata is over {USER_METADATA_BYTES_MAX} bytes")
    content_headers: dict[str, str] = {}
    for name in STORED_CONTENT_HEADERS:
        stored = headers.get(name)
        if stored is not None and name == "content-encoding":
            stored = _content_encoding(stored)
        if stored is not None:
            content_headers[name] = stored
    size = sum(
        len(k.encode(errors="replace")) + len(v.encode(errors="replace"))
        for k, v in content_headers.items()
    )
    if size > CONTENT_HEADERS_BYTES_MAX:
        raise S3Error(
            "InvalidArgument", f"content headers are over {CONTENT_HEADERS_BYTES_MAX} bytes"
        )
    return ObjectAttributes(content_type, metadata, content_headers)


def http_date(seconds: float) -> str:
    return email.utils.formatdate(seconds, usegmt=True)


def object_headers(
    manifest: Manifest, version_id: str, params: Mapping[str, str], checksum_mode: bool
) -> dict[str, str]:
    """Response headers of a GET/HEAD (without Content-Length / Content-Range)."""
    headers = {
        "ETag": f'"{manifest.etag}"',
        "Last-Modified": http_date(manifest.created_s),
        "Content-Type": manifest.content_type,
        "Accept-Ranges": "bytes",
    }
    if version_id and version_id != "null":
        headers["x-amz-version-id"] = version_id
    for name, value in manifest.content_headers.items():
        headers[_CANONICAL_NAMES.get(name, name)] = value
    for name, value in manifest.user_metadata.items():
        headers[META_PREFIX + name] = value
    if checksum_mode:
        for algorithm, value in manifest.checksums.items():
            headers[f"x-amz-checksum-{algorithm}"] = value
        if manifest.checksums:
            headers["x-amz-checksum-type"] = "FULL_OBJECT"
    for param, header in RESPONSE_OVERRIDES.items():
        if param in params:
            value = params[param]
            if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
                raise S3Error("InvalidArgument", f"{param} holds control characters")
            headers[header] = value
    return headers
