"""The multipart XML documents and request parsing, and x-amz-copy-source-range."""

import xml.etree.ElementTree as ET

import pytest

from cairn.gateway.s3 import multipart_xml as mxml
from cairn.gateway.s3.errors import S3Error
from cairn.gateway.s3.multipart import parse_copy_range
from cairn.meta.manifest import ByteRange

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def test_parse_complete_keeps_request_order_and_strips_quotes() -> None:
    body = (
        b'<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        b"<Part><ETag>&quot;aa&quot;</ETag><PartNumber>2</PartNumber>"
        b"<ChecksumCRC32>AAAAAA==</ChecksumCRC32></Part>"
        b"<Part><PartNumber> 1 </PartNumber><ETag>bb</ETag></Part>"
        b"</CompleteMultipartUpload>"
    )
    assert mxml.parse_complete(body) == [(2, "aa"), (1, "bb")]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<CompleteMultipartUpload>",
        b"<CompleteMultipartUpload/>",
        b"<Other><Part><PartNumber>1</PartNumber><ETag>x</ETag></Part></Other>",
        b"<CompleteMultipartUpload><Part><ETag>x</ETag></Part></CompleteMultipartUpload>",
        b"<CompleteMultipartUpload><Part><PartNumber>-1</PartNumber><ETag>x</ETag></Part>"
        b"</CompleteMultipartUpload>",
        b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber></Part>"
        b"</CompleteMultipartUpload>",
        b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><PartNumber>2</PartNumber>"
        b"<ETag>x</ETag></Part></CompleteMultipartUpload>",
        b'<!DOCTYPE x [<!ENTITY a "b">]><CompleteMultipartUpload/>',
    ],
)
def test_bad_complete_bodies_are_malformed_xml(body: bytes) -> None:
    with pytest.raises(S3Error) as error:
        mxml.parse_complete(body)
    assert error.value.code == "MalformedXML"


def test_documents_escape_client_values() -> None:
    listing = mxml.UploadsListing(
        bucket="b",
        prefix="<p>",
        delimiter="/",
        key_marker="",
        upload_id_marker="",
        next_key_marker="k&",
        next_upload_id_marker="u",
        max_uploads=2,
        is_truncated=True,
        encoding_type=None,
        uploads=[mxml.ListedUpload("a<b", "id1", "alice", "alice", 0.0)],
        common_prefixes=["x/"],
    )
    root = ET.fromstring(mxml.list_uploads_result(listing))
    assert root.findtext(f"{NS}Prefix") == "<p>"
    assert root.findtext(f"{NS}NextKeyMarker") == "k&"
    assert root.findtext(f"{NS}Upload/{NS}Key") == "a<b"
    assert root.findtext(f"{NS}CommonPrefixes/{NS}Prefix") == "x/"
    done = ET.fromstring(mxml.complete_result("http://h/b/k", "b", "k", "abc-2"))
    assert done.findtext(f"{NS}ETag") == '"abc-2"'


def test_copy_source_range() -> None:
    assert parse_copy_range(None, 10) == ByteRange(0, 10)
    assert parse_copy_range("bytes=2-5", 10) == ByteRange(2, 6)
    assert parse_copy_range("bytes=0-9", 10) == ByteRange(0, 10)
    for bad in ("bytes=0-10", "bytes=5-2", "bytes=-3", "bytes=3-", "items=0-1", "bytes=a-b"):
        with pytest.raises(S3Error) as error:
            parse_copy_range(bad, 10)
        assert error.value.code == "InvalidArgument", bad
