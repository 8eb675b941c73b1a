"""The bucket table: S3 naming rules, ownership errors, two-phase delete, versioning,
policies, determinism and snapshots, and a rule-based run against a dict model."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from cairn.meta.buckets import (
    AccessDenied,
    BeginDelete,
    Bucket,
    BucketAlreadyExists,
    BucketAlreadyOwnedByYou,
    BucketCommand,
    BucketError,
    BucketNotEmpty,
    BucketState,
    BucketTable,
    CancelDelete,
    CreateBucket,
    DeleteBucket,
    InvalidBucketName,
    InvalidBucketState,
    InvalidStoragePolicy,
    NoSuchBucket,
    SetPolicy,
    SetVersioning,
    StoragePolicy,
    VersioningState,
    encode_command,
    validate_bucket_name,
)
from cairn.meta.machine import CommandFormatError, SnapshotFormatError

VALID_NAMES = [
    "abc",
    "a" * 63,
    "my-bucket",
    "my.bucket.name",
    "1bucket",
    "bucket1",
    "a-b.c-d",
    "192.168.5",  # three parts: not an IP address
    "999.999.999.999",  # not a valid IPv4 address
    "xn-foo",
    "foo-s3alia",
]

INVALID_NAMES = [
    "",
    "ab",
    "a" * 64,
    "MyBucket",
    "my_bucket",
    "-bucket",
    "bucket-",
    ".bucket",
    "bucket.",
    "my..bucket",
    "192.168.5.4",
    "10.0.0.1",
    "xn--bucket",
    "bucket-s3alias",
    "bucket--ol-s3",
    "sthree-bucket",
    "bucket.mrap",
    "bucket--x-s3",
    "b\u00e9cket",
    "bucket name",
    "bucket\x00",
]


@pytest.mark.parametrize("name", VALID_NAMES)
def test_valid_bucket_names(name: str) -> None:
    validate_bucket_name(name)


@pytest.mark.parametrize("name", INVALID_NAMES)
def test_invalid_bucket_names(name: str) -> None:
    with pytest.raises(InvalidBucketName):
        validate_bucket_name(name)
    table = BucketTable()
    result = table.apply(1, encode_command(CreateBucket(name, "alice", 1.0)))
    assert isinstance(result, InvalidBucketName) and result.code == "InvalidBucketName"
    assert len(table) == 0


class Table:
    def __init__(self) -> None:
        self.table = BucketTable()
        self.index = 0

    def run(self, command: BucketCommand) -> object:
        self.index += 1
        return self.table.apply(self.index, encode_command(command))


def test_create_and_ownership_errors() -> None:
    t = Table()
    created = t.run(CreateBucket("photos", "alice", 100.0))
    assert created == Bucket("photos", "alice", 100.0)
    assert isinstance(t.run(CreateBucket("photos", "alice", 101.0)), BucketAlreadyOwnedByYou)
    assert isinstance(t.run(CreateBucket("photos", "bob", 101.0)), BucketAlreadyExists)
    assert isinstance(t.run(SetVersioning("photos", "bob", VersioningState.ENABLED)), AccessDenied)
    assert isinstance(t.run(BeginDelete("nope", "alice")), NoSuchBucket)
    with pytest.raises(NoSuchBucket):
        t.table.get("nope")
    assert t.table.get("photos").created_s == 100.0
    t.run(CreateBucket("docs", "bob", 5.0))
    assert [b.name for b in t.table.buckets()] == ["docs", "photos"]
    assert [b.name for b in t.table.buckets("alice")] == ["photos"]
    assert isinstance(t.run(CreateBucket("x-y-z", "", 5.0)), BucketError)


def test_delete_is_two_phase() -> None:
    t = Table()
    t.run(CreateBucket("photos", "alice", 1.0))
    assert isinstance(t.run(DeleteBucket("photos", "alice", 0)), InvalidBucketState)
    begun = t.run(BeginDelete("photos", "alice"))
    assert isinstance(begun, Bucket) and begun.state == BucketState.DELETING
    assert not begun.writable
    assert isinstance(t.run(DeleteBucket("photos", "bob", 0)), AccessDenied)
    assert isinstance(t.run(DeleteBucket("photos", "alice", 3)), BucketNotEmpty)
    assert "photos" in t.table, "a refused delete changes nothing"
    cancelled = t.run(CancelDelete("photos"))
    assert isinstance(cancelled, Bucket) and cancelled.writable
    t.run(BeginDelete("photos", "alice"))
    assert t.run(DeleteBucket("photos", "alice", 0)) is None
    assert "photos" not in t.table
    assert isinstance(t.run(CreateBucket("photos", "bob", 2.0)), Bucket), "the name is free again"


def test_versioning_transitions_follow_s3() -> None:
    t = Table()
    t.run(CreateBucket("b-1", "alice", 1.0))
    assert isinstance(t.run(SetVersioning("b-1", "alice", VersioningState.UNVERSIONED)), Bucket), (
        "unversioned to unversioned is a no-op"
    )
    t.run(SetVersioning("b-1", "alice", VersioningState.ENABLED))
    t.run(SetVersioning("b-1", "alice", VersioningState.SUSPENDED))
    assert t.table.get("b-1").versioning == VersioningState.SUSPENDED
    refused = t.run(SetVersioning("b-1", "alice", VersioningState.UNVERSIONED))
    assert isinstance(refused, InvalidBucketState)
    assert t.table.get("b-1").versioning == VersioningState.SUSPENDED


def test_policies_are_validated() -> None:
    t = Table()
    assert isinstance(t.run(CreateBucket("b-1", "a", 1.0, StoragePolicy(replicas=0))), BucketError)
    t.run(CreateBucket("b-1", "a", 1.0, StoragePolicy(2, False, True)))
    assert t.table.get("b-1").policy == StoragePolicy(2, False, True)
    bad = t.run(SetPolicy("b-1", "a", StoragePolicy(replicas=99)))
    assert isinstance(bad, InvalidStoragePolicy)
    t.run(SetPolicy("b-1", "a", StoragePolicy(5, True, False)))
    assert t.table.get("b-1").policy.replicas == 5
    assert isinstance(t.run(CreateBucket("b-2", "a", float("inf"))), BucketError)


def test_bad_formats_are_typed() -> None:
    table = BucketTable()
    good = encode_command(CreateBucket("abc", "a", 1.0))
    assert isinstance(table.apply(1, b"\x09" + good[1:]), CommandFormatError)
    assert isinstance(table.apply(2, b"\x01\x93garbage"), CommandFormatError)
    assert table.applied_index == 2 and len(table) == 0
    with pytest.raises(SnapshotFormatError):
        table.restore(b"\x05" + table.snapshot()[1:])
    with pytest.raises(SnapshotFormatError):
        table.restore(b"")


def test_snapshot_round_trip_and_determinism() -> None:
    commands: list[BucketCommand] = [
        CreateBucket("zeta", "a", 1.0),
        CreateBucket("alpha", "b", 2.0, StoragePolicy(1, False, False)),
        SetVersioning("zeta", "a", VersioningState.ENABLED),
        BeginDelete("alpha", "b"),
        CreateBucket("Bad", "c", 3.0),
    ]
    replicas = [Table(), Table()]
    for t in replicas:
        for command in commands:
            t.run(command)
    assert replicas[0].table.snapshot() == replicas[1].table.snapshot()
    copy = BucketTable()
    copy.restore(replicas[0].table.snapshot())
    assert copy.applied_index == len(commands)
    assert copy.buckets() == replicas[0].table.buckets()
    copy.mark_applied(len(commands) + 1)
    assert copy.applied_index == len(commands) + 1


names = st.sampled_from(["abc", "photos", "a.b.c", "xn--bad", "UP"])
owners = st.sampled_from(["alice", "bob"])


class BucketModel(RuleBasedStateMachine):
    """Model: name -> (owner, versioning, deleting)."""

    def __init__(self) -> None:
        super().__init__()
        self.t = Table()
        self.model: dict[str, tuple[str, VersioningState, bool]] = {}

    @rule(name=names, owner=owners)
    def create(self, name: str, owner: str) -> None:
        result = self.t.run(CreateBucket(name, owner, 1.0))
        if name in ("xn--bad", "UP"):
            assert isinstance(result, InvalidBucketName)
        elif name in self.model:
            expected = (
                BucketAlreadyOwnedByYou if self.model[name][0] == owner else BucketAlreadyExists
            )
            assert isinstance(result, expected)
        else:
            assert isinstance(result, Bucket)
            self.model[name] = (owner, VersioningState.UNVERSIONED, False)

    @rule(name=names, owner=owners, versioning=st.sampled_from(list(VersioningState)))
    def set_versioning(self, name: str, owner: str, versioning: VersioningState) -> None:
        result = self.t.run(SetVersioning(name, owner, versioning))
        if name not in self.model:
            assert isinstance(result, NoSuchBucket)
            return
        current_owner, current, deleting = self.model[name]
        if owner != current_owner:
            assert isinstance(result, AccessDenied)
        elif versioning == VersioningState.UNVERSIONED and current != versioning:
            assert isinstance(result, InvalidBucketState)
        else:
            self.model[name] = (owner, versioning, deleting)

    @rule(name=names, owner=owners, count=st.integers(0, 2))
    def delete(self, name: str, owner: str, count: int) -> None:
        begun = self.t.run(BeginDelete(name, owner))
        if name not in self.model:
            assert isinstance(begun, NoSuchBucket)
            return
        current_owner, versioning, _ = self.model[name]
        if owner != current_owner:
            assert isinstance(begun, AccessDenied)
            return
        self.model[name] = (owner, versioning, True)
        result = self.t.run(DeleteBucket(name, owner, count))
        if count:
            assert isinstance(result, BucketNotEmpty)
        else:
            assert result is None
            del self.model[name]

    @rule(name=names)
    def cancel(self, name: str) -> None:
        result = self.t.run(CancelDelete(name))
        if name in self.model:
            owner, versioning, _ = self.model[name]
            self.model[name] = (owner, versioning, False)
        else:
            assert isinstance(result, NoSuchBucket)

    @invariant()
    def matches_model(self) -> None:
        got = {
            b.name: (b.owner, b.versioning, b.state == BucketState.DELETING)
            for b in self.t.table.buckets()
        }
        assert got == self.model
        copy = BucketTable()
        copy.restore(self.t.table.snapshot())
        assert copy.snapshot() == self.t.table.snapshot()


BucketModel.TestCase.settings = settings(max_examples=50, stateful_step_count=25)
TestBucketModel = BucketModel.TestCase
