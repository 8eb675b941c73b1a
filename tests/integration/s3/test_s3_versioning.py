"""Versioning through boto3 (and one aws cli call) against a real 3-node cluster:
PutBucketVersioning (Enabled, Suspended, refused statuses, malformed XML, MFA delete, a
non-owner), versions and delete markers on GET/HEAD/DELETE, DeleteObjects with version
ids, ListObjectVersions with its markers through boto3's paginator, `null` versions, and
a listing whose pages meet a shard boundary after a split."""

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSRequest
from botocore.exceptions import ClientError

from .conftest import S3Cluster

pytestmark = pytest.mark.xdist_group("processes")

TOOL_TIMEOUT_S = 120
DIGEST_HEADERS = ("content-md5", "content-length", "x-amz-sdk-checksum-algorithm")


def code_of(error: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    response = error.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def headers_of(error: pytest.ExceptionInfo[ClientError]) -> dict[str, str]:
    return error.value.response["ResponseMetadata"]["HTTPHeaders"]  # type: ignore[no-any-return]


def cairn(s3: S3Cluster, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "cairn", *args, "--cluster", str(s3.base_dir), "--json"],
        capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def all_versions(client: Any, bucket: str, **kwargs: Any) -> list[tuple[str, str, bool, bool]]:
    """(key, version id, is latest, is a delete marker) of every version, in S3's order
    (key order, newest first), gathered through boto3's paginator."""
    out: list[tuple[str, str, bool, bool]] = []
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket, **kwargs):
        entries = [(v, False) for v in page.get("Versions", [])]
        entries += [(m, True) for m in page.get("DeleteMarkers", [])]
        # boto3 gives objects and markers as two lists. Rebuild the page's order (key
        # order, newest first) from them, which holds while no key has a delete marker
        # below its newest version: true of every key these tests list.
        listed = [(e["Key"], e["VersionId"], e["IsLatest"], marker) for e, marker in entries]
        out += sorted(listed, key=lambda item: (item[0].encode(), not item[2]))
    return out


@pytest.fixture(scope="module")
def versioned(s3: S3Cluster) -> Iterator[str]:
    client = s3.client()
    client.create_bucket(Bucket="versioned")
    assert "Status" not in client.get_bucket_versioning(Bucket="versioned")
    client.put_bucket_versioning(Bucket="versioned", VersioningConfiguration={"Status": "Enabled"})
    assert client.get_bucket_versioning(Bucket="versioned")["Status"] == "Enabled"
    yield "versioned"


def test_versions_delete_markers_and_reads_by_version(s3: S3Cluster, versioned: str) -> None:
    client = s3.client()
    ids = [
        client.put_object(Bucket=versioned, Key="doc", Body=f"body {n}".encode())["VersionId"]
        for n in range(3)
    ]
    assert len(set(ids)) == 3 and "null" not in ids
    deleted = client.delete_object(Bucket=versioned, Key="doc")
    assert deleted["DeleteMarker"] is True
    marker = deleted["VersionId"]
    assert marker not in ids

    with pytest.raises(ClientError) as gone:
        client.get_object(Bucket=versioned, Key="doc")
    assert code_of(gone) == ("NoSuchKey", 404)
    assert headers_of(gone)["x-amz-delete-marker"] == "true"
    assert headers_of(gone)["x-amz-version-id"] == marker
    with pytest.raises(ClientError) as head_gone:
        client.head_object(Bucket=versioned, Key="doc")
    assert code_of(head_gone)[1] == 404
    assert headers_of(head_gone)["x-amz-delete-marker"] == "true"
    with pytest.raises(ClientError) as of_marker:
        client.get_object(Bucket=versioned, Key="doc", VersionId=marker)
    assert code_of(of_marker) == ("MethodNotAllowed", 405)
    assert headers_of(of_marker)["x-amz-delete-marker"] == "true"
    with pytest.raises(ClientError) as head_marker:
        client.head_object(Bucket=versioned, Key="doc", VersionId=marker)
    assert code_of(head_marker)[1] == 405
    for n, version_id in enumerate(ids):
        got = client.get_object(Bucket=versioned, Key="doc", VersionId=version_id)
        assert got["Body"].read() == f"body {n}".encode()
        assert got["VersionId"] == version_id
    assert client.head_object(Bucket=versioned, Key="doc", VersionId=ids[0])["ContentLength"] == 6

    listing = client.list_object_versions(Bucket=versioned, Prefix="doc")
    assert [(v["VersionId"], v["IsLatest"]) for v in listing["Versions"]] == [
        (ids[2], False),
        (ids[1], False),
        (ids[0], False),
    ]
    assert [(m["Key"], m["VersionId"], m["IsLatest"]) for m in listing["DeleteMarkers"]] == [
        ("doc", marker, True)
    ]
    version = listing["Versions"][0]
    assert version["Size"] == 6 and version["StorageClass"] == "STANDARD"
    assert version["ETag"].startswith('"') and version["Owner"]["ID"] == "admin"
    assert listing["DeleteMarkers"][0]["Owner"]["ID"] == "admin"
    assert listing["IsTruncated"] is False and listing["MaxKeys"] == 1000

    # DELETE ?versionId removes exactly that version, a marker included.
    removed = client.delete_object(Bucket=versioned, Key="doc", VersionId=ids[1])
    assert removed["VersionId"] == ids[1] and not removed.get("DeleteMarker")
    with pytest.raises(ClientError) as no_version:
        client.get_object(Bucket=versioned, Key="doc", VersionId=ids[1])
    assert code_of(no_version)[1] == 404
    left = all_versions(client, versioned, Prefix="doc")
    assert left == [
        ("doc", marker, True, True),
        ("doc", ids[2], False, False),
        ("doc", ids[0], False, False),
    ]
    unmarked = client.delete_object(Bucket=versioned, Key="doc", VersionId=marker)
    assert unmarked["DeleteMarker"] is True and unmarked["VersionId"] == marker
    assert client.get_object(Bucket=versioned, Key="doc")["Body"].read() == b"body 2"


def test_paginating_versions_gives_each_exactly_once(s3: S3Cluster, versioned: str) -> None:
    client = s3.client()
    expected: list[tuple[str, str, bool, bool]] = []
    for key, puts, delete in (
        ("page/a", 3, False),
        ("page/b b", 1, True),
        ("page/c/inner", 2, False),
        ("page/c/more", 1, False),
        ("page/ü+%", 2, True),
        ("page/z", 1, False),
    ):
        ids = [client.put_object(Bucket=versioned, Key=key, Body=b"x")["VersionId"]]
        ids += [
            client.put_object(Bucket=versioned, Key=key, Body=b"y")["VersionId"]
            for _ in range(puts - 1)
        ]
        newest_first = [(key, v, False, False) for v in reversed(ids)]
        if delete:
            marker = client.delete_object(Bucket=versioned, Key=key)["VersionId"]
            newest_first.insert(0, (key, marker, False, True))
        first = newest_first[0]
        newest_first[0] = (first[0], first[1], True, first[3])
        expected += newest_first
    expected.sort(key=lambda item: item[0].encode())  # stable: newest first per key

    whole = all_versions(client, versioned, Prefix="page/")
    assert whole == expected
    for page_size in (1, 2, 3, 5):
        paged = all_versions(
            client, versioned, Prefix="page/", PaginationConfig={"PageSize": page_size}
        )
        assert paged == expected, page_size
        assert len(set(paged)) == len(paged)

    first = client.list_object_versions(Bucket=versioned, Prefix="page/", MaxKeys=2)
    assert first["IsTruncated"] is True
    assert (first["NextKeyMarker"], first["NextVersionIdMarker"]) == ("page/a", expected[1][1])
    second = client.list_object_versions(
        Bucket=versioned,
        Prefix="page/",
        MaxKeys=2,
        KeyMarker=first["NextKeyMarker"],
        VersionIdMarker=first["NextVersionIdMarker"],
    )
    assert [v["VersionId"] for v in second["Versions"]] == [expected[2][1]]
    assert second["KeyMarker"] == "page/a"

    rolled = client.list_object_versions(Bucket=versioned, Prefix="page/", Delimiter="/")
    assert [p["Prefix"] for p in rolled["CommonPrefixes"]] == ["page/c/"]
    assert "page/c/inner" not in {v["Key"] for v in rolled["Versions"]}
    by_one = all_versions(
        client, versioned, Prefix="page/", Delimiter="/", PaginationConfig={"PageSize": 1}
    )
    assert by_one == [item for item in expected if not item[0].startswith("page/c/")]

    with pytest.raises(ClientError) as lone_version_marker:
        client.list_object_versions(Bucket=versioned, VersionIdMarker=expected[0][1])
    assert code_of(lone_version_marker) == ("InvalidArgument", 400)


def test_delete_objects_passes_version_ids(s3: S3Cluster, versioned: str) -> None:
    client = s3.client()
    v1 = client.put_object(Bucket=versioned, Key="multi/one", Body=b"1")["VersionId"]
    v2 = client.put_object(Bucket=versioned, Key="multi/one", Body=b"2")["VersionId"]
    v_two = client.put_object(Bucket=versioned, Key="multi/two", Body=b"x")["VersionId"]
    result = client.delete_objects(
        Bucket=versioned,
        Delete={"Objects": [{"Key": "multi/one", "VersionId": v1}, {"Key": "multi/two"}]},
    )
    deleted = {d["Key"]: d for d in result["Deleted"]}
    assert deleted["multi/one"]["VersionId"] == v1
    assert not deleted["multi/one"].get("DeleteMarker")
    assert deleted["multi/two"]["DeleteMarker"] is True
    marker = deleted["multi/two"]["DeleteMarkerVersionId"]
    assert all_versions(client, versioned, Prefix="multi/") == [
        ("multi/one", v2, True, False),
        ("multi/two", marker, True, True),
        ("multi/two", v_two, False, False),
    ]
    undo = client.delete_objects(
        Bucket=versioned, Delete={"Objects": [{"Key": "multi/two", "VersionId": marker}]}
    )
    assert undo["Deleted"][0]["DeleteMarker"] is True
    assert undo["Deleted"][0]["DeleteMarkerVersionId"] == marker
    assert client.get_object(Bucket=versioned, Key="multi/two")["Body"].read() == b"x"


def test_unversioned_and_suspended_versions_are_null(s3: S3Cluster) -> None:
    client = s3.client()
    client.create_bucket(Bucket="nullable")
    client.put_object(Bucket="nullable", Key="k", Body=b"plain")
    listing = client.list_object_versions(Bucket="nullable")
    assert [(v["Key"], v["VersionId"], v["IsLatest"]) for v in listing["Versions"]] == [
        ("k", "null", True)
    ]
    client.put_bucket_versioning(Bucket="nullable", VersioningConfiguration={"Status": "Enabled"})
    kept = client.put_object(Bucket="nullable", Key="k", Body=b"kept")["VersionId"]
    client.put_bucket_versioning(Bucket="nullable", VersioningConfiguration={"Status": "Suspended"})
    assert client.get_bucket_versioning(Bucket="nullable")["Status"] == "Suspended"
    client.put_object(Bucket="nullable", Key="k", Body=b"s1")
    client.put_object(Bucket="nullable", Key="k", Body=b"s2")  # replaces the null version
    assert all_versions(client, "nullable") == [
        ("k", "null", True, False),
        ("k", kept, False, False),
    ]
    assert client.get_object(Bucket="nullable", Key="k", VersionId="null")["Body"].read() == b"s2"
    client.delete_object(Bucket="nullable", Key="k")  # a null delete marker
    assert all_versions(client, "nullable") == [
        ("k", "null", True, True),
        ("k", kept, False, False),
    ]
    assert client.get_object(Bucket="nullable", Key="k", VersionId=kept)["Body"].read() == b"kept"


def test_bad_versioning_configurations_are_refused(s3: S3Cluster, versioned: str) -> None:
    client = s3.client()
    with pytest.raises(ClientError) as bogus:
        client.put_bucket_versioning(Bucket=versioned, VersioningConfiguration={"Status": "Off"})
    assert code_of(bogus) == ("IllegalVersioningConfigurationException", 400)
    with pytest.raises(ClientError) as mfa:
        client.put_bucket_versioning(
            Bucket=versioned, VersioningConfiguration={"Status": "Enabled", "MFADelete": "Enabled"}
        )
    assert code_of(mfa) == ("NotImplemented", 501)
    client.put_bucket_versioning(
        Bucket=versioned, VersioningConfiguration={"Status": "Enabled", "MFADelete": "Disabled"}
    )
    malformed = s3.client()
    malformed.meta.events.register(
        "before-sign.s3.PutBucketVersioning",
        replace_body(b"<VersioningConfiguration><Status>Enabled</Status>"),
    )
    with pytest.raises(ClientError) as broken:
        malformed.put_bucket_versioning(
            Bucket=versioned, VersioningConfiguration={"Status": "Enabled"}
        )
    assert code_of(broken) == ("MalformedXML", 400)
    with pytest.raises(ClientError) as missing:
        client.put_bucket_versioning(Bucket="no-such-bucket-v", VersioningConfiguration={})
    assert code_of(missing) == ("NoSuchBucket", 404)
    assert client.get_bucket_versioning(Bucket=versioned)["Status"] == "Enabled"


def replace_body(body: bytes) -> Callable[..., None]:
    """A botocore hook that sends `body` instead of the document it built (and drops the
    digests of the old one, which the gateway would check first)."""

    def hook(request: AWSRequest, **_: object) -> None:
        request.data = body
        for name in list(request.headers.keys()):
            lower = name.lower()
            if lower in DIGEST_HEADERS or lower.startswith("x-amz-checksum-"):
                del request.headers[name]
        request.headers["Content-Length"] = str(len(body))

    return hook


def test_only_the_owner_or_an_admin_sets_versioning(s3: S3Cluster, versioned: str) -> None:
    made = cairn(s3, "user", "create", "carol")
    carol = s3.client(0, str(made["access_key"]), str(made["secret_key"]))
    with pytest.raises(ClientError) as denied:
        carol.put_bucket_versioning(
            Bucket=versioned, VersioningConfiguration={"Status": "Suspended"}
        )
    assert code_of(denied) == ("AccessDenied", 403)
    with pytest.raises(ClientError) as denied_list:
        carol.list_object_versions(Bucket=versioned)
    assert code_of(denied_list) == ("AccessDenied", 403)
    assert s3.client().get_bucket_versioning(Bucket=versioned)["Status"] == "Enabled"
    carol.create_bucket(Bucket="carols")
    carol.put_bucket_versioning(Bucket="carols", VersioningConfiguration={"Status": "Enabled"})
    admin = s3.client()
    admin.put_bucket_versioning(Bucket="carols", VersioningConfiguration={"Status": "Suspended"})
    assert carol.get_bucket_versioning(Bucket="carols")["Status"] == "Suspended"
    version = carol.put_object(Bucket="carols", Key="k", Body=b"c").get("VersionId", "null")
    listing = carol.list_object_versions(Bucket="carols")
    assert [(v["VersionId"], v["Owner"]["ID"]) for v in listing["Versions"]] == [(version, "carol")]


def test_aws_cli_list_object_versions(s3: S3Cluster, versioned: str, tmp_path: Path) -> None:
    aws = shutil.which("aws", path="/usr/bin:/bin") or shutil.which("aws")
    if aws is None:
        pytest.fail("aws is not installed: scripts/bootstrap installs the Debian package")
    client = s3.client()
    v1 = client.put_object(Bucket=versioned, Key="cli/key", Body=b"1")["VersionId"]
    v2 = client.put_object(Bucket=versioned, Key="cli/key", Body=b"2")["VersionId"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID=s3.access_key,
        AWS_SECRET_ACCESS_KEY=s3.secret_key,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=str(tmp_path / "aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "aws-credentials"),
        HOME=str(tmp_path),
    )
    (tmp_path / "aws-config").write_text("[default]\ns3 =\n  addressing_style = path\n")
    argv = [aws, "--endpoint-url", s3.endpoint(), "s3api", "list-object-versions"]
    argv += ["--bucket", versioned, "--prefix", "cli/", "--output", "json"]
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert [(v["Key"], v["VersionId"], v["IsLatest"]) for v in listed["Versions"]] == [
        ("cli/key", v2, True),
        ("cli/key", v1, False),
    ]


def test_pages_that_meet_a_shard_boundary(s3: S3Cluster) -> None:
    """After a split at `d/5`, the first shard holds a (2 versions), b and d/1, the second
    d/5 and z: pages that fill up exactly at the boundary still name the right next
    markers, and a common prefix spanning the boundary is listed once."""
    client = s3.client()
    bucket = "split-versions"
    client.create_bucket(Bucket=bucket)
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    for key in ("a", "a", "b", "d/1", "d/5", "z", "z"):
        client.put_object(Bucket=bucket, Key=key, Body=key.encode())
    client.delete_object(Bucket=bucket, Key="b")
    before = all_versions(client, bucket)
    assert len(before) == 8
    cairn_split = [sys.executable, "-m", "cairn", "shard", "split", f"{bucket}/d/5"]
    done = subprocess.run(
        [*cairn_split, "--cluster", str(s3.base_dir)],
        capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    listed = cairn(s3, "shard", "list")
    assert len(listed["shards"]) == 2

    assert all_versions(client, bucket) == before
    # The first shard holds a, a, b (marker), b, d/1: five versions.
    exact = client.list_object_versions(Bucket=bucket, MaxKeys=5)
    assert exact["IsTruncated"] is True
    assert (exact["NextKeyMarker"], exact["NextVersionIdMarker"]) == ("d/1", before[4][1])
    rest = client.list_object_versions(Bucket=bucket, KeyMarker="d/1", VersionIdMarker=before[4][1])
    assert [v["Key"] for v in rest["Versions"]] == ["d/5", "z", "z"]
    for page_size in range(1, 9):
        paged = all_versions(client, bucket, PaginationConfig={"PageSize": page_size})
        assert paged == before, page_size

    # With a delimiter, d/ is in both shards: once in the listing, and a page that ends
    # on it at the boundary (a, a, b, b, d/) resumes after it.
    rolled = client.list_object_versions(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in rolled["CommonPrefixes"]] == ["d/"]
    at_boundary = client.list_object_versions(Bucket=bucket, Delimiter="/", MaxKeys=5)
    assert at_boundary["IsTruncated"] is True
    assert at_boundary["NextKeyMarker"] == "d/" and "NextVersionIdMarker" not in at_boundary
    after = client.list_object_versions(Bucket=bucket, Delimiter="/", KeyMarker="d/")
    assert "CommonPrefixes" not in after
    assert [v["Key"] for v in after["Versions"]] == ["z", "z"]
