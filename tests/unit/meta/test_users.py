"""The users/access-keys machine: validation before change, idempotent retries, keys
deleted with their user, snapshots (including a root snapshot from before the users part
existed), and sealed secrets that only open with the right cluster secret and key id."""

import msgspec
import pytest

from cairn.meta.machine import MetaError
from cairn.meta.root import Part, RootMachine, encode_user_command
from cairn.meta.users import (
    KEYS_PER_USER_MAX,
    AccessKey,
    CreateKey,
    CreateUser,
    DeleteKey,
    DeleteUser,
    DeleteUserResult,
    SealedSecretError,
    User,
    UserTable,
    encode_command,
    open_secret,
    seal_secret,
)

CLUSTER = "cluster-secret-for-tests"
NONCE = b"\x01" * 12


def apply(table: UserTable, command: object) -> object:
    return table.apply(table.applied_index + 1, encode_command(command))  # type: ignore[arg-type]


def sealed(access_key: str, secret: str = "s3cr3t-value") -> bytes:
    return seal_secret(CLUSTER, access_key, secret, NONCE)


def test_users_and_keys_lifecycle() -> None:
    table = UserTable()
    assert apply(table, CreateUser("alice", 1.0)) == User("alice", 1.0)
    assert apply(table, CreateUser("alice", 1.0)) == User("alice", 1.0)  # retried proposal
    assert isinstance(apply(table, CreateUser("alice", 2.0)), MetaError)
    key = apply(table, CreateKey("CKALICE1", "alice", 1.0, sealed("CKALICE1")))
    assert isinstance(key, AccessKey) and table.key("CKALICE1").user == "alice"
    assert open_secret(CLUSTER, "CKALICE1", table.key("CKALICE1").sealed_secret) == "s3cr3t-value"
    apply(table, CreateKey("CKALICE2", "alice", 1.0, sealed("CKALICE2")))
    assert apply(table, DeleteKey("CKALICE2")).access_key == "CKALICE2"  # type: ignore[attr-defined]
    assert apply(table, DeleteUser("alice")) == DeleteUserResult("alice", 1)
    assert table.keys() == [] and table.users() == []


@pytest.mark.parametrize(
    ("command", "code"),
    [
        (CreateUser("Alice", 1.0), "InvalidUserName"),
        (CreateUser("cairn", 1.0), "InvalidUserName"),
        (CreateUser("a" * 64, 1.0), "InvalidUserName"),
        (CreateUser("bob", float("nan")), "InvalidArgument"),
        (CreateKey("CKX", "nobody", 1.0, b"x"), "NoSuchUser"),
        (CreateKey("bad key!", "bob", 1.0, b"x"), "InvalidArgument"),
        (CreateKey("CKBIG", "bob", 1.0, b"x" * 1000), "InvalidArgument"),
        (DeleteKey("CKNONE"), "InvalidAccessKeyId"),
        (DeleteUser("nobody"), "NoSuchUser"),
    ],
)
def test_rejected_commands_change_nothing(command: object, code: str) -> None:
    table = UserTable()
    apply(table, CreateUser("bob", 1.0))
    result = apply(table, command)
    assert isinstance(result, MetaError) and result.code == code
    assert table.users() == [User("bob", 1.0)] and table.keys() == []


def test_key_count_per_user_is_bounded() -> None:
    table = UserTable()
    apply(table, CreateUser("bob", 1.0))
    for i in range(KEYS_PER_USER_MAX):
        assert isinstance(apply(table, CreateKey(f"CKBOB{i}", "bob", 1.0, b"x")), AccessKey)
    result = apply(table, CreateKey("CKBOBMORE", "bob", 1.0, b"x"))
    assert isinstance(result, MetaError) and result.code == "TooManyAccessKeys"


def test_sealed_secrets_open_only_with_the_right_cluster_secret_and_key_id() -> None:
    box = sealed("CKONE")
    assert b"s3cr3t-value" not in box
    with pytest.raises(SealedSecretError):
        open_secret("another-cluster-secret", "CKONE", box)
    with pytest.raises(SealedSecretError):
        open_secret(CLUSTER, "CKTWO", box)  # moved to another key id
    with pytest.raises(SealedSecretError):
        open_secret(CLUSTER, "CKONE", box[:-1] + bytes([box[-1] ^ 1]))


def test_root_machine_routes_users_and_snapshots_them() -> None:
    root = RootMachine()
    root.apply(1, encode_user_command(CreateUser("carol", 1.0, admin=True)))
    root.apply(2, encode_user_command(CreateKey("CKCAROL", "carol", 1.0, sealed("CKCAROL"))))
    assert root.users.user("carol").admin and root.buckets.applied_index == 2
    copy = RootMachine()
    copy.restore(root.snapshot())
    assert copy.snapshot() == root.snapshot() and copy.users.key("CKCAROL").user == "carol"
    assert Part.USERS == 5


def test_a_root_snapshot_from_before_the_users_part_restores() -> None:
    root = RootMachine()
    root.apply(1, encode_user_command(CreateUser("dave", 1.0)))
    fields = msgspec.msgpack.decode(root.snapshot()[1:])
    del fields["users"]
    old = root.snapshot()[:1] + msgspec.msgpack.encode(fields)
    restored = RootMachine()
    restored.restore(old)
    assert restored.users.users() == [] and restored.users.applied_index == 1
    restored.apply(2, encode_user_command(CreateUser("erin", 2.0)))
    assert restored.users.user("erin").created_s == 2.0
