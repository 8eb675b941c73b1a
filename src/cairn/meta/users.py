"""S3 users and their access keys, as the root group replicates them.

Theory of operation. The table holds users (a name, a creation time, an `admin` flag) and
access keys (an id such as `AKIA...`, the user it belongs to, a creation time and the
*sealed* secret). It changes only through the commands below, each validated in full
before anything changes, so a rejected command is a no-op on every replica and its typed
error is the result. Nothing here reads a clock or draws a random number: the proposer
stamps `created_s` and picks the nonce that seals a secret.

Why the secret is sealed rather than hashed (DESIGN §10 says "hashed/encrypted"): SigV4
is an HMAC keyed by the secret itself, so a gateway verifying a signature needs the
plaintext secret; a hash would be useless to it. The secret is therefore encrypted with
AES-256-GCM under a key derived (HKDF-SHA256, its own salt and label) from the cluster
secret, with the access key id as associated data, so a sealed secret cannot be moved to
another key id. Raft logs, snapshots and backups of the root group hold only sealed
secrets; whoever holds the cluster secret (every node, `cluster.json`) can open them,
which is the trust boundary the rest of the cluster already has. `seal_secret` and
`open_secret` are pure functions; the gateway opens a secret when it first sees its key
and caches it for a short time.

Rules. User names are lower-case, `[a-z0-9][a-z0-9._-]{0,62}`; `cairn` is reserved (it
owns the buckets made through the native API). Access key ids are 3..128 letters and
digits; secrets are 8..128 printable ASCII characters. A user has at most
`KEYS_PER_USER_MAX` keys. Deleting a user deletes its keys; the buckets it owns stay
owned by its name (a user created again under that name owns them again). Creating a
user or key that exists with identical fields succeeds (a retried proposal), with other
fields it fails.

An `admin` user may act on every bucket, whoever owns it; the others only on their own
(the S3 API enforces this, see `cairn.gateway.s3.access`). The cluster's bootstrap
credentials (`cairn up`) are an admin user.
"""

from __future__ import annotations

import math
import re

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from cairn.meta.machine import (
    COMMAND_FORMAT_V1,
    SNAPSHOT_FORMAT_V1,
    MetaError,
    ReplicatedMachine,
    SnapshotFormatError,
    VersionedCodec,
)

USER_COUNT_MAX = 10_000
KEYS_PER_USER_MAX = 16
SECRET_CHARS_MIN = 8
SECRET_CHARS_MAX = 128
SEAL_NONCE_BYTES = 12
SEALED_FORMAT_V1 = 1
SEALED_BYTES_MAX = 1 + SEAL_NONCE_BYTES + SECRET_CHARS_MAX + 16
RESERVED_USER_NAMES = frozenset({"cairn"})
ADMIN_USER = "admin"
"""The name under which the bootstrap credentials of a cluster are created."""

_USER_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
_ACCESS_KEY = re.compile(r"[A-Za-z0-9]{3,128}")
_SECRET = re.compile(rf"[\x21-\x7e]{{{SECRET_CHARS_MIN},{SECRET_CHARS_MAX}}}")
_SEAL_SALT = b"cairn/users/v1"
_SEAL_INFO = b"cairn/users/v1/secret-key"


class UserError(MetaError):
    """A user or key command was rejected."""

    code = "InvalidArgument"


class InvalidUserName(UserError):
    code = "InvalidUserName"


class NoSuchUser(UserError):
    code = "NoSuchUser"


class UserAlreadyExists(UserError):
    code = "UserAlreadyExists"


class InvalidAccessKeyId(UserError):
    """No such access key (the S3 error code for an unknown key id)."""

    code = "InvalidAccessKeyId"


class AccessKeyAlreadyExists(UserError):
    code = "AccessKeyAlreadyExists"


class TooManyAccessKeys(UserError):
    code = "TooManyAccessKeys"


class TooManyUsers(UserError):
    code = "TooManyUsers"


class SealedSecretError(UserError):
    """A sealed secret does not open under this cluster secret (wrong secret or damaged)."""

    code = "InternalError"


class User(msgspec.Struct, frozen=True):
    name: str
    created_s: float
    admin: bool = False


class AccessKey(msgspec.Struct, frozen=True):
    access_key: str
    user: str
    created_s: float
    sealed_secret: bytes


# Commands ---------------------------------------------------------------------------------


class CreateUser(msgspec.Struct, tag="create_user", frozen=True):
    name: str
    created_s: float
    admin: bool = False


class DeleteUser(msgspec.Struct, tag="delete_user", frozen=True):
    name: str


class CreateKey(msgspec.Struct, tag="create_key", frozen=True):
    access_key: str
    user: str
    created_s: float
    sealed_secret: bytes


class DeleteKey(msgspec.Struct, tag="delete_key", frozen=True):
    access_key: str


UserCommand = CreateUser | DeleteUser | CreateKey | DeleteKey


class DeleteUserResult(msgspec.Struct, frozen=True):
    name: str
    keys_deleted: int


class _SnapshotV1(msgspec.Struct, frozen=True):
    applied_index: int
    users: list[User]
    keys: list[AccessKey]


_commands: VersionedCodec[UserCommand] = VersionedCodec(UserCommand, COMMAND_FORMAT_V1)
_snapshots: VersionedCodec[_SnapshotV1] = VersionedCodec(
    _SnapshotV1, SNAPSHOT_FORMAT_V1, SnapshotFormatError
)


def encode_command(command: UserCommand) -> bytes:
    return _commands.encode(command)


def decode_command(data: bytes) -> UserCommand:
    return _commands.decode(data)


def validate_user_name(name: str) -> None:
    if not _USER_NAME.fullmatch(name):
        raise InvalidUserName(
            f"user names are 1..63 of a-z, 0-9, '.', '_', '-', starting with a letter or "
            f"digit: {name!r}"
        )
    if name in RESERVED_USER_NAMES:
        raise InvalidUserName(f"user name {name!r} is reserved")


def validate_access_key(access_key: str) -> None:
    if not _ACCESS_KEY.fullmatch(access_key):
        raise UserError(f"access key ids are 3..128 letters and digits: {access_key!r}")


def validate_secret(secret: str) -> None:
    if not _SECRET.fullmatch(secret):
        raise UserError(
            f"secret keys are {SECRET_CHARS_MIN}..{SECRET_CHARS_MAX} printable ASCII "
            "characters without spaces"
        )


# Sealing ----------------------------------------------------------------------------------


def _seal_key(cluster_secret: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=_SEAL_SALT, info=_SEAL_INFO).derive(
        cluster_secret.encode()
    )


def _aad(access_key: str) -> bytes:
    return _SEAL_SALT + b"/" + access_key.encode()


def seal_secret(cluster_secret: str, access_key: str, secret: str, nonce: bytes) -> bytes:
    """The secret key encrypted for the root group (see the module doc). `nonce` must be
    `SEAL_NONCE_BYTES` fresh random bytes (the caller draws them: this module is pure)."""
    validate_access_key(access_key)
    validate_secret(secret)
    assert len(nonce) == SEAL_NONCE_BYTES
    sealed = AESGCM(_seal_key(cluster_secret)).encrypt(nonce, secret.encode(), _aad(access_key))
    return bytes([SEALED_FORMAT_V1]) + nonce + sealed


def open_secret(cluster_secret: str, access_key: str, sealed: bytes) -> str:
    """The plaintext secret of `sealed`; raises `SealedSecretError` if it does not open."""
    if len(sealed) < 1 + SEAL_NONCE_BYTES + 16 or sealed[0] != SEALED_FORMAT_V1:
        raise SealedSecretError(f"sealed secret of {access_key!r} is malformed")
    nonce, box = sealed[1 : 1 + SEAL_NONCE_BYTES], sealed[1 + SEAL_NONCE_BYTES :]
    try:
        plain = AESGCM(_seal_key(cluster_secret)).decrypt(nonce, box, _aad(access_key))
    except InvalidTag:
        raise SealedSecretError(
            f"sealed secret of {access_key!r} does not open with this cluster secret"
        ) from None
    return plain.decode()


# The machine ------------------------------------------------------------------------------


class UserTable(ReplicatedMachine[UserCommand]):
    """The replicated users and access keys (see the module docstring)."""

    commands = _commands

    def __init__(self) -> None:
        super().__init__()
        self._users: dict[str, User] = {}
        self._keys: dict[str, AccessKey] = {}

    # Queries ------------------------------------------------------------------------------

    def user(self, name: str) -> User:
        user = self._users.get(name)
        if user is None:
            raise NoSuchUser(f"no user {name!r}")
        return user

    def key(self, access_key: str) -> AccessKey:
        key = self._keys.get(access_key)
        if key is None:
            raise InvalidAccessKeyId("the access key id does not exist")
        return key

    def users(self) -> list[User]:
        return [u for _, u in sorted(self._users.items())]

    def keys(self, user: str | None = None) -> list[AccessKey]:
        """Access keys sorted by id, all or one user's."""
        return [k for _, k in sorted(self._keys.items()) if user is None or k.user == user]

    # Commands -----------------------------------------------------------------------------

    def execute(self, command: UserCommand) -> User | AccessKey | DeleteUserResult:
        if isinstance(command, CreateUser):
            return self._create_user(command)
        if isinstance(command, DeleteUser):
            return self._delete_user(command)
        if isinstance(command, CreateKey):
            return self._create_key(command)
        return self._delete_key(command)

    def _create_user(self, command: CreateUser) -> User:
        validate_user_name(command.name)
        if not math.isfinite(command.created_s):
            raise UserError("creation time must be finite")
        user = User(command.name, command.created_s, command.admin)
        existing = self._users.get(command.name)
        if existing is not None:
            if existing == user:
                return existing  # a retried proposal
            raise UserAlreadyExists(f"user {command.name!r} exists")
        if len(self._users) >= USER_COUNT_MAX:
            raise TooManyUsers(f"the cluster already has {USER_COUNT_MAX} users")
        self._users[user.name] = user
        return user

    def _delete_user(self, command: DeleteUser) -> DeleteUserResult:
        self.user(command.name)
        doomed = [k.access_key for k in self._keys.values() if k.user == command.name]
        for access_key in doomed:
            del self._keys[access_key]
        del self._users[command.name]
        return DeleteUserResult(command.name, len(doomed))

    def _create_key(self, command: CreateKey) -> AccessKey:
        validate_access_key(command.access_key)
        self.user(command.user)
        if not math.isfinite(command.created_s):
            raise UserError("creation time must be finite")
        if not 0 < len(command.sealed_secret) <= SEALED_BYTES_MAX:
            raise UserError("sealed secret has an impossible length")
        key = AccessKey(command.access_key, command.user, command.created_s, command.sealed_secret)
        existing = self._keys.get(command.access_key)
        if existing is not None:
            if existing == key:
                return existing  # a retried proposal
            raise AccessKeyAlreadyExists(f"access key {command.access_key!r} exists")
        if sum(1 for k in self._keys.values() if k.user == command.user) >= KEYS_PER_USER_MAX:
            raise TooManyAccessKeys(f"user {command.user!r} has {KEYS_PER_USER_MAX} keys")
        self._keys[key.access_key] = key
        return key

    def _delete_key(self, command: DeleteKey) -> AccessKey:
        key = self.key(command.access_key)
        del self._keys[command.access_key]
        return key

    # Snapshots ----------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        return _snapshots.encode(_SnapshotV1(self.applied_index, self.users(), self.keys()))

    def restore(self, data: bytes) -> None:
        snap = _snapshots.decode(data)
        self._users = {u.name: u for u in snap.users}
        self._keys = {k.access_key: k for k in snap.keys}
        self.applied_index = snap.applied_index
