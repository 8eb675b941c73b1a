"""Encoding one chunk: id, compression, encryption, framing; and the reverse, verified.

Theory of operation. `encode(plaintext)` computes the chunk id (keyed BLAKE2b-256, see
`keys`), compresses the plaintext with zstd and keeps the result only if it is smaller
(random or already-compressed data is stored as is), encrypts with AES-256-GCM, and frames
the result (`record`) with a CRC32C of the stored form. `decode(chunk_id, record)` checks,
in order: the frame and its CRC32C, the GCM tag, the decompressed length, and finally that
the keyed hash of the plaintext equals the id it was asked for. Any failure raises
`ChunkCorrupt`; nothing unverified is ever returned.

Keys and nonces. Each chunk has its own AES-256 key, HKDF-expanded from the cluster's
encryption root with the chunk id as label, so the same plaintext encrypts under the same
key in every gateway, and two uploads of one file deduplicate (the id, not the ciphertext,
is what dedup compares). GCM breaks if one (key, nonce) pair ever encrypts two *different*
messages: the XOR of the plaintexts leaks and the authentication key can be recovered.
A deterministic nonce is safe here only because the message under a chunk key is itself
determined: the key is fixed by the id, the id by the plaintext, and the GCM input is the
plaintext or its zstd compression. The compression is deterministic for one zstd version
and level but may change when either changes, so the nonce is not a constant: it is
BLAKE2b(chunk key; flags, zstd version, level) truncated to 96 bits, stored in the record.
Two encodings of one chunk with different compressors therefore use different nonces, and
two with the same compressor produce the same message, the same nonce and the same bytes
(so replicas and racing uploads agree byte for byte). The associated data binds the header
(flags, lengths) and the chunk id, so a record cannot be replayed under another id.

Threads. `ChunkCodec` is safe to share between threads: zstd contexts are per thread, and
hashlib, zstandard and cryptography release the GIL on large buffers.
"""

import hashlib
import threading
from dataclasses import dataclass

import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cairn.base.checksum import Buffer
from cairn.codec.chunk_id import ChunkId
from cairn.codec.errors import ChunkCorrupt
from cairn.codec.keys import CodecKeys
from cairn.codec.record import (
    FLAG_COMPRESSED,
    FLAG_ENCRYPTED,
    GCM_TAG_SIZE_BYTES,
    NONCE_SIZE_BYTES,
    PLAINTEXT_SIZE_BYTES_MAX,
    RecordHeader,
    associated_data,
    pack_record,
    parse_record,
)

ZSTD_LEVEL_DEFAULT = 3
SAMPLE_BYTES = 32 * 1024
"""Size of the sample `_worth_compressing` tries before compressing a whole chunk."""
SAMPLE_PROBE_MIN_BYTES = 4 * SAMPLE_BYTES
"""Smaller chunks are simply compressed (the probe would cost a quarter of the work)."""
SAMPLE_GAIN_MIN = 0.03
"""A sample must shrink by at least this fraction for the chunk to be compressed."""
_ZERO_NONCE = bytes(NONCE_SIZE_BYTES)


@dataclass(frozen=True, slots=True)
class CodecPolicy:
    """What to do to each chunk (a bucket's storage policy chooses)."""

    compress: bool = True
    encrypt: bool = True
    zstd_level: int = ZSTD_LEVEL_DEFAULT


@dataclass(frozen=True, slots=True)
class EncodedChunk:
    """The result of encoding one chunk."""

    chunk_id: ChunkId
    plaintext_length_bytes: int
    record: bytes
    compressed: bool


class ChunkCodec:
    """Encodes and decodes chunks for one cluster key and one policy."""

    def __init__(self, keys: CodecKeys, policy: CodecPolicy | None = None) -> None:
        self.keys = keys
        self.policy = policy or CodecPolicy()
        self._local = threading.local()
        self._profile = f"zstd {zstandard.ZSTD_VERSION} level {self.policy.zstd_level}".encode()

    @classmethod
    def from_cluster_key(
        cls, cluster_key: bytes, policy: CodecPolicy | None = None
    ) -> "ChunkCodec":
        return cls(CodecKeys.from_cluster_key(cluster_key), policy)

    def chunk_id(self, plaintext: Buffer) -> ChunkId:
        return self.keys.chunk_id_of(plaintext)

    def encode(self, plaintext: Buffer, chunk_id: ChunkId | None = None) -> EncodedChunk:
        """Encode one chunk. Pass `chunk_id` if it is already known (it is not rechecked)."""
        if len(plaintext) > PLAINTEXT_SIZE_BYTES_MAX:
            raise ValueError(f"chunk of {len(plaintext)} bytes above {PLAINTEXT_SIZE_BYTES_MAX}")
        if chunk_id is None:
            chunk_id = self.chunk_id(plaintext)
        payload: Buffer = plaintext
        flags = 0
        if self.policy.compress and self._worth_compressing(plaintext):
            compressed = self._compressor().compress(plaintext)
            if len(compressed) < len(plaintext):
                payload, flags = compressed, FLAG_COMPRESSED
        nonce = _ZERO_NONCE
        if self.policy.encrypt:
            flags |= FLAG_ENCRYPTED
            chunk_key = self.keys.chunk_key(chunk_id)
            nonce = self._nonce(chunk_key, flags)
            sealed_len = len(payload) + GCM_TAG_SIZE_BYTES
            header = RecordHeader(flags, len(plaintext), sealed_len, nonce)
            aad = associated_data(header, chunk_id.digest)
            payload = AESGCM(chunk_key).encrypt(nonce, payload, aad)
        header = RecordHeader(flags, len(plaintext), len(payload), nonce)
        return EncodedChunk(
            chunk_id=chunk_id,
            plaintext_length_bytes=len(plaintext),
            record=pack_record(header, payload),
            compressed=bool(flags & FLAG_COMPRESSED),
        )

    def _worth_compressing(self, plaintext: Buffer) -> bool:
        """Early abort for incompressible data (media, archives, encrypted files): compress
        a sample from the middle first, and skip the whole chunk when the sample does not
        shrink by `SAMPLE_GAIN_MIN`. zstd spends as long failing on a random MiB as it
        does succeeding, so this saves most of the codec's time on such data. The choice
        depends only on the plaintext, so identical chunks still encode identically."""
        size = len(plaintext)
        if size < SAMPLE_PROBE_MIN_BYTES:
            return True
        start = (size - SAMPLE_BYTES) // 2
        sample = memoryview(plaintext)[start : start + SAMPLE_BYTES]
        return len(self._compressor().compress(sample)) <= SAMPLE_BYTES * (1 - SAMPLE_GAIN_MIN)

    def decode(self, chunk_id: ChunkId, record: Buffer) -> bytes:
        """The verified plaintext of `record`, or `ChunkCorrupt`."""
        hex_id = chunk_id.hex()
        header, payload = parse_record(record, hex_id)
        data: Buffer = payload
        if header.encrypted:
            chunk_key = self.keys.chunk_key(chunk_id)
            aad = associated_data(header, chunk_id.digest)
            try:
                data = AESGCM(chunk_key).decrypt(header.nonce, payload, aad)
            except InvalidTag:
                raise ChunkCorrupt(
                    hex_id, "GCM authentication failed (tampered record or wrong cluster key)"
                ) from None
        if header.compressed:
            try:
                # Check the frame's declared size first: zstd allocates what it declares.
                declared = zstandard.frame_content_size(data)
                if declared != header.plaintext_length_bytes:
                    raise ChunkCorrupt(hex_id, f"zstd frame declares {declared} bytes")
                data = self._decompressor().decompress(
                    data, max_output_size=header.plaintext_length_bytes
                )
            except zstandard.ZstdError as exc:
                raise ChunkCorrupt(hex_id, f"zstd decompression failed: {exc}") from None
        plaintext = bytes(data)
        if len(plaintext) != header.plaintext_length_bytes:
            raise ChunkCorrupt(
                hex_id,
                f"plaintext is {len(plaintext)} bytes, header says {header.plaintext_length_bytes}",
            )
        if self.keys.chunk_id_of(plaintext) != chunk_id:
            raise ChunkCorrupt(hex_id, "keyed hash of the plaintext does not match the id")
        return plaintext

    def _nonce(self, chunk_key: bytes, flags: int) -> bytes:
        return hashlib.blake2b(
            bytes([flags]) + self._profile, digest_size=NONCE_SIZE_BYTES, key=chunk_key
        ).digest()

    def _compressor(self) -> zstandard.ZstdCompressor:
        compressor: zstandard.ZstdCompressor | None = getattr(self._local, "compressor", None)
        if compressor is None:
            compressor = zstandard.ZstdCompressor(
                level=self.policy.zstd_level, write_content_size=True, write_checksum=False
            )
            self._local.compressor = compressor
        return compressor

    def _decompressor(self) -> zstandard.ZstdDecompressor:
        decompressor: zstandard.ZstdDecompressor | None = getattr(self._local, "decompressor", None)
        if decompressor is None:
            decompressor = zstandard.ZstdDecompressor()
            self._local.decompressor = decompressor
        return decompressor
