"""Malformed S3 requests against a real cluster: each gets the right 4xx with an S3 XML
error body (or, for what the HTTP layer refuses itself, a plain 4xx), nothing half-written
becomes visible, and the cluster is healthy and serving afterwards.

Requests are signed with botocore's SigV4 signer and sent over raw sockets, so a test can
lie about lengths, cut bodies short and send what no SDK would."""

import socket
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from cairn.gateway.s3 import sigv4
from cairn.localcluster.harness import health

from .conftest import S3Cluster

pytestmark = pytest.mark.xdist_group("processes")
BUCKET = "malformed"
SOCKET_TIMEOUT_S = 20.0


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def code(self) -> str | None:
        if not self.body.startswith(b"<?xml"):
            return self.headers.get("x-amz-error-code")
        return ET.fromstring(self.body).findtext("Code")


def exchange(s3: S3Cluster, head: bytes, body: bytes = b"", *, half_close: bool = False) -> Answer:
    host, port = urlsplit(s3.endpoint()).netloc.split(":")
    with socket.create_connection((host, int(port)), timeout=SOCKET_TIMEOUT_S) as sock:
        sock.sendall(head + body)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        data = b""
        while b"\r\n\r\n" not in data:
            piece = sock.recv(65536)
            if not piece:
                break
            data += piece
        header_text, _, rest = data.partition(b"\r\n\r\n")
        lines = header_text.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            piece = sock.recv(65536)
            if not piece:
                break
            rest += piece
        return Answer(status, headers, rest[:length])


class FixedPayloadAuth(S3SigV4Auth):
    """botocore's signer, with x-amz-content-sha256 set to what the test says."""

    def __init__(
        self, credentials: Credentials, service: str, region: str, payload: str | None
    ) -> None:
        super().__init__(credentials, service, region)
        self._payload = payload

    def payload(self, request: AWSRequest) -> str:
        return self._payload if self._payload is not None else super().payload(request)


def signed_head(
    s3: S3Cluster,
    method: str,
    path: str,
    *,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    payload_hash: str | None = None,
    secret: str | None = None,
    drop: tuple[str, ...] = (),
) -> bytes:
    """The request line and headers, signed by botocore; `drop` removes headers after."""
    url = s3.endpoint() + path
    request = AWSRequest(method, url, data=body, headers=dict(headers or {}))
    request.context["payload_signing_enabled"] = True
    credentials = Credentials(s3.access_key, secret or s3.secret_key)
    FixedPayloadAuth(credentials, "s3", "us-east-1", payload_hash).add_auth(request)
    netloc = urlsplit(url).netloc
    lines = [f"{method} {path} HTTP/1.1", f"Host: {netloc}"]
    for name, value in request.headers.items():
        if name.lower() not in drop:
            lines.append(f"{name}: {value if isinstance(value, str) else value.decode()}")
    if (
        "content-length" not in {n.lower() for n in request.headers}
        and body
        and "content-length" not in drop
    ):
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def get_status(s3: S3Cluster, path: str) -> int:
    return exchange(s3, signed_head(s3, "GET", path)).status


@pytest.fixture(scope="module")
def bucket(s3: S3Cluster) -> Iterator[str]:
    s3.client().create_bucket(Bucket=BUCKET)
    yield BUCKET
    # The cluster must still be healthy and serving after everything below.
    for node in s3.local.nodes.values():
        answer = health(node.host, node.admin_port, timeout=2.0)
        assert answer is not None and answer[0] == 200, node.node_id
    client = s3.client(1)
    client.put_object(Bucket=BUCKET, Key="after", Body=b"still fine")
    assert client.get_object(Bucket=BUCKET, Key="after")["Body"].read() == b"still fine"


def not_visible(s3: S3Cluster, key: str) -> bool:
    return get_status(s3, f"/{BUCKET}/{quote(key)}") == 404


def test_anonymous_and_badly_signed_requests(s3: S3Cluster, bucket: str) -> None:
    host = urlsplit(s3.endpoint()).netloc
    anonymous = exchange(
        s3, f"GET /{bucket} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    )
    assert (anonymous.status, anonymous.code) == (403, "AccessDenied")
    wrong = exchange(s3, signed_head(s3, "GET", f"/{bucket}", secret="not-the-secret"))
    assert (wrong.status, wrong.code) == (403, "SignatureDoesNotMatch")
    head = signed_head(s3, "GET", f"/{bucket}").replace(b"Credential=", b"Credentials=")
    malformed = exchange(s3, head)
    assert (malformed.status, malformed.code) == (400, "AuthorizationHeaderMalformed")
    tampered = signed_head(s3, "GET", f"/{bucket}?prefix=a").replace(b"prefix=a", b"prefix=b")
    assert exchange(s3, tampered).code == "SignatureDoesNotMatch"
    head_request = exchange(s3, signed_head(s3, "HEAD", f"/{bucket}/x", secret="bad-secret-1"))
    assert head_request.status == 403 and head_request.body == b""


def test_payload_hash_mismatch_and_short_content_length(s3: S3Cluster, bucket: str) -> None:
    body = b"the body that was really sent" * 300
    signed_for = bytes(reversed(body))  # same length, other bytes
    head = signed_head(s3, "PUT", f"/{bucket}/sha", body=signed_for)
    answer = exchange(s3, head, body)
    assert (answer.status, answer.code) == (400, "XAmzContentSHA256Mismatch")
    assert not_visible(s3, "sha")
    short = signed_head(s3, "PUT", f"/{bucket}/short", body=body).replace(
        f"Content-Length: {len(body)}".encode(), f"Content-Length: {len(body) - 10}".encode()
    )
    answer = exchange(s3, short, body[:-10])
    assert (answer.status, answer.code) == (400, "XAmzContentSHA256Mismatch")
    assert not_visible(s3, "short")


def test_truncated_bodies_leave_nothing(s3: S3Cluster, bucket: str) -> None:
    """A client that stops mid-body and closes gets no answer (its side is gone), and
    nothing of what it sent becomes visible."""
    body = bytes(range(256)) * 40_000  # 10 MB: several chunks are written before the cut
    head = signed_head(s3, "PUT", f"/{bucket}/cut", body=body, payload_hash=sigv4.UNSIGNED_PAYLOAD)
    host, port = urlsplit(s3.endpoint()).netloc.split(":")
    with socket.create_connection((host, int(port)), timeout=SOCKET_TIMEOUT_S) as sock:
        sock.sendall(head + body[: len(body) // 2])
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(65536):
            pass  # until the server closes its side
    assert not_visible(s3, "cut")


def aws_chunked(data: bytes, trailer: bytes = b"") -> bytes:
    return b"%x\r\n" % len(data) + data + b"\r\n0\r\n" + trailer + b"\r\n"


def test_aws_chunked_errors(s3: S3Cluster, bucket: str) -> None:
    data = b"chunked payload " * 1000
    base = {
        "Content-Encoding": "aws-chunked",
        "X-Amz-Trailer": "x-amz-checksum-crc32",
        "X-Amz-Decoded-Content-Length": str(len(data)),
    }
    from cairn.gateway.s3.checksums import checksum_of

    good_trailer = b"x-amz-checksum-crc32:" + checksum_of("crc32", data).encode() + b"\r\n"
    cases = [
        ("ok", aws_chunked(data, good_trailer), base, (200, None)),
        (
            "bad-sum",
            aws_chunked(data, b"x-amz-checksum-crc32:AAAAAA==\r\n"),
            base,
            (400, "BadDigest"),
        ),
        ("no-trailer", aws_chunked(data), base, (400, "IncompleteBody")),
        ("cut", aws_chunked(data, good_trailer)[:-40], base, (400, "IncompleteBody")),
        (
            "bad-len",
            aws_chunked(data, good_trailer),
            {**base, "X-Amz-Decoded-Content-Length": "5"},
            (400, "IncompleteBody"),
        ),
        (
            "no-len",
            aws_chunked(data, good_trailer),
            {k: v for k, v in base.items() if "Decoded" not in k},
            (411, "MissingContentLength"),
        ),
        ("garbage", b"zz\r\n" + data, base, (400, "InvalidRequest")),
    ]
    for key, body, headers, expected in cases:
        head = signed_head(
            s3, "PUT", f"/{bucket}/chunked-{key}", body=body, headers=headers,
            payload_hash=sigv4.STREAMING_UNSIGNED_TRAILER,
        )  # fmt: skip
        answer = exchange(s3, head, body)
        assert (answer.status, answer.code) == expected, key
        if expected[0] != 200:
            assert not_visible(s3, f"chunked-{key}"), key
    signed_mode = signed_head(
        s3, "PUT", f"/{bucket}/chunked-signed", body=data,
        headers={"Content-Encoding": "aws-chunked", "X-Amz-Decoded-Content-Length": str(len(data))},
        payload_hash=sigv4.STREAMING_SIGNED,
    )  # fmt: skip
    forged = (
        b"%x;chunk-signature=%s\r\n" % (len(data), b"0" * 64)
        + data
        + b"\r\n0;chunk-signature="
        + b"0" * 64
        + b"\r\n\r\n"
    )
    answer = exchange(
        s3,
        signed_mode.replace(
            f"Content-Length: {len(data)}".encode(), f"Content-Length: {len(forged)}".encode()
        ),
        forged,
    )
    assert (answer.status, answer.code) == (403, "SignatureDoesNotMatch")
    assert not_visible(s3, "chunked-signed")


def test_missing_content_length(s3: S3Cluster, bucket: str) -> None:
    head = signed_head(s3, "PUT", f"/{bucket}/nolength", payload_hash=sigv4.UNSIGNED_PAYLOAD)
    head = head.replace(b"Connection: close", b"Transfer-Encoding: chunked\r\nConnection: close")
    answer = exchange(s3, head, b"5\r\nhello\r\n0\r\n\r\n")
    assert (answer.status, answer.code) == (411, "MissingContentLength")


def test_bad_xml_bodies(s3: S3Cluster, bucket: str) -> None:
    for body in (
        b"<Delete><Object>",
        b"not xml at all",
        b'<!DOCTYPE x [<!ENTITY a "b">]><Delete/>',
        b"<Delete></Delete>",
    ):
        answer = exchange(s3, signed_head(s3, "POST", f"/{bucket}?delete", body=body), body)
        assert (answer.status, answer.code) == (400, "MalformedXML"), body
    config = b"<CreateBucketConfiguration><LocationConstraint>"
    answer = exchange(s3, signed_head(s3, "PUT", "/xmlbucket", body=config), config)
    assert (answer.status, answer.code) == (400, "MalformedXML")


def test_illegal_names_and_arguments(s3: S3Cluster, bucket: str) -> None:
    for name in ("Upper", "a_b", "x" * 64, "ab", "-start", "1.2.3.4"):
        answer = exchange(s3, signed_head(s3, "PUT", f"/{name}"))
        assert (answer.status, answer.code) == (400, "InvalidBucketName"), name
    long_key = "k" * 1025
    body = b"x"
    answer = exchange(s3, signed_head(s3, "PUT", f"/{bucket}/{long_key}", body=body), body)
    assert (answer.status, answer.code) == (400, "KeyTooLongError")
    for query, code in (
        ("list-type=2&max-keys=-1", "InvalidArgument"),
        ("list-type=2&max-keys=abc", "InvalidArgument"),
        ("list-type=2&continuation-token=%25%25%25", "InvalidArgument"),
        ("encoding-type=base64", "InvalidArgument"),
    ):
        answer = exchange(s3, signed_head(s3, "GET", f"/{bucket}?{query}"))
        assert (answer.status, answer.code) == (400, code), query
    answer = exchange(s3, signed_head(s3, "GET", f"/{bucket}/x", headers={"Range": "bytes=0-0"}))
    assert (answer.status, answer.code) == (404, "NoSuchKey")
    answer = exchange(s3, signed_head(s3, "GET", "/no-such-bucket-here/x"))
    assert (answer.status, answer.code) == (404, "NoSuchBucket")


def test_unsupported_operations(s3: S3Cluster, bucket: str) -> None:
    answer = exchange(s3, signed_head(s3, "GET", f"/{bucket}?acl"))
    assert (answer.status, answer.code) == (501, "NotImplemented")
    answer = exchange(s3, signed_head(s3, "POST", f"/{bucket}/key"))
    assert (answer.status, answer.code) == (405, "MethodNotAllowed")
    answer = exchange(s3, signed_head(s3, "DELETE", f"/{bucket}?versioning"))
    assert (answer.status, answer.code) == (501, "NotImplemented")
    # S3 takes only `*` in a write's If-None-Match.
    head = signed_head(s3, "PUT", f"/{bucket}/cond", headers={"If-None-Match": '"abc"'})
    answer = exchange(s3, head)
    assert (answer.status, answer.code) == (501, "NotImplemented")


def test_huge_headers(s3: S3Cluster, bucket: str) -> None:
    head = signed_head(s3, "GET", f"/{bucket}").replace(
        b"Connection: close", b"X-Filler: " + b"a" * 100_000 + b"\r\nConnection: close"
    )
    answer = exchange(s3, head)
    assert 400 <= answer.status < 500
    many = b"".join(b"X-Many-%d: v\r\n" % i for i in range(5000))
    answer = exchange(
        s3,
        signed_head(s3, "GET", f"/{bucket}").replace(
            b"Connection: close", many + b"Connection: close"
        ),
    )
    assert 400 <= answer.status < 500
    metadata = {f"x-amz-meta-m{i}": "v" * 100 for i in range(30)}
    body = b"x"
    answer = exchange(
        s3, signed_head(s3, "PUT", f"/{bucket}/meta", body=body, headers=metadata), body
    )
    assert (answer.status, answer.code) == (400, "MetadataTooLarge")
