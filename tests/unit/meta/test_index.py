"""The object index shard: S3 versioning rules, ListObjectsV2 against a brute-force model,
ranges, counters, chunk enumeration, snapshots and bad input."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    multiple,
    rule,
)

from cairn.meta.buckets import InvalidBucketName, VersioningState
from cairn.meta.index import (
    LIST_KEYS_MAX,
    NULL_VERSION,
    OBJECT_KEY_BYTES_MAX,
    BucketStats,
    DeleteObject,
    DeleteResult,
    DropSeed,
    FenceStale,
    IndexCommand,
    IndexShard,
    InvalidFence,
    InvalidListArgument,
    InvalidObjectKey,
    KeyOutOfRange,
    ListPage,
    NoSuchKey,
    NoSuchVersion,
    ObjectIndexError,
    PreconditionFailed,
    PutObject,
    PutResult,
    ShrinkRange,
    ShrinkResult,
    encode_command,
    encode_key,
)
from cairn.meta.machine import CommandFormatError, MetaError, SnapshotFormatError
from cairn.meta.manifest import INLINE_BYTES_MAX, ChunkRef, Manifest, ManifestError, etag_of_bytes
from cairn.meta.write_condition import Fence, WriteCondition

ON = VersioningState.ENABLED
OFF = VersioningState.UNVERSIONED
SUSPENDED = VersioningState.SUSPENDED


def inline(data: bytes, created_s: float = 1.0) -> Manifest:
    return Manifest(len(data), etag_of_bytes(data), created_s, inline=data)


def chunked(*ids: bytes) -> Manifest:
    refs = tuple(ChunkRef(hashlib.sha256(i).digest(), n * 10, 10) for n, i in enumerate(ids))
    return Manifest(10 * len(ids), "0" * 32, 1.0, chunks=refs)


class Shard:
    """An index shard with a log index counter, applying encoded commands."""

    def __init__(self, shard: IndexShard | None = None) -> None:
        self.shard = shard if shard is not None else IndexShard()
        self.index = self.shard.applied_index

    def run(self, command: IndexCommand) -> object:
        self.index += 1
        return self.shard.apply(self.index, encode_command(command))

    def put(
        self, key: str, data: bytes, versioning: VersioningState = OFF, bucket: str = "bkt"
    ) -> str:
        result = self.run(PutObject(bucket, key, inline(data), versioning))
        assert isinstance(result, PutResult), result
        return result.version_id

    def delete(
        self,
        key: str,
        versioning: VersioningState = OFF,
        version_id: str | None = None,
        bucket: str = "bkt",
    ) -> DeleteResult:
        result = self.run(DeleteObject(bucket, key, 2.0, versioning, version_id))
        assert isinstance(result, DeleteResult), result
        return result


def test_unversioned_put_replaces_and_delete_removes() -> None:
    s = Shard()
    assert s.put("a", b"1") == NULL_VERSION
    assert s.put("a", b"22") == NULL_VERSION
    assert s.shard.head("bkt", "a").manifest == inline(b"22")
    assert len(s.shard.versions("bkt", "a")) == 1
    assert s.shard.stats("bkt").bytes == 2
    assert s.delete("a") == DeleteResult(True)
    assert s.delete("a") == DeleteResult(False)
    with pytest.raises(NoSuchKey):
        s.shard.head("bkt", "a")
    assert s.shard.stats("bkt").versions == 0


def test_versioning_enabled_keeps_versions_and_writes_delete_markers() -> None:
    s = Shard()
    v1 = s.put("a", b"1", ON)
    v2 = s.put("a", b"2", ON)
    assert v1 != v2 and v1 == f"{1:08x}{1:016x}"
    assert s.shard.head("bkt", "a").version_id == v2
    assert s.shard.head("bkt", "a", v1).manifest == inline(b"1")
    marker = s.delete("a", ON)
    assert marker.delete_marker and marker.version_id is not None
    with pytest.raises(NoSuchKey) as exc:
        s.shard.head("bkt", "a")
    assert exc.value.delete_marker
    assert s.shard.list_objects("bkt").entries == []
    assert s.shard.stats("bkt").versions == 3 and s.shard.stats("bkt").objects == 0
    # Removing the marker by id brings the object back.
    assert s.delete("a", ON, marker.version_id) == DeleteResult(True, marker.version_id, True)
    assert s.shard.head("bkt", "a").version_id == v2
    assert s.delete("a", ON, "nope") == DeleteResult(False, "nope")
    with pytest.raises(NoSuchVersion):
        s.shard.head("bkt", "a", "nope")


def test_versioning_suspended_replaces_only_the_null_version() -> None:
    s = Shard()
    v1 = s.put("a", b"1", ON)
    assert s.put("a", b"2", SUSPENDED) == NULL_VERSION
    assert s.put("a", b"3", SUSPENDED) == NULL_VERSION
    assert [v.version_id for v in s.shard.versions("bkt", "a")] == [NULL_VERSION, v1]
    result = s.delete("a", SUSPENDED)
    assert result == DeleteResult(True, NULL_VERSION, True)
    versions = s.shard.versions("bkt", "a")
    assert [v.version_id for v in versions] == [NULL_VERSION, v1]
    assert versions[0].is_delete_marker


def test_an_unversioned_put_replaces_every_version() -> None:
    s = Shard()
    s.put("a", b"1", ON)
    s.delete("a", ON)
    assert s.put("a", b"2", OFF) == NULL_VERSION
    assert [v.version_id for v in s.shard.versions("bkt", "a")] == [NULL_VERSION]
    assert s.shard.stats("bkt") == BucketStats(1, 1, 1)


def test_keys_outside_the_range_and_bad_keys_are_refused() -> None:
    s = Shard(IndexShard(2, encode_key("bkt", "m"), encode_key("bkt", "t")))
    assert s.put("m", b"x") == NULL_VERSION
    for key in ("a", "t", "z"):
        assert isinstance(s.run(PutObject("bkt", key, inline(b""), OFF)), KeyOutOfRange)
    assert isinstance(
        s.run(PutObject("bkt", "m" * (OBJECT_KEY_BYTES_MAX + 1), inline(b""), OFF)), MetaError
    )
    full = Shard()
    assert full.put("k" * OBJECT_KEY_BYTES_MAX, b"") == NULL_VERSION
    for bad in ("", "k" * (OBJECT_KEY_BYTES_MAX + 1), "é" * 513):
        result = full.run(PutObject("bkt", bad, inline(b""), OFF))
        assert isinstance(result, InvalidObjectKey), bad
    assert isinstance(full.run(PutObject("Bad_Bucket", "k", inline(b""), OFF)), InvalidBucketName)
    oversized = Manifest(INLINE_BYTES_MAX + 1, "0" * 32, 1.0, inline=b"x" * (INLINE_BYTES_MAX + 1))
    assert isinstance(full.run(PutObject("bkt", "k", oversized, OFF)), ManifestError)
    with pytest.raises(KeyOutOfRange):
        s.shard.head("bkt", "z")
    with pytest.raises(InvalidObjectKey):
        s.shard.head("bkt", "\udc80")
    with pytest.raises(CommandFormatError):
        encode_command(PutObject("bkt", "\udc80", inline(b""), OFF))
    assert s.shard.applied_index == s.index, "rejected commands still count as applied"


def test_conditional_puts_compare_and_set_the_current_object() -> None:
    s = Shard()
    create = WriteCondition(if_none_match=True)

    def put_if(
        key: str, data: bytes, condition: WriteCondition, versioning: VersioningState = OFF
    ) -> object:
        return s.run(PutObject("bkt", key, inline(data), versioning, condition))

    assert isinstance(put_if("a", b"1", create), PutResult)
    refused = put_if("a", b"2", create)
    assert isinstance(refused, PreconditionFailed) and refused.code == "PreconditionFailed"
    assert s.shard.head("bkt", "a").manifest == inline(b"1"), "a refused put changes nothing"
    etag_1 = etag_of_bytes(b"1")
    assert isinstance(put_if("a", b"3", WriteCondition(if_match=etag_1)), PutResult)
    assert isinstance(put_if("a", b"4", WriteCondition(if_match=etag_1)), PreconditionFailed)
    assert isinstance(put_if("a", b"5", WriteCondition(if_match="*")), PutResult)
    assert isinstance(put_if("missing", b"x", WriteCondition(if_match="*")), NoSuchKey)
    assert s.shard.head("bkt", "a").manifest == inline(b"5")
    # A delete marker is no current object: create-only succeeds over it, If-Match does not.
    assert isinstance(put_if("v", b"1", create, ON), PutResult)
    s.delete("v", ON)
    assert isinstance(put_if("v", b"2", WriteCondition(if_match="*"), ON), NoSuchKey)
    assert isinstance(put_if("v", b"2", create, ON), PutResult)
    assert len(s.shard.versions("bkt", "v")) == 3
    # The condition travels in the log entry: an entry written without one still decodes.
    plain = encode_command(PutObject("bkt", "a", inline(b"6"), OFF))
    s.index += 1
    assert isinstance(s.shard.apply(s.index, plain), PutResult)


def test_a_fenced_write_below_the_highest_token_accepted_is_refused() -> None:
    s = Shard()

    def put(key: str, data: bytes, fence: Fence | None) -> object:
        return s.run(PutObject("bkt", key, inline(data), OFF, fence=fence))

    def delete(key: str, fence: Fence) -> object:
        return s.run(DeleteObject("bkt", key, 2.0, OFF, fence=fence))

    assert isinstance(put("a", b"1", Fence("job", 5)), PutResult)
    assert isinstance(put("a", b"2", Fence("job", 5)), PutResult), "the same holder again"
    assert isinstance(put("b", b"1", Fence("job", 9)), PutResult), "the next holder"
    # The paused holder of token 5, on any key of the shard, now and for deletes too.
    stale = put("a", b"late", Fence("job", 5))
    assert isinstance(stale, FenceStale) and stale.code == "FenceStale"
    assert isinstance(delete("b", Fence("job", 8)), FenceStale)
    assert s.shard.head("bkt", "a").manifest == inline(b"2"), "a refused write changes nothing"
    assert isinstance(put("a", b"3", Fence("other", 1)), PutResult), "names are separate"
    assert isinstance(put("a", b"4", None), PutResult), "unfenced writes are not checked"
    assert isinstance(delete("b", Fence("job", 12)), DeleteResult)
    assert isinstance(put("b", b"x", Fence("job", 9)), FenceStale), "a delete raises it too"
    for bad in (Fence("", 1), Fence("job", 0), Fence("x" * 513, 1)):
        assert isinstance(put("a", b"5", bad), InvalidFence), bad
    # The highest tokens travel in snapshots and in both halves of a split.
    copy = IndexShard()
    copy.restore(s.shard.snapshot())
    assert copy.snapshot() == s.shard.snapshot()
    upper = IndexShard()
    upper.restore(s.shard.split_snapshot(encode_key("bkt", "b"), 7))
    for shard in (copy, upper):
        again = Shard(shard)
        assert isinstance(
            again.run(PutObject("bkt", "c", inline(b"x"), OFF, fence=Fence("job", 11))), FenceStale
        )


def test_a_shard_forgets_the_lowest_token_past_its_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("cairn.meta.index.FENCE_NAMES_MAX", 3)
    s = Shard()
    for token, name in enumerate(["a", "b", "c", "d"], start=1):
        s.run(PutObject("bkt", "k", inline(b"x"), OFF, fence=Fence(name, token)))
    refused = s.run(PutObject("bkt", "k", inline(b"x"), OFF, fence=Fence("b", 1)))
    assert isinstance(refused, FenceStale)
    forgotten = s.run(PutObject("bkt", "k", inline(b"x"), OFF, fence=Fence("a", 0 + 1)))
    assert isinstance(forgotten, PutResult)


def test_unknown_command_format_is_a_typed_result() -> None:
    shard = IndexShard()
    data = encode_command(PutObject("bkt", "k", inline(b""), OFF))
    assert isinstance(shard.apply(1, b"\x07" + data[1:]), CommandFormatError)
    assert isinstance(shard.apply(2, b""), CommandFormatError)
    assert isinstance(shard.apply(3, data[:5]), CommandFormatError)
    assert shard.applied_index == 3 and shard.total().versions == 0
    with pytest.raises(SnapshotFormatError):
        shard.restore(b"\x02" + shard.snapshot()[1:])


def test_bad_list_arguments() -> None:
    shard = IndexShard()
    with pytest.raises(InvalidListArgument):
        shard.list_objects("bkt", max_keys=-1)
    with pytest.raises(InvalidListArgument):
        shard.list_objects("bkt", continuation_token="!!!")
    with pytest.raises(InvalidBucketName):
        shard.list_objects("UPPER")
    with pytest.raises(InvalidListArgument):
        shard.list_objects("bkt", prefix="p" * (OBJECT_KEY_BYTES_MAX + 1))


def test_counters_chunk_ids_split_and_shrink() -> None:
    s = Shard()
    s.run(PutObject("bkt", "a", chunked(b"1", b"2"), ON))
    s.run(PutObject("bkt", "a", chunked(b"2", b"3"), ON))
    s.run(PutObject("bkt", "z", chunked(b"4"), OFF))
    s.put("k", b"inline", bucket="other")
    ids = {hashlib.sha256(i).digest() for i in (b"1", b"2", b"3", b"4")}
    assert s.shard.live_chunk_ids() == ids
    assert s.shard.stats("bkt").versions == 3 and s.shard.stats("bkt").bytes == 50
    assert s.shard.total().objects == 3
    at = encode_key("bkt", "m")
    upper = IndexShard()
    upper.restore(s.shard.split_snapshot(at, 9))
    assert upper.shard_id == 9 and upper.start == at and upper.end is None
    assert upper.live_chunk_ids() == {hashlib.sha256(b"4").digest()}
    assert upper.total().objects == 2  # bkt/z and other/k
    result = s.run(ShrinkRange(at))
    assert result is not None and s.shard.end == at
    assert s.shard.total().objects == 1
    assert isinstance(s.run(PutObject("bkt", "z", inline(b""), OFF)), KeyOutOfRange)
    assert isinstance(s.run(ShrinkRange(b"zzz")), KeyOutOfRange)


def test_shrink_with_seed_keeps_what_it_cut_until_dropped() -> None:
    s = Shard()
    for key in ("a", "b", "c", "d", "e"):
        s.put(key, key.encode())
    s.delete("e")  # unversioned: the key is gone
    at = s.shard.split_point()
    assert at == encode_key("bkt", "c"), "the middle of a, b, c, d"
    assert Shard().shard.split_point() is None
    assert s.run(ShrinkRange(at, seed_group=4)) == ShrinkResult(2)
    assert s.shard.end == at and s.shard.seed_groups() == [4] and s.shard.key_count == 2
    assert s.run(ShrinkRange(at, seed_group=4)) == ShrinkResult(0), "a retry changes nothing"
    seed = s.shard.seed(4)
    assert seed is not None
    child = IndexShard()
    child.restore(seed)
    assert (child.shard_id, child.start, child.end, child.key_count) == (4, at, None, 2)
    assert child.head("bkt", "d").manifest == inline(b"d")
    copy = IndexShard()
    copy.restore(s.shard.snapshot())
    assert copy.seed(4) == seed, "the seed travels in snapshots"
    assert s.run(DropSeed(4)) is True and s.run(DropSeed(4)) is False
    assert s.shard.seed(4) is None and s.shard.seed_groups() == []
    assert isinstance(s.run(ShrinkRange(encode_key("bkt", "b"), seed_group=1)), ObjectIndexError)


def test_snapshot_round_trip_and_determinism() -> None:
    a, b = Shard(), Shard()
    for s in (a, b):
        s.put("x/1", b"1", ON)
        s.put("x/2", b"2")
        s.delete("x/1", ON)
        s.run(PutObject("bkt", "y", chunked(b"c"), ON))
    assert a.shard.snapshot() == b.shard.snapshot()
    c = IndexShard()
    c.restore(a.shard.snapshot())
    assert c.snapshot() == a.shard.snapshot()
    assert c.list_objects("bkt") == a.shard.list_objects("bkt")
    assert c.stats("bkt") == a.shard.stats("bkt")
    assert c.live_chunk_ids() == a.shard.live_chunk_ids()


# ListObjectsV2 against a brute-force model ---------------------------------------------------

KEY_ALPHABET = ["a", "b", "/", "-", "é", "\U0001f600", "ab/"]
keys = st.lists(st.sampled_from(KEY_ALPHABET), min_size=1, max_size=5).map("".join)
delimiters = st.sampled_from(["", "/", "a", "é", "b/"])


def model_list(
    live: set[str], prefix: str, delimiter: str, start_after: str
) -> list[tuple[str, str]]:
    """Every item of a listing, in order: ("k", key) or ("p", common prefix)."""
    items: list[tuple[str, str]] = []
    for key in sorted(live, key=str.encode):
        if not key.startswith(prefix) or key.encode() <= start_after.encode():
            continue
        rest = key[len(prefix) :]
        if delimiter and delimiter in rest:
            common = prefix + rest[: rest.index(delimiter) + len(delimiter)]
            if items[-1:] != [("p", common)]:
                items.append(("p", common))
        else:
            items.append(("k", key))
    return items


def page_items(page: ListPage) -> list[tuple[str, str]]:
    items = [("k", e.key) for e in page.entries] + [("p", p) for p in page.common_prefixes]
    return sorted(items, key=lambda item: item[1].encode())


def list_all(
    shard: IndexShard, prefix: str, delimiter: str, start_after: str, max_keys: int
) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    token = None
    for _ in range(200):
        page = shard.list_objects("bkt", prefix, delimiter, start_after, token, max_keys)
        assert page.key_count <= max_keys
        out += page_items(page)
        if not page.is_truncated:
            assert page.next_continuation_token is None
            return out
        assert page.key_count == max_keys and page.next_continuation_token is not None
        token = page.next_continuation_token
    raise AssertionError("listing did not finish")


@settings(max_examples=300)
@given(
    st.lists(keys, max_size=25),
    st.sets(keys, max_size=5),
    st.one_of(st.just(""), keys),
    delimiters,
    st.one_of(st.just(""), keys),
    st.integers(1, 6),
)
def test_listing_pages_concatenate_to_the_model(
    put_keys: list[str],
    deleted: set[str],
    prefix: str,
    delimiter: str,
    start_after: str,
    max_keys: int,
) -> None:
    s = Shard()
    for key in put_keys:
        s.put(key, b"", ON)
    for key in deleted:
        s.delete(key, ON)
    s.put("k", b"", bucket="bkt-before")
    s.put("k", b"", bucket="bkt0")
    live = set(put_keys) - deleted
    expected = model_list(live, prefix, delimiter, start_after)
    assert list_all(s.shard, prefix, delimiter, start_after, max_keys) == expected
    single = s.shard.list_objects("bkt", prefix, delimiter, start_after, max_keys=LIST_KEYS_MAX)
    assert page_items(single) == expected and not single.is_truncated
    assert all(e.version == s.shard.head("bkt", e.key) for e in single.entries)


def test_listing_with_zero_max_keys_and_huge_max_keys() -> None:
    s = Shard()
    for key in ("a", "b"):
        s.put(key, b"")
    page = s.shard.list_objects("bkt", max_keys=0)
    assert page.key_count == 0 and page.is_truncated
    assert page.next_continuation_token is not None
    rest = s.shard.list_objects("bkt", continuation_token=page.next_continuation_token)
    assert [e.key for e in rest.entries] == ["a", "b"]
    assert s.shard.list_objects("bkt", max_keys=10**9).key_count == 2


# Rule-based: puts and deletes under every versioning mode against a dict model ---------------


class IndexModel(RuleBasedStateMachine):
    """Model: key -> list of (version id, data or None for a marker), newest last."""

    versions_bundle = Bundle("versions")

    def __init__(self) -> None:
        super().__init__()
        self.s = Shard()
        self.model: dict[str, list[tuple[str, bytes | None]]] = {}

    @rule(
        target=versions_bundle,
        key=keys,
        data=st.binary(max_size=8),
        versioning=st.sampled_from(list(VersioningState)),
    )
    def put(self, key: str, data: bytes, versioning: VersioningState) -> object:
        version_id = self.s.put(key, data, versioning)
        old = self.model.get(key, [])
        if versioning == ON:
            assert version_id == f"{1:08x}{self.s.index:016x}"
            self.model[key] = [*old, (version_id, data)]
        else:
            keep = [] if versioning == OFF else [v for v in old if v[0] != NULL_VERSION]
            self.model[key] = [*keep, (NULL_VERSION, data)]
        return multiple((key, version_id))

    @rule(key=keys, versioning=st.sampled_from(list(VersioningState)))
    def delete(self, key: str, versioning: VersioningState) -> None:
        result = self.s.delete(key, versioning)
        old = self.model.get(key, [])
        if versioning == OFF:
            assert result.deleted == bool(old)
            self.model.pop(key, None)
            return
        assert result.delete_marker and result.version_id is not None
        keep = old if versioning == ON else [v for v in old if v[0] != NULL_VERSION]
        self.model[key] = [*keep, (result.version_id, None)]

    @rule(target_version=consumes(versions_bundle))
    def delete_version(self, target_version: tuple[str, str]) -> None:
        key, version_id = target_version
        old = self.model.get(key, [])
        present = any(v[0] == version_id for v in old)
        result = self.s.delete(key, ON, version_id)
        assert result.deleted == present
        if present:
            self.model[key] = [v for v in old if v[0] != version_id]
            if not self.model[key]:
                del self.model[key]

    @rule(key=keys)
    def head(self, key: str) -> None:
        versions = self.model.get(key, [])
        if not versions or versions[-1][1] is None:
            with pytest.raises(NoSuchKey):
                self.s.shard.head("bkt", key)
        else:
            got = self.s.shard.head("bkt", key)
            assert got.version_id == versions[-1][0]
            assert got.manifest is not None and got.manifest.inline == versions[-1][1]

    @invariant()
    def matches_model(self) -> None:
        shard = self.s.shard
        live = {k for k, v in self.model.items() if v and v[-1][1] is not None}
        page = shard.list_objects("bkt")
        assert [e.key for e in page.entries] == sorted(live, key=str.encode)
        stats = shard.stats("bkt")
        assert stats.objects == len(live)
        assert stats.versions == sum(len(v) for v in self.model.values())
        assert stats.bytes == sum(len(d or b"") for v in self.model.values() for _, d in v)
        for key, versions in self.model.items():
            got = [
                (v.version_id, v.manifest.inline if v.manifest else None)
                for v in shard.versions("bkt", key)
            ]
            assert got == versions[::-1]

    @invariant()
    def snapshot_round_trips(self) -> None:
        copy = IndexShard()
        copy.restore(self.s.shard.snapshot())
        assert copy.snapshot() == self.s.shard.snapshot()


IndexModel.TestCase.settings = settings(max_examples=100, stateful_step_count=30)
TestIndexModel = IndexModel.TestCase
