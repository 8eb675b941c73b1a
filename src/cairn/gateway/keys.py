"""Secrets the gateway derives from the cluster secret: the codec's cluster key and the
native API's bearer token.

Why derive instead of configuring: every gateway of a cluster must encrypt a chunk the
same way (the chunk id and the AES key come from the cluster key), or two uploads of one
file through two gateways would not deduplicate and one gateway could not read another's
chunks. The cluster secret is the one secret every process already shares, so the key is
HKDF-SHA256 of it with a fixed salt and info string: the same everywhere, and unrelated to
the key RPC authentication derives from the same secret (`wire.auth`), since HKDF with
different labels yields independent keys.

The native HTTP API (`native_http`) authenticates a client with
`Authorization: Cairn <hex HMAC-SHA256(secret, "cairn-native-v1")>`. Anyone holding
`cluster.json` is an administrator of the cluster, so a token derived from the secret is
all the native API asks for; per-user keys and SigV4 are the S3 API's business. The SDK
computes the same token by hand (`cairn.client.protocol`), since the client layer may not
import the gateway; a test pins that both agree.
"""

import hashlib
import hmac

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

CLUSTER_KEY_BYTES = 32
_CLUSTER_KEY_SALT = b"cairn/gateway/v1"
_CLUSTER_KEY_INFO = b"cairn/gateway/v1/cluster-key"
NATIVE_TOKEN_LABEL = b"cairn-native-v1"
AUTH_SCHEME = "Cairn"


def cluster_key(secret: str) -> bytes:
    """The codec's cluster key: HKDF-SHA256 of the cluster secret, fixed salt and info."""
    return HKDF(
        algorithm=hashes.SHA256(),
        length=CLUSTER_KEY_BYTES,
        salt=_CLUSTER_KEY_SALT,
        info=_CLUSTER_KEY_INFO,
    ).derive(secret.encode())


def native_token(secret: str) -> str:
    """The bearer token of the native API (hex HMAC-SHA256 of a fixed label)."""
    return hmac.new(secret.encode(), NATIVE_TOKEN_LABEL, hashlib.sha256).hexdigest()


def authorization_matches(header: str | None, expected_token: str) -> bool:
    """Whether an `Authorization` header carries the token (constant-time comparison)."""
    if not header:
        return False
    scheme, _, token = header.strip().partition(" ")
    if scheme != AUTH_SCHEME:
        return False
    return hmac.compare_digest(token.strip().encode(), expected_token.encode())
