"""Multipart upload against a real 3-node cluster with boto3: upload_file/download_file
through the transfer manager, the low-level calls with S3's ETag rule, ListParts,
ListMultipartUploads with prefixes and pages, Abort, the errors S3 answers
(InvalidPart, InvalidPartOrder, EntityTooSmall, NoSuchUpload, MalformedXML),
UploadPartCopy (by chunk reference and re-chunked), GC sparing the parts of an upload in
progress, the shard leader aborting an abandoned upload, and GET/HEAD by partNumber."""

import asyncio
import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from cairn.localcluster import LocalCluster
from cairn.localcluster.harness import load_credentials
from cairn.node.gc_coordinator import collect_garbage
from cairn.node.meta_client import MetaClient
from cairn.node.upload_client import UploadClient
from cairn.wire import RpcPool, derive_auth_key

from .conftest import SECRET, S3Cluster

pytestmark = pytest.mark.xdist_group("processes")

MIB = 1024 * 1024
PART = 5 * MIB
EXPIRY_S = 12
"""The cluster's multipart_expiry_s: short, so the expiry test is quick (scans every 3 s)."""


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Cluster]:
    """The conftest's cluster, with a short multipart expiry."""
    base = tmp_path_factory.mktemp("s3mp")
    settings = {"multipart_expiry_s": str(EXPIRY_S)}
    with LocalCluster(base, 3, secret=SECRET, raft=True, settings=settings) as local:
        access_key, secret_key = load_credentials(base)
        yield S3Cluster(local, access_key, secret_key)


@pytest.fixture(scope="module")
def bucket(s3: S3Cluster) -> str:
    s3.client().create_bucket(Bucket="multi")
    return "multi"


def s3_etag(parts: list[bytes]) -> str:
    digests = b"".join(hashlib.md5(p).digest() for p in parts)
    return f'"{hashlib.md5(digests).hexdigest()}-{len(parts)}"'


def code_of(error: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    response = error.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def run_with_meta(s3: S3Cluster, work):  # type: ignore[no-untyped-def]
    async def main():  # type: ignore[no-untyped-def]
        pool = RpcPool("multipart-test", derive_auth_key(SECRET))
        try:
            meta = MetaClient(pool, [n.rpc_address for n in s3.local.voters])
            return await work(pool, meta)
        finally:
            await pool.close()

    return asyncio.run(main())


def test_upload_file_and_download_file(s3: S3Cluster, bucket: str, tmp_path: Path) -> None:
    data = os.urandom(4 * PART - 1000)  # four parts, the last a little short
    source, target = tmp_path / "up.bin", tmp_path / "down.bin"
    source.write_bytes(data)
    config = TransferConfig(multipart_threshold=PART, multipart_chunksize=PART)
    client = s3.client()
    client.upload_file(str(source), bucket, "big/file.bin", Config=config)
    head = client.head_object(Bucket=bucket, Key="big/file.bin")
    parts = [data[i : i + PART] for i in range(0, len(data), PART)]
    assert len(parts) == 4 and head["ETag"] == s3_etag(parts)
    assert head["ContentLength"] == len(data)
    client.download_file(bucket, "big/file.bin", str(target), Config=config)
    assert target.read_bytes() == data
    ranged = client.get_object(
        Bucket=bucket, Key="big/file.bin", Range=f"bytes={PART - 5}-{PART + 4}"
    )
    assert ranged["Body"].read() == data[PART - 5 : PART + 5]


def test_low_level_calls_list_parts_and_complete(s3: S3Cluster, bucket: str) -> None:
    client = s3.client()
    created = client.create_multipart_upload(
        Bucket=bucket, Key="low/level", ContentType="text/x-test", Metadata={"colour": "blue"}
    )
    upload_id = created["UploadId"]
    assert created["Key"] == "low/level" and upload_id
    bodies = [os.urandom(PART), os.urandom(PART + 123), b"tail bytes"]
    etags = []
    for number, body in enumerate(bodies, 1):
        reply = client.upload_part(
            Bucket=bucket, Key="low/level", UploadId=upload_id, PartNumber=number, Body=body
        )
        assert reply["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
        etags.append(reply["ETag"])
    # a re-upload of a part replaces it
    bodies[2] = b"the real tail"
    etags[2] = client.upload_part(
        Bucket=bucket, Key="low/level", UploadId=upload_id, PartNumber=3, Body=bodies[2]
    )["ETag"]
    listed = client.list_parts(Bucket=bucket, Key="low/level", UploadId=upload_id)
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in listed["Parts"]] == [
        (n, e, len(b)) for n, (e, b) in enumerate(zip(etags, bodies, strict=True), 1)
    ]
    page = client.list_parts(Bucket=bucket, Key="low/level", UploadId=upload_id, MaxParts=2)
    assert page["IsTruncated"] and page["NextPartNumberMarker"] == 2
    rest = client.list_parts(Bucket=bucket, Key="low/level", UploadId=upload_id, PartNumberMarker=2)
    assert [p["PartNumber"] for p in rest["Parts"]] == [3] and not rest["IsTruncated"]
    uploads = client.list_multipart_uploads(Bucket=bucket, Prefix="low/")["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [("low/level", upload_id)]
    with pytest.raises(ClientError):
        client.head_object(Bucket=bucket, Key="low/level")  # not visible before Complete
    done = client.complete_multipart_upload(
        Bucket=bucket,
        Key="low/level",
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]},
    )
    assert done["ETag"] == s3_etag(bodies) and done["Key"] == "low/level"
    got = client.get_object(Bucket=bucket, Key="low/level")
    assert got["Body"].read() == b"".join(bodies)
    assert got["ETag"] == s3_etag(bodies) and got["ContentType"] == "text/x-test"
    assert got["Metadata"] == {"colour": "blue"}
    assert client.list_multipart_uploads(Bucket=bucket, Prefix="low/").get("Uploads", []) == []
    with pytest.raises(ClientError) as gone:
        client.list_parts(Bucket=bucket, Key="low/level", UploadId=upload_id)
    assert code_of(gone) == ("NoSuchUpload", 404)
    _parts_read_back(client, bucket, "low/level", bodies)


def _parts_read_back(client: Any, bucket: str, key: str, bodies: list[bytes]) -> None:
    """GET/HEAD by partNumber serve each part, as S3 does."""
    size = sum(len(b) for b in bodies)
    start = 0
    for number, body in enumerate(bodies, 1):
        got = client.get_object(Bucket=bucket, Key=key, PartNumber=number)
        assert got["Body"].read() == body
        assert got["PartsCount"] == len(bodies) and got["ContentLength"] == len(body)
        assert got["ContentRange"] == f"bytes {start}-{start + len(body) - 1}/{size}"
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
        head = client.head_object(Bucket=bucket, Key=key, PartNumber=number)
        assert head["ContentLength"] == len(body) and head["PartsCount"] == len(bodies)
        start += len(body)
    with pytest.raises(ClientError) as past:
        client.get_object(Bucket=bucket, Key=key, PartNumber=len(bodies) + 1)
    assert code_of(past) == ("InvalidPartNumber", 416)
    with pytest.raises(ClientError) as both:
        client.get_object(Bucket=bucket, Key=key, PartNumber=1, Range="bytes=0-1")
    assert code_of(both) == ("InvalidRequest", 400)
    # A single PUT is one part.
    client.put_object(Bucket=bucket, Key=key + ".single", Body=b"one part")
    single = client.get_object(Bucket=bucket, Key=key + ".single", PartNumber=1)
    assert single["Body"].read() == b"one part" and "PartsCount" not in single
    with pytest.raises(ClientError) as second:
        client.head_object(Bucket=bucket, Key=key + ".single", PartNumber=2)
    assert second.value.response["ResponseMetadata"]["HTTPStatusCode"] == 416


def test_complete_errors(s3: S3Cluster, bucket: str) -> None:
    client = s3.client()
    key = "errors/obj"
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    small = client.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=b"s")
    big = client.upload_part(
        Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=2, Body=os.urandom(PART)
    )

    def complete(parts: list[tuple[int, str]]) -> tuple[str, int]:
        with pytest.raises(ClientError) as failed:
            client.complete_multipart_upload(
                Bucket=bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in parts]},
            )
        return code_of(failed)

    assert complete([(2, big["ETag"]), (1, small["ETag"])]) == ("InvalidPartOrder", 400)
    assert complete([(1, small["ETag"]), (3, big["ETag"])]) == ("InvalidPart", 400)
    assert complete([(1, big["ETag"])]) == ("InvalidPart", 400)
    assert complete([(1, small["ETag"]), (2, big["ETag"])]) == ("EntityTooSmall", 400)
    # MalformedXML: a body that is not a CompleteMultipartUpload document
    url = s3.client(signature_version="s3v4").generate_presigned_url(
        "complete_multipart_upload",
        Params={"Bucket": bucket, "Key": key, "UploadId": upload_id},
        HttpMethod="POST",
    )
    http = urllib3.PoolManager()
    for body in (b"<CompleteMultipartUpload><Part>", b"<Other/>", b""):
        reply = http.request("POST", url, body=body)
        assert reply.status == 400 and b"<Code>MalformedXML</Code>" in reply.data, reply.data
    with pytest.raises(ClientError) as no_head:
        client.head_object(Bucket=bucket, Key=key)
    assert code_of(no_head)[1] == 404  # nothing became visible

    def complete_if(**condition: str) -> tuple[str, int]:
        with pytest.raises(ClientError) as failed:
            client.complete_multipart_upload(
                Bucket=bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": [{"PartNumber": 2, "ETag": big["ETag"]}]},
                **condition,
            )
        return code_of(failed)

    # A fence (issue 8) on Complete is checked, not ignored: no one holds this lock.
    def add_fence(request: Any, **_: Any) -> None:
        request.headers["X-Cairn-Fence"] = "nobody-holds-this:5"

    client.meta.events.register("before-sign.s3.CompleteMultipartUpload", add_fence)
    try:
        assert complete_if() == ("FenceStale", 409)
    finally:
        client.meta.events.unregister("before-sign.s3.CompleteMultipartUpload", add_fence)
    # Conditional completes: checked as the object commits; a failed one leaves the upload.
    assert complete_if(IfMatch='"0123456789abcdef0123456789abcdef"') == ("NoSuchKey", 404)
    existing = client.put_object(Bucket=bucket, Key=key, Body=b"there first")
    assert complete_if(IfNoneMatch="*") == ("PreconditionFailed", 412)
    assert complete_if(IfMatch='"0123456789abcdef0123456789abcdef"') == ("PreconditionFailed", 412)
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == b"there first"
    assert client.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)["Parts"]
    # the small part is fine as the last one; If-Match names the object it replaces
    done = client.complete_multipart_upload(
        Bucket=bucket,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": 2, "ETag": big["ETag"]}]},
        IfMatch=existing["ETag"],
    )
    assert done["ETag"].endswith('-1"')
    # NoSuchUpload for every operation on an unknown upload
    for call in (
        lambda: client.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=b"x"
        ),
        lambda: client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId="0" * 24),
        lambda: client.list_parts(Bucket=bucket, Key=key, UploadId="nope"),
        lambda: client.complete_multipart_upload(
            Bucket=bucket,
            Key="errors/other",
            UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": 2, "ETag": big["ETag"]}]},
        ),
    ):
        with pytest.raises(ClientError) as missing:
            call()
        assert code_of(missing) == ("NoSuchUpload", 404)
    with pytest.raises(ClientError) as bad_number:
        client.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=10_001, Body=b"")
    assert code_of(bad_number) == ("InvalidArgument", 400)


def test_abort_and_list_multipart_uploads(s3: S3Cluster, bucket: str) -> None:
    client = s3.client()
    keys = ["list/a", "list/b/1", "list/b/2", "list/c", "list/c"]
    ids = [client.create_multipart_upload(Bucket=bucket, Key=k)["UploadId"] for k in keys]
    listed = client.list_multipart_uploads(Bucket=bucket, Prefix="list/", Delimiter="/")
    assert [u["Key"] for u in listed["Uploads"]] == ["list/a", "list/c", "list/c"]
    assert [p["Prefix"] for p in listed["CommonPrefixes"]] == ["list/b/"]
    seen: list[tuple[str, str]] = []
    markers: dict[str, str] = {}
    for _ in range(10):
        page = client.list_multipart_uploads(Bucket=bucket, Prefix="list/", MaxUploads=2, **markers)
        seen += [(u["Key"], u["UploadId"]) for u in page.get("Uploads", [])]
        if not page["IsTruncated"]:
            break
        markers = {"KeyMarker": page["NextKeyMarker"], "UploadIdMarker": page["NextUploadIdMarker"]}
    assert seen == sorted(zip(keys, ids, strict=True))
    client.upload_part(Bucket=bucket, Key="list/a", UploadId=ids[0], PartNumber=1, Body=b"x")
    for key, upload_id in zip(keys, ids, strict=True):
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
    assert client.list_multipart_uploads(Bucket=bucket, Prefix="list/").get("Uploads", []) == []
    with pytest.raises(ClientError) as aborted:
        client.upload_part(Bucket=bucket, Key="list/a", UploadId=ids[0], PartNumber=1, Body=b"x")
    assert code_of(aborted) == ("NoSuchUpload", 404)


def test_deleting_a_bucket_takes_its_uploads_with_it(s3: S3Cluster) -> None:
    """As in S3: uploads in progress do not keep a bucket alive, and they are gone with
    it; a bucket created again under the name must not see (or complete) them."""
    client = s3.client()
    client.create_bucket(Bucket="short-lived")
    upload_id = client.create_multipart_upload(Bucket="short-lived", Key="k")["UploadId"]
    part = client.upload_part(
        Bucket="short-lived", Key="k", UploadId=upload_id, PartNumber=1, Body=b"old data"
    )
    client.delete_bucket(Bucket="short-lived")
    client.create_bucket(Bucket="short-lived")
    assert client.list_multipart_uploads(Bucket="short-lived").get("Uploads", []) == []
    with pytest.raises(ClientError) as gone:
        client.complete_multipart_upload(
            Bucket="short-lived",
            Key="k",
            UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
        )
    assert code_of(gone) == ("NoSuchUpload", 404)
    client.delete_bucket(Bucket="short-lived")


def test_upload_part_copy(s3: S3Cluster, bucket: str) -> None:
    client = s3.client()
    source = os.urandom(PART + 3 * MIB)
    client.put_object(Bucket=bucket, Key="copy/source", Body=source)
    small_source = b"a small inline object"
    client.put_object(Bucket=bucket, Key="copy/small", Body=small_source)
    upload_id = client.create_multipart_upload(Bucket=bucket, Key="copy/target")["UploadId"]
    src = {"Bucket": bucket, "Key": "copy/source"}
    whole = client.upload_part_copy(
        Bucket=bucket, Key="copy/target", UploadId=upload_id, PartNumber=1, CopySource=src
    )["CopyPartResult"]
    assert whole["ETag"] == f'"{hashlib.md5(source).hexdigest()}"'
    ranged = client.upload_part_copy(
        Bucket=bucket,
        Key="copy/target",
        UploadId=upload_id,
        PartNumber=2,
        CopySource=src,
        CopySourceRange=f"bytes=100-{PART + 99}",
    )["CopyPartResult"]
    assert ranged["ETag"] == f'"{hashlib.md5(source[100 : PART + 100]).hexdigest()}"'
    tail = client.upload_part_copy(
        Bucket=bucket,
        Key="copy/target",
        UploadId=upload_id,
        PartNumber=3,
        CopySource={"Bucket": bucket, "Key": "copy/small"},
    )["CopyPartResult"]
    with pytest.raises(ClientError) as bad_range:
        client.upload_part_copy(
            Bucket=bucket,
            Key="copy/target",
            UploadId=upload_id,
            PartNumber=4,
            CopySource=src,
            CopySourceRange=f"bytes=0-{len(source)}",
        )
    assert code_of(bad_range) == ("InvalidArgument", 400)
    etags = [whole["ETag"], ranged["ETag"], tail["ETag"]]
    done = client.complete_multipart_upload(
        Bucket=bucket,
        Key="copy/target",
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]},
    )
    expected = [source, source[100 : PART + 100], small_source]
    assert done["ETag"] == s3_etag(expected)
    body = client.get_object(Bucket=bucket, Key="copy/target")["Body"].read()
    assert body == b"".join(expected)
    # a part copied from a multipart object (its MD5 is computed, not its ETag)
    again = client.create_multipart_upload(Bucket=bucket, Key="copy/again")["UploadId"]
    part = client.upload_part_copy(
        Bucket=bucket,
        Key="copy/again",
        UploadId=again,
        PartNumber=1,
        CopySource={"Bucket": bucket, "Key": "copy/target"},
    )["CopyPartResult"]
    assert part["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    client.abort_multipart_upload(Bucket=bucket, Key="copy/again", UploadId=again)


def test_gc_spares_parts_of_an_upload_in_progress(s3: S3Cluster, bucket: str) -> None:
    client = s3.client()
    kept_id = client.create_multipart_upload(Bucket=bucket, Key="gc/kept")["UploadId"]
    bodies = [os.urandom(PART), os.urandom(2 * MIB)]
    etags = [
        client.upload_part(Bucket=bucket, Key="gc/kept", UploadId=kept_id, PartNumber=n, Body=body)[
            "ETag"
        ]
        for n, body in enumerate(bodies, 1)
    ]
    dropped_id = client.create_multipart_upload(Bucket=bucket, Key="gc/dropped")["UploadId"]
    client.upload_part(
        Bucket=bucket, Key="gc/dropped", UploadId=dropped_id, PartNumber=1, Body=os.urandom(2 * MIB)
    )
    client.abort_multipart_upload(Bucket=bucket, Key="gc/dropped", UploadId=dropped_id)

    async def gc(pool: RpcPool, meta: MetaClient) -> int:
        report = await collect_garbage(pool, meta, grace_seconds=0.0)
        assert not report.skipped
        return report.deleted

    assert run_with_meta(s3, gc) > 0  # the aborted upload's chunks went
    client.complete_multipart_upload(
        Bucket=bucket,
        Key="gc/kept",
        UploadId=kept_id,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]},
    )
    assert client.get_object(Bucket=bucket, Key="gc/kept")["Body"].read() == b"".join(bodies)


def test_the_shard_leader_aborts_abandoned_uploads(s3: S3Cluster, bucket: str) -> None:
    async def create_old(_pool: RpcPool, meta: MetaClient) -> str:
        uploads = UploadClient(meta)
        return await uploads.create(bucket, "abandoned", created_s=time.time() - 10 * EXPIRY_S)

    client = s3.client()
    old_id = run_with_meta(s3, create_old)
    fresh_id = client.create_multipart_upload(Bucket=bucket, Key="fresh")["UploadId"]
    deadline = time.monotonic() + EXPIRY_S / 4 + 5
    while time.monotonic() < deadline:
        listed = client.list_multipart_uploads(Bucket=bucket)
        ids = [u["UploadId"] for u in listed.get("Uploads", [])]
        if old_id not in ids:
            break
        time.sleep(0.3)
    assert old_id not in ids and fresh_id in ids
    client.abort_multipart_upload(Bucket=bucket, Key="fresh", UploadId=fresh_id)
