"""The native HTTP API as the SDK speaks it, written out by hand.

The client layer may not import the gateway (they are siblings in the layer order), and
the protocol is small: the paths under `/_cairn/v1`, a few headers, JSON bodies, and the
bearer token derived from the cluster secret. `cairn.gateway.native_http` is the server
side; a test pins that the token and the paths agree.
"""

import hashlib
import hmac
from urllib.parse import quote

PREFIX = "/_cairn/v1"
TOKEN_LABEL = b"cairn-native-v1"
WRITE_CONSISTENCY_HEADER = "X-Cairn-Write-Consistency"
VERSION_ID_HEADER = "X-Cairn-Version-Id"
META_HEADER_PREFIX = "X-Cairn-Meta-"
FENCE_HEADER = "X-Cairn-Fence"
"""`name:token` on a PUT or DELETE: refused (409 FenceStale) unless the token still
holds the lock (issue 8's fencing)."""


def native_token(secret: str) -> str:
    return hmac.new(secret.encode(), TOKEN_LABEL, hashlib.sha256).hexdigest()


def authorization(secret: str) -> str:
    return f"Cairn {native_token(secret)}"


def buckets_path() -> str:
    return f"{PREFIX}/buckets"


def bucket_path(bucket: str) -> str:
    return f"{PREFIX}/buckets/{quote(bucket, safe='')}"


def object_path(bucket: str, key: str) -> str:
    return f"{PREFIX}/objects/{quote(bucket, safe='')}/{quote(key, safe='/')}"


def list_path(bucket: str) -> str:
    return f"{PREFIX}/list/{quote(bucket, safe='')}"


def range_header(first: int | None, last: int | None) -> str:
    """`bytes=first-last`, `bytes=first-` or the suffix `bytes=-last`."""
    return f"bytes={'' if first is None else first}-{'' if last is None else last}"


def fence_header(name: str, token: int) -> dict[str, str]:
    """The header that makes a PUT/DELETE conditional on lock `name`'s grant `token`."""
    return {FENCE_HEADER: f"{name}:{token}"}
