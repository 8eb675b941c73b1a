"""RPC messages of the multipart upload queries (`upload_service`, `upload_client`).

Upload *commands* (create, put a part, complete, abort) travel as ordinary `MetaPropose`
entries of the index shard that owns the key; only the reads need messages of their own.
Like the other metadata reads they name their shard group and a consistency level.
"""

import msgspec

from cairn.meta.uploads import PartsPage, UploadsPage
from cairn.node.meta_messages import Consistency, ShardBounds


class UploadPartsQuery(msgspec.Struct, frozen=True, tag=True):
    """ListParts (with `max_parts` 0: does the upload exist, and its attributes)."""

    group: int
    bucket: str
    key: str
    upload_id: str
    part_number_marker: int = 0
    max_parts: int = 1000
    consistency: Consistency = "lease"


class UploadPartsReply(msgspec.Struct, frozen=True, tag=True):
    page: PartsPage


class UploadListQuery(msgspec.Struct, frozen=True, tag=True):
    """ListMultipartUploads over one shard."""

    group: int
    bucket: str
    prefix: str = ""
    delimiter: str = ""
    key_marker: str = ""
    upload_id_marker: str = ""
    max_uploads: int = 1000
    consistency: Consistency = "lease"
    expect: ShardBounds | None = None


class UploadListReply(msgspec.Struct, frozen=True, tag=True):
    page: UploadsPage
