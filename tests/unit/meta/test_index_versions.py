"""ListObjectVersions over one index shard (`IndexShard.list_versions`): order (key order,
newest first per key, delete markers interleaved), S3's key and version-id markers,
delimiters, truncation and resuming through the next markers against a brute-force
model, `null` versions under suspended versioning, and the all-keys list through
snapshots, splits and deletes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.meta.buckets import VersioningState
from cairn.meta.index import (
    LIST_KEYS_MAX,
    NULL_VERSION,
    OBJECT_KEY_BYTES_MAX,
    DeleteObject,
    DeleteResult,
    IndexCommand,
    IndexShard,
    InvalidListArgument,
    PutObject,
    PutResult,
    ShrinkRange,
    VersionsPage,
    encode_command,
    encode_key,
)
from cairn.meta.manifest import Manifest, etag_of_bytes

ON = VersioningState.ENABLED
OFF = VersioningState.UNVERSIONED
SUSPENDED = VersioningState.SUSPENDED
BUCKET = "bkt"

Item = tuple[str, str, str | None, bool]
"""("v", key, version id, is latest), ("m", ...) for a delete marker, ("p", prefix, None,
False) for a common prefix."""


def inline(data: bytes, created_s: float = 1.0) -> Manifest:
    return Manifest(len(data), etag_of_bytes(data), created_s, inline=data)


class Shard:
    """An index shard with a log index counter, applying encoded commands."""

    def __init__(self, shard: IndexShard | None = None) -> None:
        self.shard = shard if shard is not None else IndexShard()
        self.index = self.shard.applied_index

    def run(self, command: IndexCommand) -> object:
        self.index += 1
        return self.shard.apply(self.index, encode_command(command))

    def put(
        self, key: str, data: bytes = b"x", versioning: VersioningState = ON, bucket: str = BUCKET
    ) -> str:
        result = self.run(PutObject(bucket, key, inline(data, float(self.index)), versioning))
        assert isinstance(result, PutResult), result
        return result.version_id

    def delete(
        self, key: str, versioning: VersioningState = ON, version_id: str | None = None
    ) -> DeleteResult:
        result = self.run(DeleteObject(BUCKET, key, 2.0, versioning, version_id))
        assert isinstance(result, DeleteResult), result
        return result

    def page(self, **kwargs: object) -> VersionsPage:
        return self.shard.list_versions(BUCKET, **kwargs)  # type: ignore[arg-type]


def items_of(page: VersionsPage) -> list[Item]:
    """The page's items in the order S3 returns them (key order; a key's versions keep
    their newest-first order, the sort being stable)."""
    items: list[Item] = [
        ("m" if e.is_delete_marker else "v", e.key, e.version_id, e.is_latest) for e in page.entries
    ]
    items += [("p", p, None, False) for p in page.common_prefixes]
    return sorted(items, key=lambda item: item[1].encode())


def ids(page: VersionsPage) -> list[tuple[str, str]]:
    return [(e.key, e.version_id) for e in page.entries]


# Order, latest flags, delete markers ----------------------------------------------------------


def test_versions_newest_first_with_delete_markers_interleaved() -> None:
    s = Shard()
    v1, v2, v3 = s.put("k", b"1"), s.put("k", b"22"), s.put("k", b"333")
    marker = s.delete("k").version_id
    assert marker is not None
    other = s.put("j")
    page = s.page()
    assert ids(page) == [("j", other), ("k", marker), ("k", v3), ("k", v2), ("k", v1)]
    assert [e.is_latest for e in page.entries] == [True, True, False, False, False]
    assert [e.is_delete_marker for e in page.entries] == [False, True, False, False, False]
    assert [e.size for e in page.entries] == [1, 0, 3, 2, 1]
    assert page.entries[1].etag == "" and page.entries[2].etag == etag_of_bytes(b"333")
    assert not page.is_truncated and page.next_key_marker is None
    assert page.next_version_id_marker is None


def test_a_key_whose_only_version_is_a_marker_is_listed() -> None:
    s = Shard()
    v1 = s.put("k")
    assert s.delete("k", ON, v1).deleted  # no versions left: the key is gone
    assert s.page().entries == []
    marker = s.delete("gone").version_id  # a marker on a key that never had an object
    assert ids(s.page()) == [("gone", marker)]
    assert s.shard.list_objects(BUCKET).entries == []  # not a live key


def test_deleting_a_version_removes_exactly_that_one() -> None:
    s = Shard()
    v1, v2, v3 = s.put("k"), s.put("k"), s.put("k")
    assert s.delete("k", ON, v2).deleted
    assert ids(s.page()) == [("k", v3), ("k", v1)]
    assert s.delete("k", ON, v3).deleted
    page = s.page()
    assert ids(page) == [("k", v1)] and page.entries[0].is_latest


def test_null_versions_under_unversioned_and_suspended() -> None:
    s = Shard()
    s.put("k", b"old", OFF)
    assert ids(s.page()) == [("k", NULL_VERSION)]
    v1 = s.put("k", b"v1", ON)
    assert ids(s.page()) == [("k", v1), ("k", NULL_VERSION)]
    s.put("k", b"s", SUSPENDED)  # replaces the null version, now the newest
    page = s.page()
    assert ids(page) == [("k", NULL_VERSION), ("k", v1)]
    assert page.entries[0].is_latest and page.entries[0].size == 1
    s.delete("k", SUSPENDED)  # a null marker replaces the null object
    page = s.page()
    assert ids(page) == [("k", NULL_VERSION), ("k", v1)]
    assert page.entries[0].is_delete_marker and page.entries[0].is_latest
    resumed = s.page(key_marker="k", version_id_marker=NULL_VERSION)
    assert ids(resumed) == [("k", v1)]


def test_other_buckets_are_not_listed() -> None:
    s = Shard()
    s.put("k", bucket="bkt-before")
    s.put("k", bucket="bkt0")
    s.put("k", bucket="bks")
    mine = s.put("k")
    assert ids(s.page()) == [("k", mine)]


# Markers --------------------------------------------------------------------------------------


def test_key_marker_skips_every_version_of_that_key() -> None:
    s = Shard()
    a = [s.put("a") for _ in range(2)]
    b = [s.put("b") for _ in range(3)]
    c = s.put("c")
    assert ids(s.page(key_marker="a")) == [("b", b[2]), ("b", b[1]), ("b", b[0]), ("c", c)]
    assert ids(s.page(key_marker="b")) == [("c", c)]
    assert ids(s.page(key_marker="aa")) == ids(s.page(key_marker="a"))  # not a key: after it
    assert ids(s.page(key_marker="c")) == []
    assert ids(s.page(key_marker="0"))[:2] == [("a", a[1]), ("a", a[0])]


def test_version_id_marker_resumes_after_that_version() -> None:
    s = Shard()
    a = s.put("a")
    b = [s.put("b") for _ in range(3)]
    c = s.put("c")
    page = s.page(key_marker="b", version_id_marker=b[2])
    assert ids(page) == [("b", b[1]), ("b", b[0]), ("c", c)]
    assert ids(s.page(key_marker="b", version_id_marker=b[0])) == [("c", c)]
    assert ids(s.page(key_marker="a", version_id_marker=a))[0] == ("b", b[2])
    # a marker key that has no versions (any more): resume after it
    assert ids(s.page(key_marker="bb", version_id_marker=b[1])) == [("c", c)]


def test_bad_markers_are_refused() -> None:
    s = Shard()
    s.put("a")
    with pytest.raises(InvalidListArgument, match="without a key-marker"):
        s.page(version_id_marker="v")
    with pytest.raises(InvalidListArgument, match="is not a version"):
        s.page(key_marker="a", version_id_marker="no-such-version")
    with pytest.raises(InvalidListArgument):
        s.page(key_marker="a" * (OBJECT_KEY_BYTES_MAX + 1))
    with pytest.raises(InvalidListArgument):
        s.page(max_keys=-1)


# Delimiters and prefixes ---------------------------------------------------------------------


def test_delimiter_rolls_up_keys_and_a_prefix_counts_once() -> None:
    s = Shard()
    top = s.put("top")
    for key in ("dir/a", "dir/a", "dir/b", "dir/sub/c", "other/x"):
        s.put(key)
    page = s.page(delimiter="/")
    assert items_of(page) == [
        ("p", "dir/", None, False),
        ("p", "other/", None, False),
        ("v", "top", top, True),
    ]
    first = s.page(delimiter="/", max_keys=1)
    assert first.common_prefixes == ["dir/"] and first.is_truncated
    assert (first.next_key_marker, first.next_version_id_marker) == ("dir/", None)
    # a key marker inside a common prefix resumes after the whole prefix
    second = s.page(delimiter="/", key_marker="dir/", max_keys=1)
    assert second.common_prefixes == ["other/"]
    assert s.page(delimiter="/", key_marker="dir/b").common_prefixes == ["other/"]
    inner = s.page(prefix="dir/", delimiter="/")
    assert [e.key for e in inner.entries] == ["dir/a", "dir/a", "dir/b"]
    assert inner.common_prefixes == ["dir/sub/"]


def test_prefix_bounds_the_walk() -> None:
    s = Shard()
    for key in ("a", "ab", "abc", "b"):
        s.put(key)
    assert [e.key for e in s.page(prefix="ab").entries] == ["ab", "abc"]
    assert [e.key for e in s.page(prefix="ab", key_marker="ab").entries] == ["abc"]
    assert [e.key for e in s.page(prefix="ab", key_marker="a").entries] == ["ab", "abc"]
    assert s.page(prefix="ab", key_marker="b").entries == []


# Truncation -----------------------------------------------------------------------------------


def test_truncation_counts_each_version_and_names_the_next_markers() -> None:
    s = Shard()
    v = [s.put("k") for _ in range(3)]
    w = s.put("z")
    first = s.page(max_keys=2)
    assert ids(first) == [("k", v[2]), ("k", v[1])] and first.is_truncated
    assert (first.next_key_marker, first.next_version_id_marker) == ("k", v[1])
    second = s.page(key_marker="k", version_id_marker=v[1], max_keys=2)
    assert ids(second) == [("k", v[0]), ("z", w)] and not second.is_truncated
    exact = s.page(max_keys=4)  # fills exactly with nothing after it: not truncated
    assert exact.key_count == 4 and not exact.is_truncated


def test_zero_and_huge_max_keys() -> None:
    s = Shard()
    s.put("a")
    s.put("b")
    empty = s.page(max_keys=0)
    assert empty.key_count == 0 and empty.is_truncated
    assert (empty.next_key_marker, empty.next_version_id_marker) == ("", None)
    assert s.page(max_keys=10**9).key_count == 2
    for n in range(LIST_KEYS_MAX + 5):
        s.put(f"many/{n:05d}")
    big = s.page(max_keys=10**9)
    assert big.key_count == LIST_KEYS_MAX and big.is_truncated


# Against a brute-force model ------------------------------------------------------------------

KEY_ALPHABET = ["a", "b", "/", "é", "\U0001f600", "ab/"]
keys = st.lists(st.sampled_from(KEY_ALPHABET), min_size=1, max_size=4).map("".join)
delimiters = st.sampled_from(["", "/", "a", "b/"])
operations = st.lists(
    st.tuples(
        st.sampled_from(["put", "put", "put", "delete", "delete_version"]),
        keys,
        st.sampled_from(list(VersioningState)),
        st.integers(0, 10),
    ),
    max_size=40,
)


def apply_ops(ops: list[tuple[str, str, VersioningState, int]]) -> Shard:
    s = Shard()
    for op, key, versioning, pick in ops:
        if op == "put":
            s.put(key, b"d" * pick, versioning)
        elif op == "delete":
            s.delete(key, versioning)
        else:
            versions = s.shard.versions(BUCKET, key)
            if versions:
                s.delete(key, ON, versions[pick % len(versions)].version_id)
    return s


def model_items(shard: IndexShard, prefix: str, delimiter: str) -> list[Item]:
    """Every item of a full listing, from `IndexShard.versions` of every key."""
    items: list[Item] = []
    for key in sorted(_every_key(shard), key=str.encode):
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix) :]
        if delimiter and delimiter in rest:
            common = prefix + rest[: rest.index(delimiter) + len(delimiter)]
            if items[-1:] != [("p", common, None, False)]:
                items.append(("p", common, None, False))
            continue
        for n, version in enumerate(shard.versions(BUCKET, key)):  # newest first
            kind = "m" if version.is_delete_marker else "v"
            items.append((kind, key, version.version_id, n == 0))
    return items


def _every_key(shard: IndexShard) -> list[str]:
    """Keys with any version, read from a snapshot (independent of the all-keys list)."""
    copy = IndexShard()
    copy.restore(shard.snapshot())
    base = BUCKET.encode() + b"\x00"
    return [k[len(base) :].decode() for k in copy._versions if k.startswith(base)]


def list_all(shard: IndexShard, prefix: str, delimiter: str, max_keys: int) -> list[Item]:
    """Page through with the next markers, as a client does."""
    out: list[Item] = []
    key_marker, version_id_marker = "", ""
    for _ in range(500):
        page = shard.list_versions(
            BUCKET, prefix, delimiter, key_marker, version_id_marker, max_keys
        )
        assert page.key_count <= max_keys
        out += items_of(page)
        if not page.is_truncated:
            assert page.next_key_marker is None and page.next_version_id_marker is None
            return out
        assert page.key_count == max_keys and page.next_key_marker is not None
        key_marker = page.next_key_marker
        version_id_marker = page.next_version_id_marker or ""
    raise AssertionError("the listing did not finish")


@settings(max_examples=300)
@given(operations, st.one_of(st.just(""), keys), delimiters, st.integers(1, 5))
def test_pages_resumed_by_their_markers_give_every_version_once(
    ops: list[tuple[str, str, VersioningState, int]], prefix: str, delimiter: str, max_keys: int
) -> None:
    s = apply_ops(ops)
    expected = model_items(s.shard, prefix, delimiter)
    assert list_all(s.shard, prefix, delimiter, max_keys) == expected
    whole = s.shard.list_versions(BUCKET, prefix, delimiter)
    assert items_of(whole) == expected and not whole.is_truncated
    versions = [(item[1], item[2]) for item in expected if item[0] != "p"]
    assert len(versions) == len(set(versions))
    if not (prefix or delimiter):
        assert len(versions) == s.shard.stats(BUCKET).versions


# The all-keys list through snapshots, splits and deletes -------------------------------------


def test_snapshot_round_trip_keeps_the_all_keys_list() -> None:
    s = Shard()
    for key in ("b", "a", "c", "only-marker"):
        s.put(key, b"1")
        s.put(key, b"2")
    s.delete("only-marker", ON, s.shard.versions(BUCKET, "only-marker")[0].version_id)
    s.delete("only-marker", ON, s.shard.versions(BUCKET, "only-marker")[0].version_id)
    s.delete("only-marker")  # now only a delete marker
    s.delete("c")
    copy = IndexShard()
    copy.restore(s.shard.snapshot())
    expected = [encode_key(BUCKET, k) for k in ("a", "b", "c", "only-marker")]
    assert copy._keys == s.shard._keys == expected
    assert copy.list_versions(BUCKET) == s.shard.list_versions(BUCKET)
    assert copy.snapshot() == s.shard.snapshot()
    # the restored copy keeps the list up to date as commands apply
    again = Shard(copy)
    again.put("0")
    for version in copy.versions(BUCKET, "b"):
        again.delete("b", ON, version.version_id)
    assert [e.key for e in copy.list_versions(BUCKET).entries][:1] == ["0"]
    assert encode_key(BUCKET, "b") not in copy._keys
    assert copy._keys == sorted(copy._keys) and len(copy._keys) == copy.key_count


def test_split_moves_keys_with_only_markers_too() -> None:
    s = Shard()
    for key in ("a", "m", "z"):
        s.put(key)
    s.delete("z")  # marker on top
    only = s.delete("zz").version_id  # marker only
    at = encode_key(BUCKET, "m")
    s.run(ShrinkRange(at, seed_group=2))
    assert [e.key for e in s.page().entries] == ["a"]
    assert s.shard._keys == [encode_key(BUCKET, "a")]
    seed = s.shard.seed(2)
    assert seed is not None
    upper = IndexShard()
    upper.restore(seed)
    listed = upper.list_versions(BUCKET)
    assert [e.key for e in listed.entries] == ["m", "z", "z", "zz"]
    assert (listed.entries[-1].version_id, listed.entries[-1].is_delete_marker) == (only, True)
    assert upper.split_point() == encode_key(BUCKET, "z")
