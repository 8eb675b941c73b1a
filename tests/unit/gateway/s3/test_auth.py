"""The authenticator over an in-memory key table: a botocore-signed request verifies
with the sealed secret, keys are cached for their TTL only, unknown keys, anonymous
requests and expired SigV2 presigned URLs are refused with the S3 code."""

from urllib.parse import urlsplit

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from cairn.base.errors import RemoteError
from cairn.gateway.s3 import sigv4
from cairn.gateway.s3.auth import Authenticator
from cairn.gateway.s3.errors import S3Error
from cairn.meta.users import AccessKey, User, seal_secret
from cairn.node.meta_messages import UserKeyReply

CLUSTER = "auth-unit-cluster-secret"


class Keys:
    def __init__(self) -> None:
        self.table: dict[str, UserKeyReply] = {}
        self.lookups = 0

    def add(self, access_key: str, secret: str, user: str, admin: bool = False) -> None:
        sealed = seal_secret(CLUSTER, access_key, secret, b"\x00" * 12)
        self.table[access_key] = UserKeyReply(
            AccessKey(access_key, user, 1.0, sealed), User(user, 1.0, admin)
        )

    async def lookup(self, access_key: str) -> UserKeyReply:
        self.lookups += 1
        if access_key not in self.table:
            raise RemoteError("InvalidAccessKeyId", "no such key")
        return self.table[access_key]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        import time

        return time.time()


def signed_view(access_key: str, secret: str) -> sigv4.RequestView:
    request = AWSRequest("GET", "http://127.0.0.1:9000/bucket/key")
    S3SigV4Auth(Credentials(access_key, secret), "s3", "us-east-1").add_auth(request)
    prepared = request.prepare()
    headers = [(k, str(v)) for k, v in prepared.headers.items()] + [("Host", "127.0.0.1:9000")]
    return sigv4.RequestView("GET", urlsplit(prepared.url).path, [], headers)


async def test_verified_keys_are_cached_for_their_ttl() -> None:
    keys, clock = Keys(), Clock()
    keys.add("CKALICE", "alice-secret-1", "alice", admin=True)
    auth = Authenticator(keys, CLUSTER, clock, cache_ttl_s=5.0)
    first = await auth.authenticate(signed_view("CKALICE", "alice-secret-1"))
    assert first.identity.user == "alice" and first.identity.may_use("bob")
    await auth.authenticate(signed_view("CKALICE", "alice-secret-1"))
    assert keys.lookups == 1
    del keys.table["CKALICE"]
    clock.now = 6.0
    with pytest.raises(S3Error) as gone:
        await auth.authenticate(signed_view("CKALICE", "alice-secret-1"))
    assert gone.value.code == "InvalidAccessKeyId" and gone.value.status == 403


async def test_wrong_secret_anonymous_and_sigv2() -> None:
    keys = Keys()
    keys.add("CKBOB", "bob-secret-12", "bob")
    auth = Authenticator(keys, CLUSTER, Clock())
    with pytest.raises(S3Error) as wrong:
        await auth.authenticate(signed_view("CKBOB", "not-bobs-secret"))
    assert wrong.value.code == "SignatureDoesNotMatch"
    assert not (await auth.authenticate(signed_view("CKBOB", "bob-secret-12"))).identity.may_use(
        "x"
    )
    with pytest.raises(S3Error) as anonymous:
        await auth.authenticate(sigv4.RequestView("GET", "/", [], [("Host", "h")]))
    assert anonymous.value.code == "AccessDenied"
    v2 = sigv4.parse_query("AWSAccessKeyId=CKBOB&Signature=abc&Expires=1")
    with pytest.raises(S3Error, match="Request has expired"):  # V2 is verified: test_sigv2
        await auth.authenticate(sigv4.RequestView("GET", "/b/k", v2, [("Host", "h")]))
