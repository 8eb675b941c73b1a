"""Parsing an HTTP `Range` header into the bounds `ByteRange.from_http` resolves. Pure.

Only single byte ranges are served: `bytes=first-last`, `bytes=first-` and the suffix
`bytes=-count`. As in S3 (and as RFC 9110 allows), a header that is not one of those —
another unit, several ranges, garbage — is ignored and the whole object is sent. A
well-formed range that selects nothing of the object is an error (416), decided by
`ByteRange.from_http` once the object's size is known.
"""

import re

from cairn.meta.manifest import ByteRange, Manifest

_SINGLE = re.compile(r"bytes=(\d{0,19})-(\d{0,19})")


def parse_range_header(value: str | None) -> tuple[int | None, int | None] | None:
    """(first, last) of a single byte range, either may be None; None to send everything."""
    if not value:
        return None
    match = _SINGLE.fullmatch(value.strip().replace(" ", ""))
    if match is None:
        return None
    first_text, last_text = match.groups()
    if not first_text and not last_text:
        return None
    first = int(first_text) if first_text else None
    last = int(last_text) if last_text else None
    return first, last


def resolve_range(value: str | None, size: int) -> ByteRange | None:
    """The range a `Range` header asks of a `size`-byte object; None for the whole object.

    Raises `InvalidRange` (HTTP 416) for a well-formed range that selects nothing."""
    bounds = parse_range_header(value)
    if bounds is None:
        return None
    return ByteRange.from_http(size, *bounds)


def select_range(
    manifest: Manifest, bounds: tuple[int | None, int | None] | None, part_number: int | None
) -> ByteRange | None:
    """What a read of `manifest` serves: part `part_number` (S3's `partNumber`), else the
    Range header's `bounds`, else everything (None). Raises `InvalidRange`,
    `InvalidPartNumber` or `PartsUnknown` (`Manifest.part_range`)."""
    if part_number is not None:
        return manifest.part_range(part_number)
    return None if bounds is None else ByteRange.from_http(manifest.size, *bounds)


def content_range(byte_range: ByteRange, size: int) -> str:
    """The `Content-Range` header of a partial response."""
    return f"bytes {byte_range.start}-{byte_range.end - 1}/{size}"
