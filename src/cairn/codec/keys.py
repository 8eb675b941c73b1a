"""Keys derived from the cluster key.

Theory of operation: the cluster key (a secret shared by every gateway, at least
`CLUSTER_KEY_SIZE_BYTES_MIN` bytes) is never used directly. HKDF-SHA256 (RFC 5869) with a
fixed salt extracts a uniform root from it and expands two independent 32-byte subkeys,
separated by their `info` labels:

- the *id key* keys BLAKE2b-256 over a chunk's plaintext to make its id (`chunk_id_of`);
- the *encryption root* from which each chunk's AES-256 key is expanded with the chunk id
  in the label (`chunk_key`), so every distinct plaintext has its own key.

The derivations are pure functions of their inputs: every gateway of a cluster derives the
same ids and keys, which is what lets identical plaintext deduplicate.
`hashlib.blake2b` releases the GIL on buffers larger than 2 KiB, so ids of different
chunks are computed in parallel by a thread pool.
"""

import hashlib
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand

from cairn.base.checksum import Buffer
from cairn.codec.chunk_id import CHUNK_ID_SIZE_BYTES, ChunkId

CLUSTER_KEY_SIZE_BYTES_MIN = 16
SUBKEY_SIZE_BYTES = 32
_SALT = b"cairn/codec/v1"
_INFO_ID_KEY = b"cairn/codec/v1/chunk-id-key"
_INFO_ENCRYPTION_ROOT = b"cairn/codec/v1/encryption-root"
_INFO_CHUNK_KEY = b"cairn/codec/v1/chunk-key/"


def _hkdf(secret: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=SUBKEY_SIZE_BYTES, salt=_SALT, info=info).derive(
        secret
    )


@dataclass(frozen=True, slots=True)
class CodecKeys:
    """The two subkeys of one cluster key. Build with `CodecKeys.from_cluster_key`."""

    id_key: bytes = field(repr=False)
    encryption_root: bytes = field(repr=False)

    @classmethod
    def from_cluster_key(cls, cluster_key: bytes) -> "CodecKeys":
        if len(cluster_key) < CLUSTER_KEY_SIZE_BYTES_MIN:
            raise ValueError(
                f"cluster key must be at least {CLUSTER_KEY_SIZE_BYTES_MIN} bytes, "
                f"got {len(cluster_key)}"
            )
        return cls(
            id_key=_hkdf(cluster_key, _INFO_ID_KEY),
            encryption_root=_hkdf(cluster_key, _INFO_ENCRYPTION_ROOT),
        )

    def chunk_id_of(self, plaintext: Buffer) -> ChunkId:
        """The id of a chunk: BLAKE2b-256 of its plaintext keyed with the id key."""
        digest = hashlib.blake2b(
            plaintext, digest_size=CHUNK_ID_SIZE_BYTES, key=self.id_key
        ).digest()
        return ChunkId(digest)

    def chunk_key(self, chunk_id: ChunkId) -> bytes:
        """The AES-256 key of one chunk: HKDF-Expand of the encryption root with the id."""
        return HKDFExpand(
            algorithm=hashes.SHA256(),
            length=SUBKEY_SIZE_BYTES,
            info=_INFO_CHUNK_KEY + chunk_id.digest,
        ).derive(self.encryption_root)
