"""Signature version 2 against botocore's own V2 signers: presigned URLs from a boto3
client with its default config (which presigns S3 with V2) and from `HmacV1QueryAuth`,
header-signed requests from `HmacV1Auth`, on awkward keys (spaces, unicode, `+`, `%`) and
signed sub-resources; expiry, the 7-day cap, tampering of every signed part, refused
forms, and the `Authenticator` path (unknown key, expiry before lookup, identity)."""

import base64
import email.utils
import time
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.auth import HmacV1Auth, HmacV1QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from cairn.base.errors import RemoteError
from cairn.gateway.s3 import sigv2, sigv4
from cairn.gateway.s3.auth import Authenticator
from cairn.gateway.s3.errors import S3Error
from cairn.meta.users import AccessKey, User, seal_secret
from cairn.node.meta_messages import UserKeyReply

ACCESS = "CKV2TESTKEY"
SECRET = "v2-secret/with+odd=chars"
ENDPOINT = "http://127.0.0.1:9000"
CLUSTER = "sigv2-unit-cluster-secret"

AWKWARD_KEYS = [
    "plain",
    "a key with spaces",
    "ünïcødé/ключ/键",
    "plus+sign",
    "percent%25and%",
    "dir//double/../dots/./x",
    "tilde~star*quote'paren()",
    "q?uery&amp=1#frag",
    "semi;colon,comma:colon@at$dollar",
    "sp ace+plus%pct",
]


def default_client():  # type: ignore[no-untyped-def]
    """A boto3 client with nothing but the endpoint and path-style addressing."""
    return boto3.client(
        "s3",
        endpoint_url=ENDPOINT,
        region_name="us-east-1",
        aws_access_key_id=ACCESS,
        aws_secret_access_key=SECRET,
        config=Config(s3={"addressing_style": "path"}),
    )


def view_of(
    url: str, method: str = "GET", headers: list[tuple[str, str]] | None = None
) -> sigv4.RequestView:
    parts = urlsplit(url)
    return sigv4.RequestView(
        method,
        parts.path,
        sigv4.parse_query(parts.query),
        [("Host", parts.netloc)] + (headers or []),
    )


def presigned(op: str, expires: int = 300, **params: object) -> str:
    url: str = default_client().generate_presigned_url(op, Params=params, ExpiresIn=expires)
    return url


def check(view: sigv4.RequestView, secret: str = SECRET, now: float | None = None) -> None:
    """parse + time + verify, as the authenticator runs them."""
    authorization = view.header_values("authorization")
    if authorization:
        claim = sigv2.parse_header_auth(authorization[0], view)
    else:
        claim = sigv2.parse_presigned(view)
    sigv2.check_time(claim, time.time() if now is None else now)
    sigv2.verify(view, claim, secret)


def code(view: sigv4.RequestView, secret: str = SECRET, now: float | None = None) -> str:
    with pytest.raises(S3Error) as error:
        check(view, secret, now)
    return error.value.code


# -- presigned URLs -------------------------------------------------------------------------


def test_boto3_default_config_presigns_s3_with_v2() -> None:
    # the premise of sigv2.py: no special flags -> a V2 query-string URL
    url = presigned("get_object", Bucket="b", Key="k")
    query = dict(sigv4.parse_query(urlsplit(url).query))
    assert set(query) == {b"AWSAccessKeyId", b"Signature", b"Expires"}
    assert sigv2.is_presigned(sigv4.parse_query(urlsplit(url).query))


@pytest.mark.parametrize("key", AWKWARD_KEYS)
@pytest.mark.parametrize(("op", "method"), [("get_object", "GET"), ("put_object", "PUT")])
def test_boto3_presigned_urls_verify(key: str, op: str, method: str) -> None:
    check(view_of(presigned(op, Bucket="bucket", Key=key), method))


@pytest.mark.parametrize("key", AWKWARD_KEYS)
def test_hmacv1_query_auth_with_content_headers_verifies(key: str) -> None:
    # botocore's raw V2 query signer, with Content-Type and Content-MD5 in the string to sign
    path = "/bucket/" + sigv4.uri_encode(key.encode(), keep_slash=True)
    headers = {
        "Content-Type": "text/plain; charset=utf-8",
        "Content-MD5": "XUFAKrxLKna5cZ2REBfFkg==",
    }
    request = AWSRequest("PUT", ENDPOINT + path, headers=headers)
    HmacV1QueryAuth(Credentials(ACCESS, SECRET), expires=60).add_auth(request)
    sent = list(headers.items())
    check(view_of(request.url, "PUT", sent))
    assert code(view_of(request.url, "PUT", [("Content-Type", "text/html"), sent[1]])) == (
        "SignatureDoesNotMatch"
    )
    assert code(view_of(request.url, "PUT", sent[:1])) == "SignatureDoesNotMatch"


@pytest.mark.parametrize(
    ("op", "params"),
    [
        ("get_object", {"VersionId": "v 1+2"}),
        (
            "get_object",
            {
                "ResponseContentDisposition": 'attachment; filename="a b+c%.txt"',
                "ResponseContentType": "text/plain",
                "ResponseCacheControl": "no-cache",
            },
        ),
        ("upload_part", {"UploadId": "up/load+id=", "PartNumber": 3}),
        ("list_parts", {"UploadId": "u1"}),
        ("create_multipart_upload", {}),
        ("delete_object", {}),
        ("head_object", {}),
    ],
)
def test_signed_subresources_verify(op: str, params: dict[str, object]) -> None:
    url = presigned(op, Bucket="bucket", Key="a key+", **params)
    method = {"upload_part": "PUT", "create_multipart_upload": "POST", "delete_object": "DELETE"}
    view = view_of(url, method.get(op, "HEAD" if op == "head_object" else "GET"))
    check(view)
    # every signed sub-resource is part of the signature
    tampered = [(n, v + b"x" if n.decode() in sigv2.SUBRESOURCES else v) for n, v in view.query]
    if tampered != list(view.query):
        forged = sigv4.RequestView(view.method, view.raw_path, tampered, view.headers)
        assert code(forged) == "SignatureDoesNotMatch"


def test_bucket_level_presigns_and_unsigned_params_verify() -> None:
    url = presigned("list_objects_v2", Bucket="bucket", Prefix="a b/", MaxKeys=5)
    view = view_of(url)
    check(view)
    # prefix / max-keys / list-type are not in a V2 canonical resource (S3's rule)
    extra = sigv4.RequestView("GET", view.raw_path, [*view.query, (b"prefix", b"zz")], [])
    check(extra)
    check(view_of(presigned("list_objects", Bucket="bucket")))
    check(view_of(presigned("list_buckets")))


def test_canonical_resource_and_string_to_sign_shape() -> None:
    view = sigv4.RequestView(
        "GET",
        "/b/k%20x",
        [(b"versionId", b"v1"), (b"acl", b""), (b"prefix", b"p"), (b"response-expires", b"x")],
        [("X-Amz-Meta-B", "  two  spaces "), ("x-amz-meta-a", "1"), ("x-amz-meta-a", "2")],
    )
    claim = sigv2.V2Claim("AK", "sig", presigned=True, expires_s=10, expires_text="10")
    assert sigv2.canonical_resources(view) == ["/b/k%20x?acl&response-expires=x&versionId=v1"]
    assert sigv2.strings_to_sign(view, claim)[0] == (
        "GET\n\n\n10\nx-amz-meta-a:1,2\nx-amz-meta-b:two  spaces\n"
        "/b/k%20x?acl&response-expires=x&versionId=v1"
    )


def test_path_encodings_as_sent_and_as_aws_both_verify() -> None:
    # a client that leaves `+` raw in the path and signed what it sent
    request = AWSRequest("GET", ENDPOINT + "/bucket/a+b(c)")
    HmacV1QueryAuth(Credentials(ACCESS, SECRET), expires=60).add_auth(request)
    check(view_of(request.url))


def test_expiry_and_the_seven_day_cap() -> None:
    url = presigned("get_object", Bucket="b", Key="k", expires=60)
    view = view_of(url)
    expires = int(dict(view.query)[b"Expires"])
    check(view, now=expires)  # valid through its Expires second
    with pytest.raises(S3Error, match="Request has expired") as expired:
        check(view, now=expires + 1)
    assert expired.value.code == "AccessDenied" and expired.value.status == 403
    long_url = presigned("get_object", Bucket="b", Key="k", expires=8 * 24 * 3600)
    assert code(view_of(long_url)) == "AuthorizationQueryParametersError"
    check(view_of(presigned("get_object", Bucket="b", Key="k", expires=7 * 24 * 3600)))


def test_tampering_is_signature_does_not_match() -> None:
    url = presigned("get_object", Bucket="bucket", Key="a key+ü")
    view = view_of(url)
    check(view)
    forged_expires = [
        (n, str(int(v) + 3600).encode() if n == b"Expires" else v) for n, v in view.query
    ]
    forgeries = [
        view_of(url.replace("/bucket/", "/bucket2/")),
        view_of(url.replace("a%20key", "b%20key")),
        view_of(url, "PUT"),
        view_of(url, "DELETE"),
        sigv4.RequestView("GET", view.raw_path, forged_expires, view.headers),
        sigv4.RequestView("GET", view.raw_path, [*view.query, (b"acl", b"")], view.headers),
        view_of(url, "GET", [("x-amz-copy-source", "/other/key")]),
        view_of(url, "GET", [("Content-Type", "text/plain")]),
    ]
    for forged in forgeries:
        assert code(forged) == "SignatureDoesNotMatch", forged
    assert code(view, secret=SECRET + "x") == "SignatureDoesNotMatch"
    bad_sig = [(n, b"!!not base64" if n == b"Signature" else v) for n, v in view.query]
    assert code(sigv4.RequestView("GET", view.raw_path, bad_sig, [])) == "SignatureDoesNotMatch"


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("AWSAccessKeyId=AK&Expires=99999999999", "AccessDenied"),
        ("AWSAccessKeyId=AK&Signature=abc", "AccessDenied"),
        ("AWSAccessKeyId=AK&Signature=abc&Expires=-5", "AccessDenied"),
        ("AWSAccessKeyId=AK&Signature=abc&Expires=1e9", "AccessDenied"),
        ("AWSAccessKeyId=AK&Signature=abc&Expires=1&x-amz-meta-a=b", "NotImplemented"),
    ],
)
def test_malformed_presigned_queries(query: str, error: str) -> None:
    view = sigv4.RequestView("GET", "/b/k", sigv4.parse_query(query), [])
    with pytest.raises(S3Error) as refused:
        sigv2.parse_presigned(view)
    assert refused.value.code == error


def test_signed_headers_moved_into_the_query_are_refused() -> None:
    url = presigned("put_object", Bucket="b", Key="k", Metadata={"colour": "blue"})
    assert "x-amz-meta-colour=blue" in url
    assert code(view_of(url, "PUT")) == "NotImplemented"


# -- Authorization: AWS key:signature -------------------------------------------------------


def header_signed(
    method: str, path: str, headers: dict[str, str], secret: str = SECRET
) -> sigv4.RequestView:
    request = AWSRequest(method, ENDPOINT + path, headers=headers)
    HmacV1Auth(Credentials(ACCESS, secret)).add_auth(request)
    parts = urlsplit(request.url)
    lines = [
        (k, v.decode() if isinstance(v, bytes) else str(v)) for k, v in request.headers.items()
    ]
    return sigv4.RequestView(method, parts.path, sigv4.parse_query(parts.query), lines)


@pytest.mark.parametrize("key", AWKWARD_KEYS)
def test_hmacv1_header_auth_verifies(key: str) -> None:
    path = "/bucket/" + sigv4.uri_encode(key.encode(), keep_slash=True) + "?uploadId=u%201"
    headers = {
        "Content-Type": "application/octet-stream",
        "x-amz-meta-note": "two  inner  spaces",
        "X-Amz-Checksum-Crc32": "NhCmhg==",
    }
    view = header_signed("PUT", path, headers)
    check(view)
    claim = sigv2.parse_header_auth(view.header_values("authorization")[0], view)
    assert claim.access_key == ACCESS and claim.payload_hash == sigv4.UNSIGNED_PAYLOAD
    changed = [(k, "other" if k == "x-amz-meta-note" else v) for k, v in view.headers]
    assert code(sigv4.RequestView("PUT", view.raw_path, view.query, changed)) == (
        "SignatureDoesNotMatch"
    )


def test_header_auth_time_and_form() -> None:
    view = header_signed("GET", "/bucket/k", {})
    date = email_date(time.time() - 20 * 60)
    stale = [(k, date if k == "Date" else v) for k, v in view.headers]
    assert code(sigv4.RequestView("GET", "/bucket/k", [], stale)) == "RequestTimeTooSkewed"
    no_date = [(k, v) for k, v in view.headers if k != "Date"]
    assert code(sigv4.RequestView("GET", "/bucket/k", [], no_date)) == "AccessDenied"
    for bad in ("AWS nocolon", "AWS :sig", "AWS key:"):
        malformed = [(k, bad if k == "Authorization" else v) for k, v in view.headers]
        assert code(sigv4.RequestView("GET", "/bucket/k", [], malformed)) == "InvalidArgument"
    streaming = [*view.headers, ("x-amz-content-sha256", sigv4.STREAMING_SIGNED)]
    assert code(sigv4.RequestView("GET", "/bucket/k", [], streaming)) == "InvalidRequest"


def test_header_auth_with_x_amz_date_signs_an_empty_date_line() -> None:
    # the AWS rule: with x-amz-date, the Date line of the string to sign is empty
    now = email_date(time.time())
    headers = [("x-amz-date", now), ("Date", "ignored")]
    text = f"GET\n\n\n\nx-amz-date:{now}\n/bucket/k"
    signature = base64.b64encode(sigv2.sign(SECRET, text)).decode()
    view = sigv4.RequestView(
        "GET", "/bucket/k", [], [*headers, ("Authorization", f"AWS {ACCESS}:{signature}")]
    )
    check(view)


def email_date(seconds: float) -> str:
    return email.utils.formatdate(seconds, usegmt=True)


# -- through the Authenticator --------------------------------------------------------------


class Keys:
    def __init__(self) -> None:
        self.table: dict[str, UserKeyReply] = {}
        self.lookups = 0

    def add(self, access_key: str, secret: str, user: str) -> None:
        sealed = seal_secret(CLUSTER, access_key, secret, b"\x00" * 12)
        self.table[access_key] = UserKeyReply(
            AccessKey(access_key, user, 1.0, sealed), User(user, 1.0, False)
        )

    async def lookup(self, access_key: str) -> UserKeyReply:
        self.lookups += 1
        if access_key not in self.table:
            raise RemoteError("InvalidAccessKeyId", "no such key")
        return self.table[access_key]


class WallClock:
    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset

    def monotonic(self) -> float:
        return 0.0

    def wall(self) -> float:
        return time.time() + self.offset


async def test_authenticator_verifies_v2_presigned_and_header_requests() -> None:
    keys = Keys()
    keys.add(ACCESS, SECRET, "alice")
    auth = Authenticator(keys, CLUSTER, WallClock())
    got = await auth.authenticate(view_of(presigned("put_object", Bucket="b", Key="k"), "PUT"))
    assert got.identity.user == "alice" and got.identity.access_key == ACCESS
    assert got.claim.payload_hash == sigv4.UNSIGNED_PAYLOAD and got.claim.presigned
    got = await auth.authenticate(header_signed("GET", "/b/k", {}))
    assert got.identity.user == "alice" and not got.claim.presigned
    with pytest.raises(S3Error) as wrong:
        await auth.authenticate(header_signed("GET", "/b/k", {}, secret="nope"))
    assert wrong.value.code == "SignatureDoesNotMatch" and wrong.value.status == 403


async def test_authenticator_unknown_key_and_expiry() -> None:
    keys = Keys()
    keys.add("CKOTHER", SECRET, "bob")
    auth = Authenticator(keys, CLUSTER, WallClock())
    with pytest.raises(S3Error) as unknown:
        await auth.authenticate(view_of(presigned("get_object", Bucket="b", Key="k")))
    assert unknown.value.code == "InvalidAccessKeyId" and unknown.value.status == 403
    lookups = keys.lookups
    later = Authenticator(keys, CLUSTER, WallClock(offset=120))
    with pytest.raises(S3Error) as expired:
        await later.authenticate(view_of(presigned("get_object", Bucket="b", Key="k", expires=60)))
    assert (expired.value.code, expired.value.status) == ("AccessDenied", 403)
    assert expired.value.message == "Request has expired"
    assert keys.lookups == lookups  # refused before any key lookup
