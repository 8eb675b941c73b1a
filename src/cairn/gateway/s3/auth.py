"""Who is asking: SigV4 and SigV2 verification against the root group's users, key cache.

Theory of operation. `Authenticator.authenticate` takes the request as a `RequestView`
(pure data), parses its claim (`sigv4`), checks the time and the signed headers, looks the
access key up in the root group (`meta.users`, through a `KeyLookup` port: the real one is
`node.user_client.UserClient`), opens the sealed secret with the cluster secret and
verifies the signature. It returns an `Identity` (user name, admin flag) and the
`SigningContext` a signed streaming body needs for its chunk signatures.

Signature version 2 (`sigv2`: boto3's default presigned S3 URLs, and `Authorization: AWS
key:sig`) goes through `_authenticate_v2`: the same key lookup, its own time rule and
signature. V2 does not sign the body, so its `Authenticated` carries a `SignedClaim` whose
only meaningful field for what follows is `payload_hash` (UNSIGNED-PAYLOAD, or the
x-amz-content-sha256 the request sent), and an empty `SigningContext`: no signed streaming
body can follow a V2 signature (`sigv2` refuses those modes).

Keys are cached for `KEY_CACHE_TTL_S`: a GET must not cost a root-group read and an AES
decryption for its key every time. A deleted key therefore keeps working on a gateway
for at most that long; an unknown key is not cached, so a key just created works at
once. The cache holds at most `KEY_CACHE_ENTRIES_MAX` keys (oldest out first). Requests
with neither an Authorization header nor a presigned query are refused (no anonymous or
public access in Cairn).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from cairn.base.errors import RemoteError
from cairn.gateway.s3 import sigv2, sigv4
from cairn.gateway.s3.errors import S3Error
from cairn.meta.users import SealedSecretError, open_secret
from cairn.node.meta_messages import UserKeyReply
from cairn.runtime.clock import Clock

KEY_CACHE_TTL_S = 5.0
KEY_CACHE_ENTRIES_MAX = 10_000
_NO_CHUNK_SIGNING = sigv4.SigningContext(b"", "", "", "")
"""A V2-signed request's: it has no SigV4 key to check chunk signatures with."""


class KeyLookup(Protocol):
    async def lookup(self, access_key: str) -> UserKeyReply: ...


@dataclass(frozen=True, slots=True)
class Identity:
    user: str
    admin: bool
    access_key: str

    def may_use(self, owner: str) -> bool:
        """Whether this user may act on a bucket owned by `owner`."""
        return self.admin or self.user == owner


@dataclass(frozen=True, slots=True)
class Authenticated:
    identity: Identity
    claim: sigv4.SignedClaim
    signing: sigv4.SigningContext


@dataclass(frozen=True, slots=True)
class _CachedKey:
    secret: str
    user: str
    admin: bool
    expires_at: float


class Authenticator:
    def __init__(
        self,
        keys: KeyLookup,
        cluster_secret: str,
        clock: Clock,
        *,
        cache_ttl_s: float = KEY_CACHE_TTL_S,
    ) -> None:
        self._keys = keys
        self._cluster_secret = cluster_secret
        self._clock = clock
        self._ttl_s = cache_ttl_s
        self._cache: dict[str, _CachedKey] = {}

    async def authenticate(self, view: sigv4.RequestView) -> Authenticated:
        authorization = view.header_values("authorization")
        if authorization:
            if sigv2.is_header_auth(authorization[0]):
                v2 = sigv2.parse_header_auth(authorization[0], view)
                return await self._authenticate_v2(view, v2)
            claim = sigv4.parse_header_auth(authorization[0], view)
        elif sigv4.is_presigned(view.query):
            claim = sigv4.parse_presigned(view.query)
        elif sigv2.is_presigned(view.query):
            return await self._authenticate_v2(view, sigv2.parse_presigned(view))
        else:
            raise S3Error("AccessDenied", "anonymous requests are not allowed; sign with SigV4")
        sigv4.check_time(claim, self._clock.wall())
        sigv4.check_signed_headers(claim, view)
        key = await self._key(claim.credential.access_key)
        signing = sigv4.verify(view, claim, key.secret)
        identity = Identity(key.user, key.admin, claim.credential.access_key)
        return Authenticated(identity, claim, signing)

    async def _authenticate_v2(
        self, view: sigv4.RequestView, claim: sigv2.V2Claim
    ) -> Authenticated:
        sigv2.check_time(claim, self._clock.wall())
        key = await self._key(claim.access_key)
        sigv2.verify(view, claim, key.secret)
        identity = Identity(key.user, key.admin, claim.access_key)
        as_v4 = sigv4.SignedClaim(
            sigv4.Credential(claim.access_key, "", "", sigv4.SERVICE),
            (),
            claim.signature,
            "",
            claim.request_time_s,
            claim.payload_hash,
            presigned=claim.presigned,
        )
        return Authenticated(identity, as_v4, _NO_CHUNK_SIGNING)

    async def _key(self, access_key: str) -> _CachedKey:
        now = self._clock.monotonic()
        cached = self._cache.get(access_key)
        if cached is not None and cached.expires_at > now:
            return cached
        try:
            reply = await self._keys.lookup(access_key)
        except RemoteError as exc:
            if exc.code in ("InvalidAccessKeyId", "NoSuchUser"):
                raise S3Error(
                    "InvalidAccessKeyId",
                    "the AWS access key id you provided does not exist in our records",
                ) from None
            raise
        try:
            secret = open_secret(self._cluster_secret, access_key, reply.key.sealed_secret)
        except SealedSecretError as exc:
            raise S3Error("InternalError", str(exc)) from None
        entry = _CachedKey(secret, reply.user.name, reply.user.admin, now + self._ttl_s)
        self._cache.pop(access_key, None)
        self._cache[access_key] = entry
        while len(self._cache) > KEY_CACHE_ENTRIES_MAX:
            del self._cache[next(iter(self._cache))]
        return entry
