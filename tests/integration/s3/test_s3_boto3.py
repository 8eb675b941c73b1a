"""boto3 against a real 3-node cluster: buckets, objects with boto3's default checksum
settings (aws-chunked bodies with a CRC32 trailer), every explicit checksum algorithm,
ranges, conditional GETs, response overrides, copies, DeleteObjects, ListObjects v1 and
v2 with pagination, delimiters and URL encoding, presigned GET and PUT and their expiry
(SigV4, and the signature version 2 URLs boto3 makes by default, through urllib and
aiohttp), the `Authorization: AWS` V2 header, and bucket ownership with a second user
made by `cairn user`."""

import concurrent.futures
import datetime
import hashlib
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import zlib
from base64 import b64encode
from collections.abc import Iterator
from urllib.parse import unquote_plus

import aiohttp
import boto3
import botocore.auth
import pytest
import urllib3
from botocore.config import Config
from botocore.exceptions import ClientError

from cairn.gateway.s3.checksums import checksum_of

from .conftest import S3Cluster

pytestmark = pytest.mark.xdist_group("processes")

LARGE = os.urandom(3 * 1024 * 1024 + 12345)  # several chunks
SMALL = b"small object body"


def code_of(error: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    return code_of_error(error.value)


def code_of_error(error: ClientError) -> tuple[str, int]:
    response = error.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


@pytest.fixture(scope="module")
def bucket(s3: S3Cluster) -> Iterator[str]:
    s3.client().create_bucket(Bucket="objects")
    yield "objects"


def test_bucket_lifecycle(s3: S3Cluster) -> None:
    client = s3.client()
    client.create_bucket(
        Bucket="lifecycle", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    assert "lifecycle" in [b["Name"] for b in client.list_buckets()["Buckets"]]
    client.head_bucket(Bucket="lifecycle")
    assert client.get_bucket_location(Bucket="lifecycle")["LocationConstraint"] is None
    with pytest.raises(ClientError) as again:
        client.create_bucket(Bucket="lifecycle")
    assert code_of(again) == ("BucketAlreadyOwnedByYou", 409)
    for name in ("UPPER", "ab", "a..b", "192.168.1.1", "-dash"):
        with pytest.raises(ClientError) as bad:
            client.create_bucket(Bucket=name)
        assert code_of(bad)[1] == 400
    client.put_object(Bucket="lifecycle", Key="k", Body=b"x")
    with pytest.raises(ClientError) as full:
        client.delete_bucket(Bucket="lifecycle")
    assert code_of(full) == ("BucketNotEmpty", 409)
    client.delete_object(Bucket="lifecycle", Key="k")
    client.delete_bucket(Bucket="lifecycle")
    with pytest.raises(ClientError) as gone:
        client.head_bucket(Bucket="lifecycle")
    assert code_of(gone)[1] == 404
    with pytest.raises(ClientError) as missing:
        client.list_objects_v2(Bucket="lifecycle")
    assert code_of(missing) == ("NoSuchBucket", 404)


@pytest.mark.parametrize("body", [SMALL, LARGE], ids=["inline", "chunked"])
def test_put_get_head_delete_with_default_checksums(
    s3: S3Cluster, bucket: str, body: bytes
) -> None:
    client = s3.client()
    key = f"dir/ünï code+key {len(body)}"
    put = client.put_object(
        Bucket=bucket,
        Key=key,
        Body=body,
        ContentType="text/plain",
        Metadata={"colour": "blue"},
        CacheControl="no-cache",
        ContentDisposition='attachment; filename="x.txt"',
    )
    assert put["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    crc = b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
    assert put["ChecksumCRC32"] == crc  # boto3's default trailer checksum, verified
    other_gateway = s3.client(1)
    got = other_gateway.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert got["Body"].read() == body
    assert got["ContentType"] == "text/plain" and got["Metadata"] == {"colour": "blue"}
    assert got["CacheControl"] == "no-cache" and got["ChecksumCRC32"] == crc
    head = client.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == len(body) and head["ETag"] == put["ETag"]
    client.delete_object(Bucket=bucket, Key=key)
    with pytest.raises(ClientError) as gone:
        client.get_object(Bucket=bucket, Key=key)
    assert code_of(gone) == ("NoSuchKey", 404)
    client.delete_object(Bucket=bucket, Key=key)  # deleting what is gone is fine


@pytest.mark.parametrize("algorithm", ["CRC32", "SHA1", "SHA256"])
def test_explicit_checksum_algorithms(s3: S3Cluster, bucket: str, algorithm: str) -> None:
    client = s3.client()
    put = client.put_object(
        Bucket=bucket, Key=f"sum-{algorithm}", Body=LARGE, ChecksumAlgorithm=algorithm
    )
    head = client.head_object(Bucket=bucket, Key=f"sum-{algorithm}", ChecksumMode="ENABLED")
    assert head[f"Checksum{algorithm}"] == put[f"Checksum{algorithm}"]


@pytest.mark.parametrize("algorithm", ["CRC32C", "CRC64NVME"])
def test_checksum_headers_botocore_needs_crt_for(
    s3: S3Cluster, bucket: str, algorithm: str
) -> None:
    """botocore computes these only with awscrt; the client may still send the value."""
    client = s3.client()
    value = checksum_of(algorithm.lower(), LARGE)
    key = f"sum-{algorithm}"
    client.put_object(Bucket=bucket, Key=key, Body=LARGE, **{f"Checksum{algorithm}": value})
    head = client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert head[f"Checksum{algorithm}"] == value
    wrong = checksum_of(algorithm.lower(), b"something else")
    with pytest.raises(ClientError) as bad:
        client.put_object(
            Bucket=bucket, Key=key + "-bad", Body=LARGE, **{f"Checksum{algorithm}": wrong}
        )
    assert code_of(bad) == ("BadDigest", 400)


def test_content_md5_and_wrong_checksums_are_refused(s3: S3Cluster, bucket: str) -> None:
    client = s3.client()
    good = b64encode(hashlib.md5(SMALL).digest()).decode()
    client.put_object(Bucket=bucket, Key="md5", Body=SMALL, ContentMD5=good)
    with pytest.raises(ClientError) as bad:
        client.put_object(
            Bucket=bucket, Key="md5-bad", Body=SMALL, ContentMD5=b64encode(b"0" * 16).decode()
        )
    assert code_of(bad) == ("BadDigest", 400)
    with pytest.raises(ClientError) as wrong:
        client.put_object(Bucket=bucket, Key="crc-bad", Body=LARGE, ChecksumCRC32="AAAAAA==")
    assert code_of(wrong) == ("BadDigest", 400)
    for key in ("md5-bad", "crc-bad"):
        with pytest.raises(ClientError) as absent:
            client.head_object(Bucket=bucket, Key=key)
        assert code_of(absent)[1] == 404  # nothing half-visible


def test_ranges(s3: S3Cluster, bucket: str) -> None:
    client = s3.client()
    client.put_object(Bucket=bucket, Key="ranged", Body=LARGE)
    size = len(LARGE)
    cases = {
        "bytes=0-9": LARGE[:10],
        "bytes=-5": LARGE[-5:],
        f"bytes={size - 100}-": LARGE[-100:],
        "bytes=1048570-2097160": LARGE[1048570:2097161],
        f"bytes=10-{size + 1000}": LARGE[10:],
    }
    for header, expected in cases.items():
        got = client.get_object(Bucket=bucket, Key="ranged", Range=header)
        assert got["Body"].read() == expected, header
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert got["ContentRange"].endswith(f"/{size}")
    with pytest.raises(ClientError) as unsatisfiable:
        client.get_object(Bucket=bucket, Key="ranged", Range=f"bytes={size}-")
    assert code_of(unsatisfiable) == ("InvalidRange", 416)
    head = client.head_object(Bucket=bucket, Key="ranged", Range="bytes=0-99")
    assert head["ContentLength"] == 100


def test_conditional_gets(s3: S3Cluster, bucket: str) -> None:
    client = s3.client()
    etag = client.put_object(Bucket=bucket, Key="cond", Body=SMALL)["ETag"]
    modified = client.head_object(Bucket=bucket, Key="cond")["LastModified"]
    later = modified + datetime.timedelta(seconds=5)
    earlier = modified - datetime.timedelta(days=1)
    assert client.get_object(Bucket=bucket, Key="cond", IfMatch=etag)["Body"].read() == SMALL
    client.get_object(Bucket=bucket, Key="cond", IfModifiedSince=earlier)
    client.get_object(Bucket=bucket, Key="cond", IfUnmodifiedSince=later)
    for kwargs, expected in [
        ({"IfMatch": '"0123"'}, ("PreconditionFailed", 412)),
        ({"IfUnmodifiedSince": earlier}, ("PreconditionFailed", 412)),
        ({"IfNoneMatch": etag}, ("304", 304)),
        ({"IfModifiedSince": later}, ("304", 304)),
    ]:
        with pytest.raises(ClientError) as failed:
            client.get_object(Bucket=bucket, Key="cond", **kwargs)
        assert code_of(failed) == expected, kwargs


def test_conditional_writes(s3: S3Cluster, bucket: str) -> None:
    """If-None-Match: * creates only; If-Match replaces only the named ETag; both are
    decided where the manifest commits, so racing writers cannot both win."""
    client = s3.client()
    first = client.put_object(Bucket=bucket, Key="cas", Body=LARGE, IfNoneMatch="*")
    with pytest.raises(ClientError) as exists:
        client.put_object(Bucket=bucket, Key="cas", Body=SMALL, IfNoneMatch="*")
    assert code_of(exists) == ("PreconditionFailed", 412)
    assert client.get_object(Bucket=bucket, Key="cas")["Body"].read() == LARGE
    second = client.put_object(Bucket=bucket, Key="cas", Body=SMALL, IfMatch=first["ETag"])
    with pytest.raises(ClientError) as stale:
        client.put_object(Bucket=bucket, Key="cas", Body=b"late", IfMatch=first["ETag"])
    assert code_of(stale) == ("PreconditionFailed", 412)
    assert client.get_object(Bucket=bucket, Key="cas")["ETag"] == second["ETag"]
    with pytest.raises(ClientError) as missing:
        client.put_object(Bucket=bucket, Key="no-such-key", Body=SMALL, IfMatch=second["ETag"])
    assert code_of(missing) == ("NoSuchKey", 404)

    def create(n: int) -> bool:
        try:
            s3.client().put_object(
                Bucket=bucket, Key="race", Body=f"writer {n}".encode(), IfNoneMatch="*"
            )
        except ClientError as error:
            assert code_of_error(error) == ("PreconditionFailed", 412)
            return False
        return True

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        won = [n for n, ok in enumerate(pool.map(create, range(8))) if ok]
    assert len(won) == 1, won
    body = client.get_object(Bucket=bucket, Key="race")["Body"].read()
    assert body == f"writer {won[0]}".encode()


def test_response_header_overrides(s3: S3Cluster, bucket: str) -> None:
    client = s3.client()
    client.put_object(Bucket=bucket, Key="override", Body=SMALL)
    got = client.get_object(
        Bucket=bucket,
        Key="override",
        ResponseContentType="application/x-test",
        ResponseContentDisposition="inline",
        ResponseCacheControl="max-age=60",
    )
    assert got["ContentType"] == "application/x-test"
    assert got["ContentDisposition"] == "inline" and got["CacheControl"] == "max-age=60"


def test_copy_object(s3: S3Cluster, bucket: str) -> None:
    client = s3.client()
    client.put_object(
        Bucket=bucket, Key="copy-src", Body=LARGE, Metadata={"a": "1"}, ContentType="x/y"
    )
    source = {"Bucket": bucket, "Key": "copy-src"}
    kept = client.copy_object(Bucket=bucket, Key="copy-kept", CopySource=source)
    assert kept["CopyObjectResult"]["ETag"] == f'"{hashlib.md5(LARGE).hexdigest()}"'
    got = client.get_object(Bucket=bucket, Key="copy-kept")
    assert (
        got["Body"].read() == LARGE
        and got["Metadata"] == {"a": "1"}
        and got["ContentType"] == "x/y"
    )
    client.copy_object(
        Bucket=bucket,
        Key="copy-replaced",
        CopySource=source,
        MetadataDirective="REPLACE",
        Metadata={"b": "2"},
        ContentType="text/plain",
    )
    head = client.head_object(Bucket=bucket, Key="copy-replaced")
    assert head["Metadata"] == {"b": "2"} and head["ContentType"] == "text/plain"
    client.delete_object(Bucket=bucket, Key="copy-src")  # the copies share its chunks
    assert client.get_object(Bucket=bucket, Key="copy-kept")["Body"].read() == LARGE
    with pytest.raises(ClientError) as itself:
        client.copy_object(
            Bucket=bucket, Key="copy-kept", CopySource={"Bucket": bucket, "Key": "copy-kept"}
        )
    assert code_of(itself) == ("InvalidRequest", 400)
    with pytest.raises(ClientError) as condition:
        client.copy_object(
            Bucket=bucket,
            Key="copy-x",
            CopySource={"Bucket": bucket, "Key": "copy-kept"},
            CopySourceIfMatch='"00"',
        )
    assert code_of(condition) == ("PreconditionFailed", 412)
    with pytest.raises(ClientError) as missing:
        client.copy_object(
            Bucket=bucket, Key="copy-x", CopySource={"Bucket": bucket, "Key": "nothing"}
        )
    assert code_of(missing) == ("NoSuchKey", 404)


def test_delete_objects(s3: S3Cluster, bucket: str) -> None:
    client = s3.client()
    keys = [f"batch/{i}" for i in range(5)]
    for key in keys:
        client.put_object(Bucket=bucket, Key=key, Body=key.encode())
    answer = client.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": k} for k in [*keys[:3], "batch/none"]]}
    )
    assert sorted(d["Key"] for d in answer["Deleted"]) == sorted([*keys[:3], "batch/none"])
    quiet = client.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[3:]], "Quiet": True}
    )
    assert "Deleted" not in quiet and "Errors" not in quiet
    assert client.list_objects_v2(Bucket=bucket, Prefix="batch/")["KeyCount"] == 0


LISTED = sorted(
    [f"photos/{y}/{m:02d}/img{i}.jpg" for y in (2023, 2024) for m in (1, 2, 3) for i in range(3)]
    + ["photos/readme", "top a+b", "top/ünï", "zz"]
)


@pytest.fixture(scope="module")
def listing_bucket(s3: S3Cluster) -> str:
    client = s3.client()
    client.create_bucket(Bucket="listing")
    for key in LISTED:
        client.put_object(Bucket="listing", Key=key, Body=b"")
    return "listing"


def expected_listing(prefix: str, delimiter: str) -> tuple[list[str], list[str]]:
    keys, prefixes = [], []
    for key in LISTED:
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix) :]
        if delimiter and delimiter in rest:
            common = prefix + rest[: rest.index(delimiter) + len(delimiter)]
            if common not in prefixes:
                prefixes.append(common)
        else:
            keys.append(key)
    return keys, prefixes


@pytest.mark.parametrize(
    ("prefix", "delimiter"),
    [("", ""), ("", "/"), ("photos/", "/"), ("photos/2024/", "/"), ("photos/20", "0")],
)
@pytest.mark.parametrize("page_size", [1, 4, 1000])
def test_list_v2_pages(
    s3: S3Cluster, listing_bucket: str, prefix: str, delimiter: str, page_size: int
) -> None:
    paginator = s3.client().get_paginator("list_objects_v2")
    keys, prefixes = [], []
    pages = 0
    for page in paginator.paginate(
        Bucket=listing_bucket,
        Prefix=prefix,
        Delimiter=delimiter,
        PaginationConfig={"PageSize": page_size},
    ):
        pages += 1
        assert page["KeyCount"] <= page_size
        keys += [c["Key"] for c in page.get("Contents", [])]
        prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
    assert (keys, prefixes) == expected_listing(prefix, delimiter)
    if page_size == 1:
        assert pages == len(keys) + len(prefixes)


@pytest.mark.parametrize(("prefix", "delimiter"), [("", ""), ("", "/"), ("photos/", "/")])
def test_list_v1_pages_with_markers(
    s3: S3Cluster, listing_bucket: str, prefix: str, delimiter: str
) -> None:
    client = s3.client()
    keys, prefixes, marker = [], [], ""
    while True:
        page = client.list_objects(
            Bucket=listing_bucket, Prefix=prefix, Delimiter=delimiter, Marker=marker, MaxKeys=3
        )
        keys += [c["Key"] for c in page.get("Contents", [])]
        prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        if not page["IsTruncated"]:
            break
        marker = page["NextMarker"]
    assert (keys, prefixes) == expected_listing(prefix, delimiter)


def test_list_start_after_and_unencoded_keys(s3: S3Cluster, listing_bucket: str) -> None:
    client = s3.client()
    page = client.list_objects_v2(Bucket=listing_bucket, StartAfter="photos/readme")
    assert [c["Key"] for c in page["Contents"]] == ["top a+b", "top/ünï", "zz"]
    # Asked for explicitly, the encoding is left to the caller to undo.
    encoded = client.list_objects_v2(Bucket=listing_bucket, Prefix="top", EncodingType="url")
    keys = [c["Key"] for c in encoded["Contents"]]
    assert keys == ["top%20a%2Bb", "top/%C3%BCn%C3%AF"]
    assert [unquote_plus(k) for k in keys] == ["top a+b", "top/ünï"]
    assert client.list_objects_v2(Bucket=listing_bucket, MaxKeys=0)["KeyCount"] == 0


def test_presigned_get_and_put(s3: S3Cluster, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # SigV4 presigned URLs (Config(signature_version="s3v4")); the default (V2) ones are
    # test_default_presigned_* below.
    http = urllib3.PoolManager()
    client = s3.client(signature_version="s3v4")
    put_url = client.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "presigned"}, ExpiresIn=300
    )
    assert http.request("PUT", put_url, body=LARGE).status == 200
    get_url = client.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "presigned"}, ExpiresIn=300
    )
    answer = http.request("GET", get_url)
    assert answer.status == 200 and answer.data == LARGE
    tampered = get_url.replace("presigned", "presigneX")
    assert http.request("GET", tampered).status == 403
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: past)
    expired = client.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "presigned"}, ExpiresIn=60
    )
    answer = http.request("GET", expired)
    assert answer.status == 403 and b"expired" in answer.data


def default_presigner(s3: S3Cluster):  # type: ignore[no-untyped-def]
    """boto3 with nothing but the endpoint, the region and path-style addressing: it
    presigns S3 URLs with signature version 2 (AWSAccessKeyId, Signature, Expires)."""
    return boto3.client(
        "s3",
        endpoint_url=s3.endpoint(),
        region_name="us-east-1",
        aws_access_key_id=s3.access_key,
        aws_secret_access_key=s3.secret_key,
        config=Config(s3={"addressing_style": "path"}),
    )


PRESIGN_KEY = "dir/a key+ü%.txt"


def test_default_presigned_get_and_put_with_urllib(s3: S3Cluster, bucket: str) -> None:
    presigner = default_presigner(s3)
    params = {"Bucket": bucket, "Key": PRESIGN_KEY}
    put_url = presigner.generate_presigned_url("put_object", Params=params, ExpiresIn=300)
    assert "AWSAccessKeyId=" in put_url and "X-Amz-Signature" not in put_url  # really V2
    # urllib sends a Content-Type with a body, so presign that one (as with AWS)
    typed_url = presigner.generate_presigned_url(
        "put_object", Params={**params, "ContentType": "text/plain"}, ExpiresIn=300
    )
    put = urllib.request.Request(
        typed_url, data=LARGE, method="PUT", headers={"Content-Type": "text/plain"}
    )
    with urllib.request.urlopen(put, timeout=30) as answer:
        assert answer.status == 200
    get_url = presigner.generate_presigned_url("get_object", Params=params, ExpiresIn=300)
    with urllib.request.urlopen(get_url, timeout=30) as answer:
        assert answer.status == 200 and answer.read() == LARGE
        assert answer.headers["Content-Type"] == "text/plain"
    head = s3.client().head_object(**params)
    assert head["ContentLength"] == len(LARGE) and head["ContentType"] == "text/plain"
    # a signed response override (a sub-resource of the V2 canonical resource)
    override_url = presigner.generate_presigned_url(
        "get_object",
        Params={**params, "ResponseContentDisposition": 'attachment; filename="a b.txt"'},
        ExpiresIn=300,
    )
    with urllib.request.urlopen(override_url, timeout=30) as answer:
        assert answer.headers["Content-Disposition"] == 'attachment; filename="a b.txt"'
    # the wrong Content-Type is a different request than the one signed
    wrong = urllib.request.Request(
        typed_url, data=SMALL, method="PUT", headers={"Content-Type": "text/html"}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(wrong, timeout=30)
    assert refused.value.code == 403 and b"SignatureDoesNotMatch" in refused.value.read()
    tampered = get_url.replace("dir/", "dis/")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(tampered, timeout=30)
    assert refused.value.code == 403 and b"SignatureDoesNotMatch" in refused.value.read()
    expired = presigner.generate_presigned_url("get_object", Params=params, ExpiresIn=-60)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(expired, timeout=30)
    body = refused.value.read()
    assert refused.value.code == 403 and b"AccessDenied" in body and b"Request has expired" in body
    unknown = boto3.client(
        "s3",
        endpoint_url=s3.endpoint(),
        region_name="us-east-1",
        aws_access_key_id="CKNOSUCHKEY",
        aws_secret_access_key="whatever",
        config=Config(s3={"addressing_style": "path"}),
    ).generate_presigned_url("get_object", Params=params, ExpiresIn=300)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(unknown, timeout=30)
    assert refused.value.code == 403 and b"InvalidAccessKeyId" in refused.value.read()


async def test_default_presigned_get_and_put_with_aiohttp(s3: S3Cluster, bucket: str) -> None:
    presigner = default_presigner(s3)
    params = {"Bucket": bucket, "Key": "aio/" + PRESIGN_KEY}
    put_url = presigner.generate_presigned_url("put_object", Params=params, ExpiresIn=300)
    get_url = presigner.generate_presigned_url("get_object", Params=params, ExpiresIn=300)
    async with aiohttp.ClientSession() as session:
        # no Content-Type: none was signed
        async with session.put(put_url, data=SMALL, skip_auto_headers=["Content-Type"]) as put:
            assert put.status == 200, await put.text()
        async with session.get(get_url) as get:
            assert get.status == 200 and await get.read() == SMALL
        expired = presigner.generate_presigned_url("put_object", Params=params, ExpiresIn=-1)
        async with session.put(expired, data=b"late", skip_auto_headers=["Content-Type"]) as put:
            assert put.status == 403 and "Request has expired" in await put.text()
    assert s3.client().get_object(**params)["Body"].read() == SMALL


def test_sigv2_authorization_header(s3: S3Cluster, bucket: str) -> None:
    # `Authorization: AWS key:sig` signs the same string as a V2 URL
    client = s3.client(signature_version="s3")
    client.put_object(Bucket=bucket, Key="v2 header+ü", Body=SMALL, ContentType="text/x-v2")
    got = client.get_object(Bucket=bucket, Key="v2 header+ü")
    assert got["Body"].read() == SMALL and got["ContentType"] == "text/x-v2"
    assert any(o["Key"] == "v2 header+ü" for o in client.list_objects_v2(Bucket=bucket)["Contents"])
    with pytest.raises(ClientError) as wrong:
        s3.client(secret_key="not-the-secret", signature_version="s3").head_bucket(Bucket=bucket)
    assert code_of(wrong)[1] == 403


def test_request_time_too_skewed(s3: S3Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=20)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: past)
    with pytest.raises(ClientError) as skewed:
        s3.client(retries={"max_attempts": 1}).list_buckets()
    assert code_of(skewed) == ("RequestTimeTooSkewed", 403)


def cairn(s3: S3Cluster, *args: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-m", "cairn", *args, "--cluster", str(s3.base_dir), "--json"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_ownership_and_keys(s3: S3Cluster) -> None:
    admin = s3.client()
    admin.create_bucket(Bucket="admins-own")
    made = cairn(s3, "user", "create", "bob")
    bob = s3.client(0, str(made["access_key"]), str(made["secret_key"]))
    assert bob.list_buckets()["Buckets"] == []
    bob.create_bucket(Bucket="bobs-own")
    bob.put_object(Bucket="bobs-own", Key="k", Body=b"bob's")
    assert [b["Name"] for b in bob.list_buckets()["Buckets"]] == ["bobs-own"]
    for call in (
        lambda: bob.list_objects_v2(Bucket="admins-own"),
        lambda: bob.put_object(Bucket="admins-own", Key="k", Body=b"x"),
        lambda: bob.delete_bucket(Bucket="admins-own"),
        lambda: bob.copy_object(
            Bucket="bobs-own", Key="c", CopySource={"Bucket": "admins-own", "Key": "k"}
        ),
    ):
        with pytest.raises(ClientError) as denied:
            call()
        assert code_of(denied) == ("AccessDenied", 403)
    assert admin.get_object(Bucket="bobs-own", Key="k")["Body"].read() == b"bob's"  # admin
    with pytest.raises(ClientError) as wrong_secret:
        s3.client(0, str(made["access_key"]), "not-the-secret-key").list_buckets()
    assert code_of(wrong_secret) == ("SignatureDoesNotMatch", 403)
    with pytest.raises(ClientError) as unknown:
        s3.client(0, "CKNOSUCHKEY000000000", "whatever-secret").list_buckets()
    assert code_of(unknown) == ("InvalidAccessKeyId", 403)
    listed = cairn(s3, "user", "list")
    assert {u["user"] for u in listed["users"]} >= {"admin", "bob"}  # type: ignore[union-attr,index]
    cairn(s3, "user", "key-delete", str(made["access_key"]))
    fresh = s3.client(2, str(made["access_key"]), str(made["secret_key"]))  # no cached key there
    with pytest.raises(ClientError) as revoked:
        fresh.list_buckets()
    assert code_of(revoked) == ("InvalidAccessKeyId", 403)
