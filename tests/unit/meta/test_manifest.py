"""Object manifests: ETags, validation, framed encoding, and byte ranges over chunks."""

from __future__ import annotations

import hashlib

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.meta.manifest import (
    CHUNK_ID_BYTES,
    INLINE_BYTES_MAX,
    MULTIPART_PARTS_MAX,
    USER_METADATA_BYTES_MAX,
    ByteRange,
    ChunkRef,
    InvalidPartNumber,
    InvalidRange,
    Manifest,
    ManifestError,
    PartsUnknown,
    build_chunk_refs,
    decode_manifest,
    encode_manifest,
    etag_multipart,
    etag_of_bytes,
    etag_single,
    slices_for_range,
    validate,
)


def cid(n: int) -> bytes:
    return hashlib.sha256(n.to_bytes(4, "big")).digest()


def chunked(lengths: list[int]) -> Manifest:
    refs = build_chunk_refs((cid(i), n) for i, n in enumerate(lengths))
    return Manifest(sum(lengths), "0" * 32, 5.0, chunks=refs)


def test_etags_follow_s3() -> None:
    assert etag_of_bytes(b"") == "d41d8cd98f00b204e9800998ecf8427e"
    assert etag_single(hashlib.md5(b"abc").digest()) == "900150983cd24fb0d6963f7d28e17f72"
    parts = [b"x" * 10, b"y" * 3]
    digests = [hashlib.md5(p).digest() for p in parts]
    expected = hashlib.md5(digests[0] + digests[1]).hexdigest() + "-2"
    assert etag_multipart(digests) == expected
    manifest = Manifest(13, expected, 0.0, chunks=build_chunk_refs([(cid(0), 13)]))
    assert manifest.part_count == 2
    assert Manifest(0, etag_of_bytes(b""), 0.0, inline=b"").part_count == 0
    with pytest.raises(ManifestError):
        etag_multipart([])
    with pytest.raises(ManifestError):
        etag_multipart([digests[0]] * (MULTIPART_PARTS_MAX + 1))


def test_round_trip_inline_and_chunked() -> None:
    small = Manifest(3, etag_of_bytes(b"abc"), 1.5, "text/plain", {"colour": "blue"}, inline=b"abc")
    assert decode_manifest(encode_manifest(small)) == small
    big = chunked([10, 20, 5])
    assert decode_manifest(encode_manifest(big)) == big
    assert [r.offset for r in big.chunks] == [0, 10, 30]
    assert list(big.chunk_ids()) == [cid(0), cid(1), cid(2)]


def ref(i: int, offset: int, length: int) -> ChunkRef:
    return ChunkRef(cid(i), offset, length)


BAD_MANIFESTS = {
    "negative size": Manifest(-1, "0" * 32, 0.0, inline=b""),
    "etag not hex": Manifest(0, "z" * 32, 0.0, inline=b""),
    "etag quoted": Manifest(0, '"' + "0" * 32 + '"', 0.0, inline=b""),
    "etag zero parts": Manifest(0, "0" * 32 + "-0", 0.0, inline=b""),
    "etag too many parts": Manifest(0, "0" * 32 + "-10001", 0.0, inline=b""),
    "time not finite": Manifest(0, "0" * 32, float("nan"), inline=b""),
    "inline size mismatch": Manifest(2, "0" * 32, 0.0, inline=b"a"),
    "inline too big": Manifest(
        INLINE_BYTES_MAX + 1, "0" * 32, 0.0, inline=b"a" * (INLINE_BYTES_MAX + 1)
    ),
    "inline and chunks": Manifest(1, "0" * 32, 0.0, inline=b"a", chunks=(ref(0, 0, 1),)),
    "gap": Manifest(4, "0" * 32, 0.0, chunks=(ref(0, 0, 2), ref(1, 3, 1))),
    "overlap": Manifest(3, "0" * 32, 0.0, chunks=(ref(0, 0, 2), ref(1, 1, 2))),
    "not from zero": Manifest(2, "0" * 32, 0.0, chunks=(ref(0, 1, 2),)),
    "short": Manifest(5, "0" * 32, 0.0, chunks=(ref(0, 0, 2),)),
    "empty chunk": Manifest(2, "0" * 32, 0.0, chunks=(ref(0, 0, 2), ref(1, 2, 0))),
    "bad chunk id": Manifest(2, "0" * 32, 0.0, chunks=(ChunkRef(b"x" * 31, 0, 2),)),
    "metadata too big": Manifest(
        0, "0" * 32, 0.0, user_metadata={"k": "v" * USER_METADATA_BYTES_MAX}, inline=b""
    ),
    "content type too long": Manifest(0, "0" * 32, 0.0, "t" * 300, inline=b""),
    "part sizes not the count": Manifest(
        3, "0" * 32 + "-2", 0.0, chunks=(ref(0, 0, 3),), part_sizes=(3,)
    ),
    "part sizes not the size": Manifest(
        3, "0" * 32 + "-2", 0.0, chunks=(ref(0, 0, 3),), part_sizes=(1, 1)
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_MANIFESTS))
def test_invalid_manifests_are_refused_both_ways(name: str) -> None:
    manifest = BAD_MANIFESTS[name]
    with pytest.raises(ManifestError):
        validate(manifest)
    with pytest.raises(ManifestError):
        encode_manifest(manifest)
    raw = b"\x01" + msgspec.msgpack.encode(manifest)
    with pytest.raises(ManifestError):
        decode_manifest(raw)


def test_part_ranges_for_get_by_part_number() -> None:
    refs = build_chunk_refs((cid(i), n) for i, n in enumerate([6, 4]))
    parts = Manifest(10, "0" * 32 + "-3", 1.0, chunks=refs, part_sizes=(5, 5, 0))
    assert decode_manifest(encode_manifest(parts)) == parts
    assert parts.part_range(1) == ByteRange(0, 5) and parts.part_range(2) == ByteRange(5, 10)
    with pytest.raises(InvalidRange):
        parts.part_range(3)  # an empty last part selects nothing
    for past in (0, 4):
        with pytest.raises(InvalidPartNumber):
            parts.part_range(past)
    single = chunked([7])
    assert single.part_range(1) == ByteRange(0, 7)
    with pytest.raises(InvalidPartNumber):
        single.part_range(2)
    older = Manifest(10, "0" * 32 + "-2", 1.0, chunks=refs)  # completed before part sizes
    assert older.part_count == 2
    with pytest.raises(PartsUnknown):
        older.part_range(1)


def test_malformed_and_unknown_versions() -> None:
    data = encode_manifest(chunked([4]))
    for bad in (b"", b"\x02" + data[1:], data[:-3], b"\x01\xc1"):
        with pytest.raises(ManifestError):
            decode_manifest(bad)
    assert len(cid(0)) == CHUNK_ID_BYTES


def test_http_ranges() -> None:
    assert ByteRange.from_http(100, 0, 9) == ByteRange(0, 10)
    assert ByteRange.from_http(100, 90, None) == ByteRange(90, 100)
    assert ByteRange.from_http(100, 90, 500) == ByteRange(90, 100)
    assert ByteRange.from_http(100, None, 10) == ByteRange(90, 100)
    assert ByteRange.from_http(100, None, 500) == ByteRange(0, 100)
    for first, last in ((100, None), (5, 4), (None, 0), (-1, 3), (None, None)):
        with pytest.raises(InvalidRange):
            ByteRange.from_http(100, first, last)
    with pytest.raises(InvalidRange):
        ByteRange.from_http(0, 0, None)
    with pytest.raises(InvalidRange):
        slices_for_range(chunked([4]), ByteRange(2, 5))


@settings(max_examples=200)
@given(st.lists(st.integers(1, 9), min_size=1, max_size=12), st.data())
def test_slices_reassemble_exactly_the_range(lengths: list[int], data: st.DataObject) -> None:
    manifest = chunked(lengths)
    body = bytes(i % 251 for i in range(manifest.size))
    content = {ref.chunk_id: body[ref.offset : ref.end] for ref in manifest.chunks}
    start = data.draw(st.integers(0, manifest.size - 1))
    end = data.draw(st.integers(start + 1, manifest.size))
    slices = slices_for_range(manifest, ByteRange(start, end))
    assert b"".join(content[s.ref.chunk_id][s.start : s.end] for s in slices) == body[start:end]
    assert all(0 <= s.start < s.end <= s.ref.length for s in slices)
    assert len({s.ref.offset for s in slices}) == len(slices), "each chunk at most once"


def test_inline_objects_have_no_slices() -> None:
    manifest = Manifest(3, etag_of_bytes(b"abc"), 0.0, inline=b"abc")
    assert slices_for_range(manifest, ByteRange(1, 2)) == []
