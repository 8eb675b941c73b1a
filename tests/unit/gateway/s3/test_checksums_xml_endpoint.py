"""Upload digests (each algorithm against botocore's implementation and published check
values), S3 XML documents and request bodies, request routing, conditional requests and
object headers: the pure parts of the S3 front end."""

import base64
import hashlib
import xml.etree.ElementTree as ET

import pytest
from botocore.httpchecksum import Crc32Checksum, Sha1Checksum, Sha256Checksum

from cairn.gateway.s3 import xml
from cairn.gateway.s3.checksums import BodyVerifier, checksum_of, parse_expected
from cairn.gateway.s3.conditions import evaluate
from cairn.gateway.s3.endpoint import Op, parse_endpoint
from cairn.gateway.s3.errors import S3Error
from cairn.gateway.s3.headers import attributes_from, object_headers
from cairn.meta.manifest import Manifest

DATA = b"The quick brown fox jumps over the lazy dog" * 1000


# -- checksums ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("algorithm", "reference"),
    [("crc32", Crc32Checksum), ("sha1", Sha1Checksum), ("sha256", Sha256Checksum)],
)
def test_checksums_agree_with_botocore(algorithm: str, reference: type) -> None:
    checksum = reference()
    checksum.update(DATA)
    assert checksum_of(algorithm, DATA) == checksum.b64digest()


@pytest.mark.parametrize(
    ("algorithm", "check"),
    [("crc32", 0xCBF43926), ("crc32c", 0xE3069283), ("crc64nvme", 0xAE8B14860A799888)],
)
def test_crc_check_values_of_123456789(algorithm: str, check: int) -> None:
    width = 8 if algorithm == "crc64nvme" else 4
    assert base64.b64decode(checksum_of(algorithm, b"123456789")) == check.to_bytes(width, "big")


def verifier(headers: dict[str, str], sha256: str | None = None) -> BodyVerifier:
    v = BodyVerifier(parse_expected(headers, sha256))
    for start in range(0, len(DATA), 1000):
        v.update(memoryview(DATA)[start : start + 1000])
    return v


def test_every_stated_digest_is_checked() -> None:
    md5 = base64.b64encode(hashlib.md5(DATA).digest()).decode()
    sha = hashlib.sha256(DATA).hexdigest()
    assert verifier({"content-md5": md5}, sha).finish() == {}
    crc = checksum_of("crc32c", DATA)
    assert verifier({"x-amz-checksum-crc32c": crc}).finish() == {"crc32c": crc}
    nvme = checksum_of("crc64nvme", DATA)
    trailer = verifier({"x-amz-trailer": "x-amz-checksum-crc64nvme"})
    assert trailer.finish({"x-amz-checksum-crc64nvme": nvme}) == {"crc64nvme": nvme}


@pytest.mark.parametrize(
    ("headers", "sha256", "code"),
    [
        ({"content-md5": base64.b64encode(b"0" * 16).decode()}, None, "BadDigest"),
        ({"content-md5": "not base64!"}, None, "InvalidDigest"),
        ({"content-md5": base64.b64encode(b"short").decode()}, None, "InvalidDigest"),
        ({}, "0" * 64, "XAmzContentSHA256Mismatch"),
        ({"x-amz-checksum-crc32": checksum_of("crc32", b"other")}, None, "BadDigest"),
        ({"x-amz-checksum-sha256": "AAAA"}, None, "InvalidRequest"),
        ({"x-amz-checksum-md4": "AAAA"}, None, "InvalidRequest"),
        (
            {"x-amz-checksum-crc32": "AAAAAA==", "x-amz-checksum-sha1": "A" * 28},
            None,
            "InvalidRequest",
        ),
    ],
)
def test_digest_failures(headers: dict[str, str], sha256: str | None, code: str) -> None:
    with pytest.raises(S3Error) as caught:
        verifier(headers, sha256).finish()
    assert caught.value.code == code and caught.value.status == 400


def test_mode_and_algorithm_headers_are_not_checksums() -> None:
    expected = parse_expected(
        {"x-amz-checksum-mode": "ENABLED", "x-amz-checksum-algorithm": "CRC32"}, None
    )
    assert expected.checksum_algorithm is None


# -- XML ------------------------------------------------------------------------------------


def test_documents_escape_client_values() -> None:
    evil = "<Key>&\"'</Key>"
    body = xml.error("NoSuchKey", f"no {evil}", f"/b/{evil}", "RID")
    root = ET.fromstring(body)
    assert root.findtext("Message") == f"no {evil}" and root.findtext("Resource") == f"/b/{evil}"
    listed = [xml.ListedObject(evil, 0.5, "e" * 32, 3, "o")]
    result = xml.ListResult("b", evil, "/", 2, None, listed, [evil + "/"], True)
    listing = xml.list_objects_v2(result, 2, None, "tok", None, fetch_owner=False)
    ns = {"s": xml.NS}
    root = ET.fromstring(listing)
    assert root.findtext("s:Contents/s:Key", namespaces=ns) == evil
    assert root.findtext("s:Contents/s:LastModified", namespaces=ns) == "1970-01-01T00:00:00.500Z"
    assert root.findtext("s:IsTruncated", namespaces=ns) == "true"


def test_delete_request_parsing() -> None:
    body = (
        b'<?xml version="1.0"?><Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        b"<Quiet>true</Quiet><Object><Key>a &amp; b</Key></Object>"
        b"<Object><Key>c</Key><VersionId>v1</VersionId></Object></Delete>"
    )
    parsed = xml.parse_delete(body)
    assert parsed.quiet and parsed.objects == [("a & b", None), ("c", "v1")]


@pytest.mark.parametrize(
    "body",
    [
        b"<Delete><Object><Key>a</Key></Object>",
        b"<Delete></Delete>",
        b"<Other><Object><Key>a</Key></Object></Other>",
        b"<Delete><Object><VersionId>1</VersionId></Object></Delete>",
        b'<!DOCTYPE d [<!ENTITY a "aaaa">]><Delete><Object><Key>&a;</Key></Object></Delete>',
        b"<Delete>" + b"<Object><Key>k</Key></Object>" * 1001 + b"</Delete>",
        b"<Delete><Quiet>maybe</Quiet><Object><Key>a</Key></Object></Delete>",
        b"\xff\xfe garbage",
    ],
)
def test_malformed_delete_requests(body: bytes) -> None:
    with pytest.raises(S3Error) as caught:
        xml.parse_delete(body)
    assert caught.value.code == "MalformedXML"


def test_create_bucket_configuration() -> None:
    assert xml.parse_create_bucket(b"") is None
    doc = (
        b"<CreateBucketConfiguration><LocationConstraint>eu-west-1</LocationConstraint>"
        b"</CreateBucketConfiguration>"
    )
    assert xml.parse_create_bucket(doc) == "eu-west-1"
    with pytest.raises(S3Error):
        xml.parse_create_bucket(b"<Nope/>")


# -- routing --------------------------------------------------------------------------------


def route(method: str, target: str, headers: dict[str, str] | None = None) -> tuple[Op, str, str]:
    from cairn.gateway.s3.sigv4 import parse_query

    path, _, query = target.partition("?")
    endpoint = parse_endpoint(method, path, parse_query(query), headers or {})
    return endpoint.op, endpoint.bucket, endpoint.key


@pytest.mark.parametrize(
    ("method", "target", "headers", "expected"),
    [
        ("GET", "/", None, (Op.LIST_BUCKETS, "", "")),
        ("PUT", "/b", None, (Op.CREATE_BUCKET, "b", "")),
        ("PUT", "/b/", None, (Op.CREATE_BUCKET, "b", "")),
        ("GET", "/b?list-type=2&prefix=x", None, (Op.LIST_OBJECTS_V2, "b", "")),
        ("GET", "/b?location", None, (Op.GET_BUCKET_LOCATION, "b", "")),
        ("POST", "/b?delete", None, (Op.DELETE_OBJECTS, "b", "")),
        ("PUT", "/b/k%20ey/..//x?x-id=PutObject", None, (Op.PUT_OBJECT, "b", "k ey/..//x")),
        ("PUT", "/b/k", {"x-amz-copy-source": "/a/b"}, (Op.COPY_OBJECT, "b", "k")),
        ("POST", "/b/k?uploads", None, (Op.CREATE_MULTIPART_UPLOAD, "b", "k")),
        (
            "PUT",
            "/b/k?partNumber=1&uploadId=u",
            {"x-amz-copy-source": "a/b"},
            (Op.UPLOAD_PART_COPY, "b", "k"),
        ),
        ("GET", "/b/k?uploadId=u", None, (Op.LIST_PARTS, "b", "k")),
    ],
)
def test_routes(
    method: str, target: str, headers: dict[str, str] | None, expected: tuple[Op, str, str]
) -> None:
    assert route(method, target, headers) == expected


@pytest.mark.parametrize(
    ("method", "target", "code"),
    [
        ("GET", "/b?acl", "NotImplemented"),
        ("DELETE", "/b?versioning", "NotImplemented"),
        ("PUT", "/b/k?tagging", "NotImplemented"),
        ("POST", "/b/k", "MethodNotAllowed"),
        ("DELETE", "/", "MethodNotAllowed"),
        ("GET", "/b/%ff%fe", "InvalidURI"),
    ],
)
def test_unroutable_requests(method: str, target: str, code: str) -> None:
    with pytest.raises(S3Error) as caught:
        route(method, target)
    assert caught.value.code == code


# -- conditions and headers -------------------------------------------------------------------

ETAG = "0123456789abcdef0123456789abcdef"
WHEN = 1_700_000_000.7  # Tue, 14 Nov 2023 22:13:20 GMT
BEFORE = "Tue, 14 Nov 2023 22:13:19 GMT"
AT = "Tue, 14 Nov 2023 22:13:20 GMT"


@pytest.mark.parametrize(
    ("conditions", "outcome"),
    [
        ({}, None),
        ({"if-match": f'"{ETAG}"'}, None),
        ({"if-match": '"other", *'}, None),
        ({"if-match": '"other"'}, "PreconditionFailed"),
        ({"if-none-match": f'"{ETAG}"'}, "NotModified"),
        ({"if-none-match": '"other"'}, None),
        ({"if-modified-since": AT}, "NotModified"),
        ({"if-modified-since": BEFORE}, None),
        ({"if-unmodified-since": BEFORE}, "PreconditionFailed"),
        ({"if-unmodified-since": AT}, None),
        ({"if-match": f'"{ETAG}"', "if-unmodified-since": BEFORE}, None),  # S3's documented case
        ({"if-none-match": '"other"', "if-modified-since": AT}, None),
        ({"if-modified-since": "garbage"}, None),
    ],
)
def test_conditional_requests(conditions: dict[str, str], outcome: str | None) -> None:
    if outcome is None:
        evaluate(conditions, ETAG, WHEN)
        return
    with pytest.raises(S3Error) as caught:
        evaluate(conditions, ETAG, WHEN)
    assert caught.value.code == outcome


def test_copy_source_conditions_fail_with_412() -> None:
    with pytest.raises(S3Error) as caught:
        evaluate({"if-none-match": "*"}, ETAG, WHEN, copy=True)
    assert caught.value.status == 412


def test_object_attributes_round_trip_into_response_headers() -> None:
    lines = [
        ("Content-Type", "text/plain"),
        ("X-Amz-Meta-Colour", "blue"),
        ("x-amz-meta-colour", "green"),
        ("Content-Encoding", "gzip,aws-chunked"),
        ("Cache-Control", "no-cache"),
        ("Content-Disposition", 'attachment; filename="a.txt"'),
    ]
    headers = {k.lower(): v for k, v in reversed(lines)}
    attributes = attributes_from(headers, lines)
    assert attributes.metadata == {"colour": "blue,green"}
    assert attributes.content_headers["content-encoding"] == "gzip"
    manifest = Manifest(
        1,
        ETAG,
        WHEN,
        attributes.content_type,
        attributes.metadata,
        inline=b"x",
        content_headers=attributes.content_headers,
        checksums={"crc32": "AAAAAA=="},
    )
    out = object_headers(
        manifest, "null", {"response-cache-control": "max-age=1"}, checksum_mode=True
    )
    assert out["Cache-Control"] == "max-age=1" and out["Content-Encoding"] == "gzip"
    assert out["x-amz-meta-colour"] == "blue,green" and out["x-amz-checksum-crc32"] == "AAAAAA=="
    assert "x-amz-version-id" not in out
    with pytest.raises(S3Error):
        object_headers(manifest, "null", {"response-content-type": "a\r\nSet-Cookie: x"}, False)
    with pytest.raises(S3Error) as caught:
        attributes_from({}, [("x-amz-meta-big", "v" * 3000)])
    assert caught.value.code == "MetadataTooLarge"
