"""Client calls for S3 users and access keys, over a `MetaClient` (root group, `meta.users`).

Kept beside `meta_client` rather than in it: the calls only need `MetaClient.call`, and the
users part of the root group has its own small vocabulary (create/delete a user or a key,
look a key up, list). Secrets are sealed here, before they leave the caller, with a fresh
random nonce; the root group only ever sees sealed secrets (see `meta.users`).
"""

import secrets
import string
import time
from typing import TypeVar

import msgspec

from cairn.meta.directory import ROOT_GROUP_ID
from cairn.meta.root import encode_user_command
from cairn.meta.users import (
    SEAL_NONCE_BYTES,
    AccessKey,
    CreateKey,
    CreateUser,
    DeleteKey,
    DeleteUser,
    DeleteUserResult,
    User,
    UserCommand,
    seal_secret,
)
from cairn.node.meta_client import MetaClient
from cairn.node.meta_messages import (
    Consistency,
    MetaPropose,
    MetaResult,
    UserKeyGet,
    UserKeyReply,
    UserListQuery,
    UserListReply,
)

T = TypeVar("T")
ACCESS_KEY_CHARS = 20
SECRET_KEY_CHARS = 40
_ACCESS_KEY_ALPHABET = string.ascii_uppercase + string.digits
_SECRET_ALPHABET = string.ascii_letters + string.digits + "/+"


def new_access_key() -> str:
    """A fresh AWS-shaped access key id (20 upper-case letters and digits, `CK` first)."""
    return "CK" + "".join(secrets.choice(_ACCESS_KEY_ALPHABET) for _ in range(ACCESS_KEY_CHARS - 2))


def new_secret_key() -> str:
    """A fresh AWS-shaped secret key (40 characters)."""
    return "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(SECRET_KEY_CHARS))


class UserClient:
    def __init__(self, meta: MetaClient, cluster_secret: str) -> None:
        self.meta = meta
        self._cluster_secret = cluster_secret

    async def _propose(self, command: UserCommand, result_type: type[T]) -> T:
        data = encode_user_command(command)
        reply, _ = await self.meta.call(ROOT_GROUP_ID, MetaPropose(ROOT_GROUP_ID, data), MetaResult)
        return msgspec.msgpack.decode(reply.result, type=result_type)

    async def create_user(self, name: str, admin: bool = False) -> User:
        return await self._propose(CreateUser(name, time.time(), admin), User)

    async def delete_user(self, name: str) -> DeleteUserResult:
        return await self._propose(DeleteUser(name), DeleteUserResult)

    async def create_key(
        self, user: str, access_key: str | None = None, secret_key: str | None = None
    ) -> tuple[AccessKey, str]:
        """Add a key to `user` (fresh id and secret unless given); the record and the
        plaintext secret, which is shown once and never readable again but through the
        cluster secret."""
        access_key = access_key or new_access_key()
        secret_key = secret_key or new_secret_key()
        sealed = seal_secret(
            self._cluster_secret, access_key, secret_key, secrets.token_bytes(SEAL_NONCE_BYTES)
        )
        key = await self._propose(CreateKey(access_key, user, time.time(), sealed), AccessKey)
        return key, secret_key

    async def delete_key(self, access_key: str) -> AccessKey:
        return await self._propose(DeleteKey(access_key), AccessKey)

    async def lookup(self, access_key: str, consistency: Consistency | None = None) -> UserKeyReply:
        """The key and its user; `RemoteError("InvalidAccessKeyId")` if there is none."""
        level = consistency or self.meta.consistency
        reply, _ = await self.meta.call(
            ROOT_GROUP_ID, UserKeyGet(access_key, level), UserKeyReply, leader=level != "stale"
        )
        return reply

    async def list(self, consistency: Consistency | None = None) -> UserListReply:
        level = consistency or self.meta.consistency
        reply, _ = await self.meta.call(
            ROOT_GROUP_ID, UserListQuery(level), UserListReply, leader=level != "stale"
        )
        return reply
