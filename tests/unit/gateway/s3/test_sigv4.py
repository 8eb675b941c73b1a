"""SigV4 verification against AWS's published S3 examples (S3 API reference,
"Signature Calculations for the Authorization Header" and "Authenticating Requests: Using
Query Parameters") and against botocore's own signer, in process; plus the time, header
and malformed-claim rules of `sigv4`."""

import hashlib
from urllib.parse import urlsplit

import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from cairn.gateway.s3 import sigv4
from cairn.gateway.s3.errors import S3Error
from cairn.gateway.s3.sigv4 import RequestView

AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
EXAMPLE_TIME = sigv4.parse_amz_date("20130524T000000Z")
EMPTY = sigv4.EMPTY_SHA256


def view(method: str, target: str, headers: list[tuple[str, str]]) -> RequestView:
    path, _, query = target.partition("?")
    return RequestView(method, path, sigv4.parse_query(query), headers)


def claim_of(v: RequestView, now: float = EXAMPLE_TIME) -> sigv4.SignedClaim:
    auth = v.header_values("authorization")
    claim = sigv4.parse_header_auth(auth[0], v) if auth else sigv4.parse_presigned(v.query)
    sigv4.check_time(claim, now)
    sigv4.check_signed_headers(claim, v)
    return claim


def auth_header(signed: str, signature: str) -> str:
    return (
        f"AWS4-HMAC-SHA256 Credential={AWS_KEY}/20130524/us-east-1/s3/aws4_request,"
        f"SignedHeaders={signed},Signature={signature}"
    )


# -- AWS's published examples ---------------------------------------------------------------


def test_aws_example_get_object() -> None:
    v = view(
        "GET",
        "/test.txt",
        [
            ("Host", "examplebucket.s3.amazonaws.com"),
            ("Range", "bytes=0-9"),
            ("x-amz-content-sha256", EMPTY),
            ("x-amz-date", "20130524T000000Z"),
            (
                "Authorization",
                auth_header(
                    "host;range;x-amz-content-sha256;x-amz-date",
                    "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
                ),
            ),
        ],
    )
    context = sigv4.verify(v, claim_of(v), AWS_SECRET)
    assert context.scope == "20130524/us-east-1/s3/aws4_request"


def test_aws_example_put_object_with_a_dollar_in_the_key() -> None:
    body = b"Welcome to Amazon S3."
    v = view(
        "PUT",
        "/test%24file.text",
        [
            ("Host", "examplebucket.s3.amazonaws.com"),
            ("Date", "Fri, 24 May 2013 00:00:00 GMT"),
            ("x-amz-date", "20130524T000000Z"),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
            ("x-amz-content-sha256", hashlib.sha256(body).hexdigest()),
            (
                "Authorization",
                auth_header(
                    "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
                    "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
                ),
            ),
        ],
    )
    sigv4.verify(v, claim_of(v), AWS_SECRET)


@pytest.mark.parametrize(
    ("target", "signature"),
    [
        ("/?lifecycle", "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"),
        (
            "/?max-keys=2&prefix=J",
            "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
        ),
    ],
)
def test_aws_example_bucket_requests_with_query(target: str, signature: str) -> None:
    v = view(
        "GET",
        target,
        [
            ("Host", "examplebucket.s3.amazonaws.com"),
            ("x-amz-date", "20130524T000000Z"),
            ("x-amz-content-sha256", EMPTY),
            ("Authorization", auth_header("host;x-amz-content-sha256;x-amz-date", signature)),
        ],
    )
    sigv4.verify(v, claim_of(v), AWS_SECRET)


def test_aws_example_presigned_url() -> None:
    target = (
        "/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        f"&X-Amz-Credential={AWS_KEY}%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
        "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
        "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
    )
    v = view("GET", target, [("Host", "examplebucket.s3.amazonaws.com")])
    claim = claim_of(v, EXAMPLE_TIME + 3600)
    assert claim.presigned and claim.expires_s == 86400
    sigv4.verify(v, claim, AWS_SECRET)
    with pytest.raises(S3Error) as expired:
        sigv4.check_time(claim, EXAMPLE_TIME + 86401)
    assert expired.value.code == "AccessDenied" and "expired" in expired.value.message


def test_a_changed_byte_breaks_the_signature() -> None:
    headers = [
        ("Host", "examplebucket.s3.amazonaws.com"),
        ("Range", "bytes=0-8"),
        ("x-amz-content-sha256", EMPTY),
        ("x-amz-date", "20130524T000000Z"),
        (
            "Authorization",
            auth_header(
                "host;range;x-amz-content-sha256;x-amz-date",
                "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
            ),
        ),
    ]
    v = view("GET", "/test.txt", headers)
    with pytest.raises(S3Error) as caught:
        sigv4.verify(v, claim_of(v), AWS_SECRET)
    assert caught.value.code == "SignatureDoesNotMatch" and caught.value.status == 403


# -- botocore's signer --------------------------------------------------------------------


def botocore_view(request: AWSRequest) -> RequestView:
    prepared = request.prepare()
    split = urlsplit(prepared.url)
    headers = [(k, v if isinstance(v, str) else v.decode()) for k, v in prepared.headers.items()]
    headers.append(("Host", split.netloc))
    return RequestView(prepared.method, split.path, sigv4.parse_query(split.query), headers)


KEYS = ["plain.txt", "a b+c=d&e", "ünï/cødé/☃", "x//y/../z", "~tilde!*'()", "%41%2F"]


@pytest.mark.parametrize("key", KEYS)
def test_botocore_header_signatures_verify(key: str) -> None:
    from urllib.parse import quote

    credentials = Credentials("CKTESTKEY", "secret-of-the-test-key")
    url = f"http://127.0.0.1:9000/bucket/{quote(key, safe='/~')}?prefix=a%20b&list-type=2"
    body = b"payload"
    request = AWSRequest(
        "PUT",
        url,
        data=body,
        headers={"x-amz-meta-Colour": "  blue   green ", "Content-Type": "text/plain"},
    )
    request.context["payload_signing_enabled"] = True
    S3SigV4Auth(credentials, "s3", "eu-central-1").add_auth(request)
    v = botocore_view(request)
    claim = sigv4.parse_header_auth(v.header_values("authorization")[0], v)
    sigv4.check_signed_headers(claim, v)
    sigv4.verify(v, claim, "secret-of-the-test-key")
    with pytest.raises(S3Error):
        sigv4.verify(v, claim, "another-secret")


def test_botocore_presigned_urls_verify_and_expire() -> None:
    credentials = Credentials("CKTESTKEY", "secret-of-the-test-key")
    request = AWSRequest(
        "GET", "http://127.0.0.1:9000/bucket/some%20key?response-content-type=text%2Fplain"
    )
    S3SigV4QueryAuth(credentials, "s3", "us-east-1", expires=60).add_auth(request)
    v = botocore_view(request)
    claim = sigv4.parse_presigned(v.query)
    sigv4.check_signed_headers(claim, v)
    sigv4.verify(v, claim, "secret-of-the-test-key")
    sigv4.check_time(claim, claim.request_time_s + 59)
    with pytest.raises(S3Error, match="expired"):
        sigv4.check_time(claim, claim.request_time_s + 61)


# -- rules ----------------------------------------------------------------------------------


def test_clock_skew_over_fifteen_minutes_is_refused() -> None:
    v = view(
        "GET",
        "/",
        [
            ("Host", "h"),
            ("x-amz-date", "20130524T000000Z"),
            ("x-amz-content-sha256", EMPTY),
            ("Authorization", auth_header("host;x-amz-content-sha256;x-amz-date", "0" * 64)),
        ],
    )
    claim = sigv4.parse_header_auth(v.header_values("authorization")[0], v)
    sigv4.check_time(claim, EXAMPLE_TIME + 899)
    with pytest.raises(S3Error) as caught:
        sigv4.check_time(claim, EXAMPLE_TIME + 901)
    assert caught.value.code == "RequestTimeTooSkewed" and caught.value.status == 403


def test_unsigned_amz_headers_and_unsigned_host_are_refused() -> None:
    base = [
        ("Host", "h"),
        ("x-amz-date", "20130524T000000Z"),
        ("x-amz-content-sha256", EMPTY),
    ]
    v = view(
        "GET",
        "/",
        [
            *base,
            ("x-amz-meta-a", "1"),
            ("Authorization", auth_header("host;x-amz-content-sha256;x-amz-date", "0" * 64)),
        ],
    )
    claim = sigv4.parse_header_auth(v.header_values("authorization")[0], v)
    with pytest.raises(S3Error, match="not signed"):
        sigv4.check_signed_headers(claim, v)
    v = view(
        "GET",
        "/",
        [*base, ("Authorization", auth_header("x-amz-content-sha256;x-amz-date", "0" * 64))],
    )
    claim = sigv4.parse_header_auth(v.header_values("authorization")[0], v)
    with pytest.raises(S3Error, match="host"):
        sigv4.check_signed_headers(claim, v)


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        ("AWS AKIA:abc", "InvalidRequest"),
        ("AWS4-HMAC-SHA512 Credential=a/b", "AuthorizationHeaderMalformed"),
        (
            "AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3/aws4_request",
            "AuthorizationHeaderMalformed",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/ec2/aws4_request,"
            "SignedHeaders=host,Signature=" + "0" * 64,
            "AuthorizationHeaderMalformed",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=AK/20130525/us-east-1/s3/aws4_request,"
            "SignedHeaders=host,Signature=" + "0" * 64,
            "AuthorizationHeaderMalformed",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3/aws4_request,"
            "SignedHeaders=host,Signature=XYZ",
            "AuthorizationHeaderMalformed",
        ),
        ("AWS4-HMAC-SHA256 " + "x" * 9000, "AuthorizationHeaderMalformed"),
    ],
)
def test_malformed_authorization_headers(authorization: str, code: str) -> None:
    v = view(
        "GET",
        "/",
        [("Host", "h"), ("x-amz-date", "20130524T000000Z"), ("x-amz-content-sha256", EMPTY)],
    )
    with pytest.raises(S3Error) as caught:
        sigv4.parse_header_auth(authorization, v)
    assert caught.value.code == code
    assert 400 <= caught.value.status < 500


def test_presigned_expiry_over_seven_days_is_refused() -> None:
    query = sigv4.parse_query(
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
        "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=604801&X-Amz-SignedHeaders=host&X-Amz-Signature="
        + "0"
        * 64
    )
    with pytest.raises(S3Error) as caught:
        sigv4.parse_presigned(query)
    assert caught.value.code == "AuthorizationQueryParametersError"
