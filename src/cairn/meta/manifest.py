"""The object manifest: what an object version is made of, and how to find a byte range.

Theory of operation. A manifest describes one immutable object version: its size, ETag,
content type, user metadata, creation time, and its bytes -- either inline (objects of at
most `INLINE_BYTES_MAX`, stored in the manifest itself, so a small GET is one metadata
read) or an ordered list of `ChunkRef`s (content-addressed chunks of the plaintext, in
order, each with its offset in the object and its plaintext length). A manifest is valid
only if the refs tile the object exactly: the first starts at 0, each starts where the
previous one ended, none is empty, and their lengths sum to `size`. `validate` checks that
(and every limit below) on both sides of a write: before a manifest is proposed and after
one is decoded.

ETags follow S3 and are stored without the surrounding quotes: the hex MD5 of the body for
a single PUT (`etag_single`), and for a multipart upload the hex MD5 of the concatenated
binary MD5s of its parts, then "-" and the part count (`etag_multipart`). They are not
content hashes of the object in the multipart case; chunk ids (keyed hashes) are.

Encoding: one format-version byte, then msgpack of `Manifest` (msgspec). Chunk refs are
encoded as arrays, not maps, since a large object has many of them.

Multipart objects also keep their part sizes (`part_sizes`), so `part_range` can serve
S3's GET/HEAD by `partNumber`.

Ranges. `ByteRange.from_http` resolves an HTTP `Range: bytes=first-last` (or a suffix
`-n`) against the object size into a half-open `[start, end)`, with S3's rules for
unsatisfiable ranges; `slices_for_range` bisects the chunk offsets and returns the chunks
that cover the range and, for each, the slice of its plaintext to send.
"""

from __future__ import annotations

import hashlib
import math
import re
from bisect import bisect_right
from collections.abc import Iterable, Sequence

import msgspec

from cairn.meta.machine import MetaError, VersionedCodec

MANIFEST_FORMAT_V1 = 1
INLINE_BYTES_MAX = 4 * 1024
"""Objects up to this size are stored inline in the manifest."""
CHUNK_ID_BYTES = 32
OBJECT_SIZE_BYTES_MAX = 5 * 1024**4
"""5 TiB, the S3 maximum object size."""
CHUNK_REFS_MAX = 1 << 20
"""At most this many chunks in one manifest (1 TiB at 1 MiB average chunks).

Larger objects would need indirect manifests (a manifest of manifests), not built yet."""
MULTIPART_PARTS_MAX = 10_000
USER_METADATA_BYTES_MAX = 2 * 1024
CONTENT_HEADERS_BYTES_MAX = 8 * 1024
"""Sum of the UTF-8 lengths of the stored content header names and values."""
CHECKSUMS_MAX = 4
"""Sum of the UTF-8 lengths of user metadata names and values (the S3 limit)."""
CONTENT_TYPE_BYTES_MAX = 256

_ETAG = re.compile(r"[0-9a-f]{32}(-[1-9][0-9]{0,4})?")


class ManifestError(MetaError):
    """A manifest violates a rule or limit, or its encoding is malformed."""

    code = "InvalidManifest"


class InvalidRange(MetaError):
    """The requested byte range is not satisfiable (HTTP 416)."""

    code = "InvalidRange"


class InvalidPartNumber(MetaError):
    """GET/HEAD `partNumber` past the object's last part (HTTP 416)."""

    code = "InvalidPartNumber"


class PartsUnknown(MetaError):
    """GET/HEAD `partNumber` of a multipart object that has no part sizes recorded."""

    code = "NotImplemented"


class ChunkRef(msgspec.Struct, frozen=True, array_like=True):
    """One chunk of an object: its id, where it starts in the object, its plaintext length."""

    chunk_id: bytes
    offset: int
    length: int

    @property
    def end(self) -> int:
        return self.offset + self.length


class Manifest(msgspec.Struct, frozen=True):
    size: int
    etag: str
    created_s: float
    content_type: str = "binary/octet-stream"
    user_metadata: dict[str, str] = {}
    inline: bytes | None = None
    chunks: tuple[ChunkRef, ...] = ()
    content_headers: dict[str, str] = {}
    """Standard HTTP content headers stored with the object (lower-case names: cache-control,
    content-disposition, content-encoding, content-language, expires), as S3 keeps them."""
    checksums: dict[str, str] = {}
    """Verified x-amz-checksum values of the whole body (algorithm -> base64), if one was sent."""
    part_sizes: tuple[int, ...] = ()
    """Plaintext bytes of each part of a multipart upload, in order (what GET by
    `partNumber` needs); empty for a single PUT and for objects completed before stop 12."""

    @property
    def part_count(self) -> int:
        """Parts of a multipart upload (from the ETag), 0 for a single PUT."""
        _, _, parts = self.etag.partition("-")
        return int(parts) if parts else 0

    def part_range(self, part_number: int) -> ByteRange:
        """The bytes of part `part_number` (from 1), as S3's GET/HEAD `partNumber` serves
        them; a single PUT is one part. Raises `InvalidPartNumber` past the last part and
        `PartsUnknown` for a multipart object that did not record its part sizes."""
        count = self.part_count or 1
        if not 1 <= part_number <= count:
            raise InvalidPartNumber(f"part {part_number} of an object of {count} parts")
        if count == 1:
            start, end = 0, self.size
        elif not self.part_sizes:
            raise PartsUnknown("this object was completed before part sizes were recorded")
        else:
            start = sum(self.part_sizes[: part_number - 1])
            end = start + self.part_sizes[part_number - 1]
        if start == end:
            raise InvalidRange(f"part {part_number} is empty")
        return ByteRange(start, end)

    def chunk_ids(self) -> Iterable[bytes]:
        return (ref.chunk_id for ref in self.chunks)


class ByteRange(msgspec.Struct, frozen=True):
    """A half-open byte range `[start, end)` inside an object, never empty."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start

    @classmethod
    def from_http(cls, size: int, first: int | None, last: int | None) -> ByteRange:
        """Resolve `bytes=first-last`, `bytes=first-` or `bytes=-last` (suffix) for `size`.

        Raises `InvalidRange` when nothing of the object is selected, as S3 does.
        """
        if first is None:
            if last is None or last <= 0 or size == 0:
                raise InvalidRange(f"suffix range -{last} of a {size}-byte object")
            return cls(max(0, size - last), size)
        if first < 0 or first >= size or (last is not None and last < first):
            raise InvalidRange(f"range {first}-{last} of a {size}-byte object")
        end = size if last is None else min(last + 1, size)
        return cls(first, end)


class ChunkSlice(msgspec.Struct, frozen=True):
    """Send `ref`'s plaintext `[start, end)` (offsets inside the chunk)."""

    ref: ChunkRef
    start: int
    end: int


_manifests: VersionedCodec[Manifest] = VersionedCodec(Manifest, MANIFEST_FORMAT_V1, ManifestError)


def etag_single(body_md5: bytes) -> str:
    """The ETag of a single PUT, from the MD5 digest of its body."""
    assert len(body_md5) == 16
    return body_md5.hex()


def etag_of_bytes(body: bytes) -> str:
    return etag_single(hashlib.md5(body, usedforsecurity=False).digest())


def etag_multipart(part_md5s: Sequence[bytes]) -> str:
    """The ETag of a multipart upload, from the MD5 digests of its parts in order."""
    if not 1 <= len(part_md5s) <= MULTIPART_PARTS_MAX:
        raise ManifestError(f"a multipart upload has 1..{MULTIPART_PARTS_MAX} parts")
    assert all(len(d) == 16 for d in part_md5s)
    digest = hashlib.md5(b"".join(part_md5s), usedforsecurity=False).hexdigest()
    return f"{digest}-{len(part_md5s)}"


def validate(manifest: Manifest) -> None:
    """Raise `ManifestError` unless every rule of the module docstring holds."""
    if not 0 <= manifest.size <= OBJECT_SIZE_BYTES_MAX:
        raise ManifestError(f"size must be 0..{OBJECT_SIZE_BYTES_MAX}: {manifest.size}")
    if not _ETAG.fullmatch(manifest.etag) or manifest.part_count > MULTIPART_PARTS_MAX:
        raise ManifestError(f"malformed ETag {manifest.etag!r}")
    if not math.isfinite(manifest.created_s):
        raise ManifestError("creation time must be finite")
    if len(manifest.content_type.encode()) > CONTENT_TYPE_BYTES_MAX:
        raise ManifestError(f"content type longer than {CONTENT_TYPE_BYTES_MAX} bytes")
    meta_bytes = sum(len(k.encode()) + len(v.encode()) for k, v in manifest.user_metadata.items())
    if meta_bytes > USER_METADATA_BYTES_MAX:
        raise ManifestError(f"user metadata is {meta_bytes} bytes, over {USER_METADATA_BYTES_MAX}")
    header_bytes = sum(
        len(k.encode()) + len(v.encode()) for k, v in manifest.content_headers.items()
    )
    if header_bytes > CONTENT_HEADERS_BYTES_MAX:
        raise ManifestError(
            f"content headers are {header_bytes} bytes, over {CONTENT_HEADERS_BYTES_MAX}"
        )
    if len(manifest.checksums) > CHECKSUMS_MAX or any(
        len(k) > 16 or len(v) > 128 for k, v in manifest.checksums.items()
    ):
        raise ManifestError("malformed checksums")
    if manifest.part_sizes and (
        len(manifest.part_sizes) != manifest.part_count
        or any(size < 0 for size in manifest.part_sizes)
        or sum(manifest.part_sizes) != manifest.size
    ):
        raise ManifestError("part sizes do not match the part count and the size")
    if manifest.inline is not None:
        _validate_inline(manifest)
    else:
        _validate_chunks(manifest)


def _validate_inline(manifest: Manifest) -> None:
    assert manifest.inline is not None
    if manifest.chunks:
        raise ManifestError("a manifest has inline bytes or chunks, not both")
    if len(manifest.inline) != manifest.size:
        raise ManifestError(f"inline bytes are {len(manifest.inline)}, size {manifest.size}")
    if manifest.size > INLINE_BYTES_MAX:
        raise ManifestError(f"inline objects are at most {INLINE_BYTES_MAX} bytes")


def _validate_chunks(manifest: Manifest) -> None:
    if len(manifest.chunks) > CHUNK_REFS_MAX:
        raise ManifestError(f"more than {CHUNK_REFS_MAX} chunks")
    offset = 0
    for i, ref in enumerate(manifest.chunks):
        if len(ref.chunk_id) != CHUNK_ID_BYTES:
            raise ManifestError(f"chunk {i}: id must be {CHUNK_ID_BYTES} bytes")
        if ref.offset != offset:
            raise ManifestError(f"chunk {i}: offset {ref.offset}, expected {offset}")
        if ref.length <= 0:
            raise ManifestError(f"chunk {i}: empty chunk")
        offset = ref.end
    if offset != manifest.size:
        raise ManifestError(f"chunks cover {offset} bytes, size is {manifest.size}")


def build_chunk_refs(chunks: Iterable[tuple[bytes, int]]) -> tuple[ChunkRef, ...]:
    """Refs with offsets for (chunk id, plaintext length) pairs in object order."""
    refs: list[ChunkRef] = []
    offset = 0
    for chunk_id, length in chunks:
        refs.append(ChunkRef(chunk_id, offset, length))
        offset += length
    return tuple(refs)


def encode_manifest(manifest: Manifest) -> bytes:
    validate(manifest)
    return _manifests.encode(manifest)


def decode_manifest(data: bytes) -> Manifest:
    manifest = _manifests.decode(data)
    validate(manifest)
    return manifest


def slices_for_range(manifest: Manifest, byte_range: ByteRange) -> list[ChunkSlice]:
    """The chunks covering `byte_range`, in order, with the slice of each to send.

    For an inline manifest the answer is empty: slice `manifest.inline` directly.
    """
    if byte_range.start < 0 or byte_range.end > manifest.size or byte_range.length <= 0:
        raise InvalidRange(f"[{byte_range.start}, {byte_range.end}) of {manifest.size} bytes")
    refs = manifest.chunks
    if not refs:
        return []
    first = bisect_right(refs, byte_range.start, key=lambda ref: ref.offset) - 1
    out: list[ChunkSlice] = []
    for ref in refs[first:]:
        if ref.offset >= byte_range.end:
            break
        start = max(byte_range.start, ref.offset) - ref.offset
        end = min(byte_range.end, ref.end) - ref.offset
        out.append(ChunkSlice(ref, start, end))
    return out
