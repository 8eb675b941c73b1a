"""Multipart uploads in the index shard: S3's Complete rules and ETag, part replacement,
retries, listings (ListMultipartUploads against a brute-force model), GC liveness of
parts, snapshots (old ones too), splits, expiry and bad input."""

from __future__ import annotations

import hashlib
import itertools

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.meta.buckets import VersioningState
from cairn.meta.index import (
    FenceStale,
    IndexShard,
    InvalidListArgument,
    KeyOutOfRange,
    NoSuchKey,
    PreconditionFailed,
    PutObject,
    ShrinkRange,
    encode_command,
    encode_key,
)
from cairn.meta.manifest import Manifest, etag_multipart
from cairn.meta.uploads import (
    COMPLETED_REMEMBERED_MAX,
    PART_SIZE_BYTES_MIN,
    AbortBucketUploads,
    AbortBucketUploadsResult,
    AbortResult,
    AbortUpload,
    CompleteResult,
    CompleteUpload,
    CreateUpload,
    CreateUploadResult,
    EntityTooSmall,
    InvalidPart,
    InvalidPartOrder,
    InvalidUploadArgument,
    NoSuchUpload,
    Part,
    PartChunk,
    PutPart,
    PutPartResult,
    UploadsPage,
)
from cairn.meta.write_condition import Fence, WriteCondition

OFF = VersioningState.UNVERSIONED
ON = VersioningState.ENABLED
MIB5 = PART_SIZE_BYTES_MIN


def cid(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def part(number: int, size: int, label: str, pieces: int = 1) -> Part:
    """A part of `size` bytes in `pieces` chunks, with an MD5 derived from `label`."""
    lengths = [size // pieces] * (pieces - 1)
    lengths.append(size - sum(lengths))
    chunks = tuple(PartChunk(cid(f"{label}/{i}"), n) for i, n in enumerate(lengths) if n)
    md5 = hashlib.md5(label.encode()).hexdigest()
    return Part(number, size, md5, 5.0, chunks)


class Shard:
    def __init__(self, shard: IndexShard | None = None) -> None:
        self.shard = shard if shard is not None else IndexShard()
        self.index = self.shard.applied_index

    def run(self, command: object) -> object:
        self.index += 1
        return self.shard.apply(self.index, encode_command(command))  # type: ignore[arg-type]

    def create(self, key: str = "k", bucket: str = "bkt", created_s: float = 1.0) -> str:
        result = self.run(
            CreateUpload(bucket, key, created_s, "alice", "text/plain", {"m": "v"}, {})
        )
        assert isinstance(result, CreateUploadResult), result
        return result.upload_id

    def put(self, upload_id: str, p: Part, key: str = "k", bucket: str = "bkt") -> object:
        return self.run(PutPart(bucket, key, upload_id, p))

    def complete(
        self,
        upload_id: str,
        parts: list[tuple[int, str]],
        key: str = "k",
        versioning: VersioningState = OFF,
    ) -> object:
        return self.run(CompleteUpload("bkt", key, upload_id, parts, 9.0, versioning))


def test_complete_builds_the_object_with_the_multipart_etag() -> None:
    s = Shard()
    upload = s.create()
    p1, p2, p3 = part(1, MIB5, "one", 3), part(2, MIB5 + 7, "two", 2), part(3, 10, "three")
    for p in (p3, p1, p2):  # any upload order
        assert s.put(upload, p) == PutPartResult(p.etag)
    result = s.complete(upload, [(1, f'"{p1.etag}"'), (2, p2.etag), (3, p3.etag.upper())])
    expected = etag_multipart([bytes.fromhex(p.etag) for p in (p1, p2, p3)])
    assert result == CompleteResult("null", expected, 2 * MIB5 + 17)
    version = s.shard.head("bkt", "k")
    manifest = version.manifest
    assert manifest is not None and manifest.etag == expected and manifest.part_count == 3
    assert manifest.part_sizes == (p1.size, p2.size, p3.size)
    assert manifest.content_type == "text/plain" and manifest.user_metadata == {"m": "v"}
    assert manifest.created_s == 9.0
    refs = manifest.chunks
    assert [r.chunk_id for r in refs] == [c.chunk_id for p in (p1, p2, p3) for c in p.chunks]
    assert refs[0].offset == 0 and all(a.end == b.offset for a, b in itertools.pairwise(refs))
    assert refs[-1].end == manifest.size
    # the upload is gone with the same command
    assert isinstance(s.put(upload, p1), NoSuchUpload)
    assert s.shard.list_uploads("bkt").uploads == []


def test_complete_rules_in_s3_order() -> None:
    s = Shard()
    upload = s.create()
    small, big, last = part(1, 100, "small"), part(2, MIB5, "big"), part(3, 1, "last")
    for p in (small, big, last):
        s.put(upload, p)
    order = s.complete(upload, [(2, big.etag), (1, small.etag)])
    assert isinstance(order, InvalidPartOrder) and order.code == "InvalidPartOrder"
    duplicate = s.complete(upload, [(2, big.etag), (2, big.etag)])
    assert isinstance(duplicate, InvalidPartOrder)
    assert isinstance(s.complete(upload, [(2, big.etag), (4, big.etag)]), InvalidPart)
    assert isinstance(s.complete(upload, [(2, "0" * 32)]), InvalidPart)
    too_small = s.complete(upload, [(1, small.etag), (2, big.etag)])
    assert isinstance(too_small, EntityTooSmall) and too_small.code == "EntityTooSmall"
    assert isinstance(s.complete(upload, []), InvalidUploadArgument)
    assert isinstance(s.complete("nope", [(2, big.etag)]), NoSuchUpload)
    assert isinstance(s.complete(upload, [(2, big.etag)], key="other"), NoSuchUpload)
    with pytest.raises(NoSuchKey):
        s.shard.head("bkt", "k")  # nothing became visible
    # a small *last* part is fine; parts not named are dropped
    result = s.complete(upload, [(2, big.etag), (3, last.etag)])
    assert isinstance(result, CompleteResult) and result.size == MIB5 + 1
    assert result.etag.endswith("-2")


def test_a_single_small_part_and_an_empty_part_complete() -> None:
    s = Shard()
    upload = s.create()
    s.put(upload, part(1, 0, "empty"))
    result = s.complete(upload, [(1, part(1, 0, "empty").etag)])
    assert isinstance(result, CompleteResult) and result.size == 0
    manifest = s.shard.head("bkt", "k").manifest
    assert manifest is not None and manifest.chunks == () and manifest.inline is None


def test_reuploading_a_part_replaces_it_and_its_chunks_stop_being_live() -> None:
    s = Shard()
    upload = s.create()
    first, second = part(1, 10, "first"), part(1, 20, "second")
    s.put(upload, first)
    assert s.shard.live_chunk_ids() == {cid("first/0")}
    s.put(upload, second)
    assert s.shard.live_chunk_ids() == {cid("second/0")}
    page = s.shard.list_parts("bkt", "k", upload)
    assert [(p.part_number, p.size, p.etag) for p in page.parts] == [(1, 20, second.etag)]
    assert page.parts[0].chunks == ()  # listings carry no chunk lists
    assert isinstance(s.complete(upload, [(1, first.etag)]), InvalidPart)


def test_live_chunk_ids_include_parts_until_abort() -> None:
    s = Shard()
    a, b = s.create("a"), s.create("b")
    s.put(a, part(1, 30, "pa", 3), key="a")
    s.put(b, part(2, 10, "pb"), key="b")
    live = {cid("pa/0"), cid("pa/1"), cid("pa/2"), cid("pb/0")}
    assert s.shard.live_chunk_ids() == live
    assert s.run(AbortUpload("bkt", "a", a)) == AbortResult(1)
    assert s.shard.live_chunk_ids() == {cid("pb/0")}
    assert isinstance(s.run(AbortUpload("bkt", "a", a)), NoSuchUpload)
    assert isinstance(s.run(AbortUpload("bkt", "a", b)), NoSuchUpload)  # wrong key
    # completing moves the chunks from the upload to the object: live throughout
    s.complete(b, [(2, part(2, 10, "pb").etag)], key="b")
    assert s.shard.live_chunk_ids() == {cid("pb/0")}


def test_aborting_a_buckets_uploads_leaves_other_buckets_alone() -> None:
    s = Shard()
    a, b = s.create("a"), s.create("b")
    other = s.create("a", bucket="other")
    s.put(a, part(1, 30, "pa", 3), key="a")
    s.put(other, part(1, 10, "po"), key="a", bucket="other")
    assert s.run(AbortBucketUploads("bkt")) == AbortBucketUploadsResult(2)
    assert s.shard.live_chunk_ids() == {cid("po/0")}
    for upload_id, key in ((a, "a"), (b, "b")):
        assert isinstance(s.run(AbortUpload("bkt", key, upload_id)), NoSuchUpload)
    assert s.run(AbortBucketUploads("bkt")) == AbortBucketUploadsResult(0)
    assert s.run(AbortUpload("other", "a", other)) == AbortResult(1)


def test_upload_ids_are_deterministic_and_distinct() -> None:
    a, b = Shard(), Shard()
    ids_a = [a.create(f"k{i}") for i in range(3)]
    ids_b = [b.create(f"k{i}") for i in range(3)]
    assert ids_a == ids_b and len(set(ids_a)) == 3 and ids_a == sorted(ids_a)
    other = Shard(IndexShard(shard_id=2))
    assert other.create("k0") != ids_a[0]


def test_a_retried_complete_answers_like_the_first() -> None:
    s = Shard()
    upload = s.create()
    p = part(1, 10, "p")
    s.put(upload, p)
    first = s.complete(upload, [(1, p.etag)], versioning=ON)
    assert isinstance(first, CompleteResult) and first.version_id != "null"
    assert s.complete(upload, [(1, p.etag)], versioning=ON) == first
    assert len(s.shard.versions("bkt", "k")) == 1  # not committed twice
    assert isinstance(s.complete(upload, [(1, p.etag)], key="other"), NoSuchUpload)
    # the memory is bounded
    for i in range(COMPLETED_REMEMBERED_MAX):
        u = s.create(f"x{i}")
        s.put(u, p, key=f"x{i}")
        s.complete(u, [(1, p.etag)], key=f"x{i}")
    assert isinstance(s.complete(upload, [(1, p.etag)]), NoSuchUpload)


def test_a_conditional_complete_is_a_compare_and_set_that_keeps_a_refused_upload() -> None:
    s = Shard()
    upload = s.create()
    p = part(1, 10, "p")
    s.put(upload, p)

    def complete_if(condition: WriteCondition) -> object:
        return s.run(CompleteUpload("bkt", "k", upload, [(1, p.etag)], 9.0, OFF, condition))

    assert isinstance(complete_if(WriteCondition(if_match="0" * 32)), NoSuchKey)
    other = s.create()
    s.put(other, part(1, 10, "other"), key="k")
    first = s.run(CompleteUpload("bkt", "k", other, [(1, part(1, 10, "other").etag)], 9.0, OFF))
    assert isinstance(first, CompleteResult)
    assert isinstance(complete_if(WriteCondition(if_none_match=True)), PreconditionFailed)
    assert len(s.shard.list_uploads("bkt").uploads) == 1, "a refused complete keeps the upload"
    done = complete_if(WriteCondition(if_match=first.etag))
    assert isinstance(done, CompleteResult)
    manifest = s.shard.head("bkt", "k").manifest
    assert manifest is not None and manifest.etag == done.etag
    assert s.shard.list_uploads("bkt").uploads == []


def test_a_fenced_complete_below_the_highest_token_is_refused_and_keeps_the_upload() -> None:
    s = Shard()
    s.run(
        PutObject(
            "bkt", "other", Manifest(0, "0" * 32, 1.0, inline=b""), OFF, None, Fence("job", 7)
        )
    )
    upload = s.create()
    p = part(1, 10, "p")
    s.put(upload, p)

    def complete(fence: Fence) -> object:
        return s.run(CompleteUpload("bkt", "k", upload, [(1, p.etag)], 9.0, OFF, None, fence))

    assert isinstance(complete(Fence("job", 6)), FenceStale)
    assert len(s.shard.list_uploads("bkt").uploads) == 1
    assert isinstance(complete(Fence("job", 8)), CompleteResult)
    late = s.run(
        PutObject("bkt", "k", Manifest(0, "0" * 32, 1.0, inline=b""), OFF, None, Fence("job", 7))
    )
    assert isinstance(late, FenceStale), "the complete raised the highest token to 8"


def test_versioned_complete_appends_a_version() -> None:
    s = Shard()
    s.run(PutObject("bkt", "k", Manifest(1, "0" * 32, 1.0, inline=b"x"), ON))
    upload = s.create()
    p = part(1, 10, "p")
    s.put(upload, p)
    result = s.complete(upload, [(1, p.etag)], versioning=ON)
    assert isinstance(result, CompleteResult)
    assert s.shard.versions("bkt", "k")[0].version_id == result.version_id
    assert len(s.shard.versions("bkt", "k")) == 2


def test_bad_parts_are_refused() -> None:
    s = Shard()
    upload = s.create()
    bad = [
        Part(0, 0, "0" * 32, 1.0),
        Part(10_001, 0, "0" * 32, 1.0),
        Part(1, 5, "xyz", 1.0, (PartChunk(cid("a"), 5),)),
        Part(1, 5, "0" * 32, 1.0, (PartChunk(b"short", 5),)),
        Part(1, 6, "0" * 32, 1.0, (PartChunk(cid("a"), 5),)),
        Part(1, 0, "0" * 32, 1.0, (PartChunk(cid("a"), 0),)),
        Part(1, 6 * 1024**3, "0" * 32, 1.0),
    ]
    for p in bad:
        assert isinstance(s.put(upload, p), InvalidUploadArgument), p
    assert s.shard.list_parts("bkt", "k", upload).parts == []
    assert isinstance(s.put("missing", part(1, 1, "x")), NoSuchUpload)


def test_bad_upload_attributes_are_refused_at_create() -> None:
    s = Shard()
    for command in (
        CreateUpload("bkt", "k", 1.0, user_metadata={"m": "x" * 3000}),
        CreateUpload("bkt", "k", 1.0, content_headers={"cache-control": "x" * 9000}),
        CreateUpload("bkt", "k", 1.0, content_type="t" * 300),
        CreateUpload("bkt", "k", 1.0, checksum_algorithm="c" * 40),
    ):
        assert isinstance(s.run(command), InvalidUploadArgument)
    assert len(s.shard.uploads) == 0


def test_keys_outside_the_shard_are_refused() -> None:
    s = Shard(IndexShard(start=b"", end=encode_key("bkt", "m")))
    assert isinstance(s.run(CreateUpload("bkt", "z", 1.0)), KeyOutOfRange)
    upload = s.create("a")
    with pytest.raises(KeyOutOfRange):
        s.shard.list_parts("bkt", "z", upload)


def test_list_parts_pages() -> None:
    s = Shard()
    upload = s.create()
    for n in (5, 1, 3, 9, 7):
        s.put(upload, part(n, n, f"p{n}"))
    page = s.shard.list_parts("bkt", "k", upload, 0, 2)
    assert [p.part_number for p in page.parts] == [1, 3]
    assert page.is_truncated and page.next_part_number_marker == 3
    page = s.shard.list_parts("bkt", "k", upload, 3, 10)
    assert [p.part_number for p in page.parts] == [5, 7, 9] and not page.is_truncated
    assert page.upload.initiator == "alice" and page.upload.key == "k"
    empty = s.shard.list_parts("bkt", "k", upload, 0, 0)
    assert empty.parts == [] and empty.is_truncated
    with pytest.raises(NoSuchUpload):
        s.shard.list_parts("bkt", "k", "nope")


def test_snapshot_round_trip_split_and_shrink() -> None:
    a, b = Shard(), Shard()
    for s in (a, b):
        u1, u2 = s.create("a"), s.create("z")
        s.put(u1, part(1, 10, "a1"), key="a")
        s.put(u2, part(1, 10, "z1"), key="z")
        done = s.create("d")
        s.put(done, part(1, 1, "d"), key="d")
        s.complete(done, [(1, part(1, 1, "d").etag)], key="d")
    assert a.shard.snapshot() == b.shard.snapshot()
    c = IndexShard()
    c.restore(a.shard.snapshot())
    assert c.snapshot() == a.shard.snapshot()
    assert c.live_chunk_ids() == a.shard.live_chunk_ids()
    assert c.list_uploads("bkt") == a.shard.list_uploads("bkt")
    # the remembered Complete survives the snapshot too
    restored = Shard(c)
    assert isinstance(restored.complete(done, [(1, part(1, 1, "d").etag)], key="d"), CompleteResult)
    at = encode_key("bkt", "m")
    upper = IndexShard()
    upper.restore(a.shard.split_snapshot(at, 7))
    assert [u.key for u in upper.list_uploads("bkt").uploads] == ["z"]
    assert upper.live_chunk_ids() == {cid("z1/0")}
    a.run(ShrinkRange(at))
    assert [u.key for u in a.shard.list_uploads("bkt").uploads] == ["a"]
    assert cid("z1/0") not in a.shard.live_chunk_ids()


def test_an_old_snapshot_without_uploads_decodes() -> None:
    old = {"applied_index": 3, "shard_id": 1, "start": b"", "end": None, "keys": []}
    shard = IndexShard()
    shard.restore(bytes([1]) + msgspec.msgpack.encode(old))
    assert shard.applied_index == 3 and len(shard.uploads) == 0


def test_expired_uploads() -> None:
    s = Shard()
    old = s.create("old", created_s=100.0)
    s.create("new", created_s=1000.0)
    assert [u.upload_id for u in s.shard.uploads.expired(1000.0, 500.0)] == [old]
    assert s.shard.uploads.expired(1000.0, 5000.0) == []
    assert len(s.shard.uploads.expired(10_000.0, 1.0, limit=1)) == 1


def test_bad_list_arguments() -> None:
    shard = IndexShard()
    with pytest.raises(InvalidListArgument):
        shard.list_uploads("bkt", prefix="p" * 2000)
    with pytest.raises(InvalidUploadArgument):
        shard.list_uploads("bkt", max_uploads=-1)


# ListMultipartUploads against a brute-force model -------------------------------------------

KEY_ALPHABET = ["a", "b", "/", "é", "ab/"]
keys = st.lists(st.sampled_from(KEY_ALPHABET), min_size=1, max_size=4).map("".join)


def model(
    uploads: list[tuple[str, str]], prefix: str, delimiter: str
) -> list[tuple[str, str, str]]:
    """Every item in order: ("u", key, upload id) or ("p", common prefix, "")."""
    items: list[tuple[str, str, str]] = []
    for key, upload_id in sorted(uploads, key=lambda u: (u[0].encode(), u[1])):
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix) :]
        if delimiter and delimiter in rest:
            common = prefix + rest[: rest.index(delimiter) + len(delimiter)]
            if items[-1:] != [("p", common, "")]:
                items.append(("p", common, ""))
        else:
            items.append(("u", key, upload_id))
    return items


def page_items(page: UploadsPage) -> list[tuple[str, str, str]]:
    items = [("u", u.key, u.upload_id) for u in page.uploads]
    items += [("p", p, "") for p in page.common_prefixes]
    return sorted(items, key=lambda item: (item[1].encode(), item[2]))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(keys, max_size=20),
    st.one_of(st.just(""), keys),
    st.sampled_from(["", "/", "b"]),
    st.integers(1, 5),
)
def test_list_uploads_pages_concatenate_to_the_model(
    upload_keys: list[str], prefix: str, delimiter: str, max_uploads: int
) -> None:
    s = Shard()
    uploads = [(key, s.create(key)) for key in upload_keys]
    s.create("x", bucket="other")
    expected = model(uploads, prefix, delimiter)
    got: list[tuple[str, str, str]] = []
    key_marker = upload_id_marker = ""
    for _ in range(100):
        page = s.shard.list_uploads(
            "bkt", prefix, delimiter, key_marker, upload_id_marker, max_uploads
        )
        assert len(page.uploads) + len(page.common_prefixes) <= max_uploads
        got += page_items(page)
        if not page.is_truncated:
            break
        key_marker, upload_id_marker = page.next_key_marker, page.next_upload_id_marker
    assert got == expected
