"""The pure parts of S3 versioning: the routes of PutBucketVersioning and
ListObjectVersions, VersioningConfiguration parsing, the ListVersionsResult document and
the DeleteObjects result for versions and delete markers."""

import xml.etree.ElementTree as ET

import pytest

from cairn.gateway.s3 import xml
from cairn.gateway.s3.endpoint import Op, parse_endpoint
from cairn.gateway.s3.errors import S3Error

NS = {"s": xml.NS}
DOC = (
    b'<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
    b"%s</VersioningConfiguration>"
)


def test_routes() -> None:
    assert parse_endpoint("PUT", "/b", [(b"versioning", b"")], {}).op == Op.PUT_BUCKET_VERSIONING
    assert parse_endpoint("GET", "/b", [(b"versioning", b"")], {}).op == Op.GET_BUCKET_VERSIONING
    listed = parse_endpoint("GET", "/b", [(b"versions", b""), (b"key-marker", b"k")], {})
    assert (listed.op, listed.params["key-marker"]) == (Op.LIST_OBJECT_VERSIONS, "k")
    with pytest.raises(S3Error) as caught:
        parse_endpoint("DELETE", "/b", [(b"versioning", b"")], {})
    assert caught.value.code == "NotImplemented"


@pytest.mark.parametrize(
    ("inner", "status"),
    [
        (b"<Status>Enabled</Status>", "Enabled"),
        (b"<Status> Suspended </Status>", "Suspended"),
        (b"<Status>Enabled</Status><MfaDelete>Disabled</MfaDelete>", "Enabled"),
    ],
)
def test_versioning_configuration(inner: bytes, status: str) -> None:
    assert xml.parse_versioning(DOC % inner) == status


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"", "MalformedXML"),
        (b"<VersioningConfiguration><Status>Enabled</Status>", "MalformedXML"),
        (b"<Other><Status>Enabled</Status></Other>", "MalformedXML"),
        (DOC % b"<Status>Enabled</Status><Status>Enabled</Status>", "MalformedXML"),
        (DOC % b"<Status>Disabled</Status>", "IllegalVersioningConfigurationException"),
        (DOC % b"<Status>enabled</Status>", "IllegalVersioningConfigurationException"),
        (DOC % b"", "IllegalVersioningConfigurationException"),
        (DOC % b"<Status>Enabled</Status><MfaDelete>Enabled</MfaDelete>", "NotImplemented"),
        (DOC % b"<Status>Enabled</Status><MfaDelete>Maybe</MfaDelete>", "MalformedXML"),
    ],
)
def test_refused_versioning_configurations(body: bytes, code: str) -> None:
    with pytest.raises(S3Error) as caught:
        xml.parse_versioning(body)
    assert caught.value.code == code
    assert caught.value.status == (501 if code == "NotImplemented" else 400)


def test_list_versions_document() -> None:
    evil = "a&b<c>"
    result = xml.VersionsResult(
        bucket="b",
        prefix=evil,
        delimiter="/",
        key_marker="k",
        version_id_marker="v0",
        max_keys=3,
        encoding_type="url",
        owner="alice",
        versions=[
            xml.ListedVersion(evil, "v2", True, 0.5, "e" * 32, 7, False),
            xml.ListedVersion(evil, "v1", False, 0.25, "", 0, True),
            xml.ListedVersion(evil, "null", False, 0.0, "f" * 32, 1, False),
        ],
        common_prefixes=["p/"],
        is_truncated=True,
        next_key_marker=evil,
        next_version_id_marker="null",
    )
    root = ET.fromstring(xml.list_versions(result))
    assert root.tag == f"{{{xml.NS}}}ListVersionsResult"
    assert root.findtext("s:Prefix", namespaces=NS) == evil
    assert root.findtext("s:NextKeyMarker", namespaces=NS) == evil
    assert root.findtext("s:NextVersionIdMarker", namespaces=NS) == "null"
    assert root.findtext("s:IsTruncated", namespaces=NS) == "true"
    assert root.findtext("s:EncodingType", namespaces=NS) == "url"
    assert root.findtext("s:VersionIdMarker", namespaces=NS) == "v0"
    entries = [c for c in root if c.tag.endswith(("}Version", "}DeleteMarker"))]
    assert [e.tag.rsplit("}", 1)[1] for e in entries] == ["Version", "DeleteMarker", "Version"]
    first, marker, null = entries
    assert first.findtext("s:IsLatest", namespaces=NS) == "true"
    assert first.findtext("s:ETag", namespaces=NS) == '"' + "e" * 32 + '"'
    assert first.findtext("s:StorageClass", namespaces=NS) == "STANDARD"
    assert first.findtext("s:Owner/s:ID", namespaces=NS) == "alice"
    assert marker.find("s:ETag", NS) is None and marker.find("s:Size", NS) is None
    assert marker.findtext("s:VersionId", namespaces=NS) == "v1"
    assert null.findtext("s:VersionId", namespaces=NS) == "null"
    assert [p.text for p in root.findall("s:CommonPrefixes/s:Prefix", NS)] == ["p/"]


def test_untruncated_versions_document_has_no_next_markers() -> None:
    result = xml.VersionsResult("b", "", "", "", "", 1000, None, "o", [], [], False, None, None)
    root = ET.fromstring(xml.list_versions(result))
    assert root.find("s:NextKeyMarker", NS) is None
    assert root.find("s:NextVersionIdMarker", NS) is None
    assert root.find("s:Delimiter", NS) is None and root.find("s:EncodingType", NS) is None
    assert root.findtext("s:KeyMarker", namespaces=NS) == ""


def test_delete_result_for_versions_and_markers() -> None:
    outcomes = [
        xml.DeleteOutcome("removed", "v1"),
        xml.DeleteOutcome("marked", None, True, "m1"),
        xml.DeleteOutcome("unmarked", "m2", True, "m2"),
        xml.DeleteOutcome("plain"),
        xml.DeleteOutcome("nope", "v9", error_code="AccessDenied", error_message="no"),
    ]
    root = ET.fromstring(xml.delete_result(outcomes, quiet=False))
    deleted = {d.findtext("s:Key", namespaces=NS): d for d in root.findall("s:Deleted", NS)}
    assert deleted["removed"].findtext("s:VersionId", namespaces=NS) == "v1"
    assert deleted["removed"].find("s:DeleteMarker", NS) is None
    assert deleted["marked"].find("s:VersionId", NS) is None
    assert deleted["marked"].findtext("s:DeleteMarker", namespaces=NS) == "true"
    assert deleted["marked"].findtext("s:DeleteMarkerVersionId", namespaces=NS) == "m1"
    assert deleted["unmarked"].findtext("s:VersionId", namespaces=NS) == "m2"
    assert deleted["unmarked"].findtext("s:DeleteMarkerVersionId", namespaces=NS) == "m2"
    assert [c.tag.rsplit("}", 1)[1] for c in deleted["plain"]] == ["Key"]
    assert root.findtext("s:Error/s:VersionId", namespaces=NS) == "v9"
