import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.base.checksum import crc32c
from cairn.base.errors import CairnError
from cairn.codec import ChunkCodec, ChunkCorrupt, ChunkId, CodecPolicy
from cairn.codec.record import HEADER_SIZE_BYTES, TRAILER_SIZE_BYTES

from .conftest import CLUSTER_KEY, random_bytes, text_bytes

POLICIES = [CodecPolicy(compress=c, encrypt=e) for c in (True, False) for e in (True, False)]


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: f"c{p.compress:d}e{p.encrypt:d}")
@settings(max_examples=40)
@given(data=st.binary(max_size=20_000) | st.builds(text_bytes, st.integers(0, 50_000)))
def test_round_trip(policy: CodecPolicy, data: bytes) -> None:
    codec = ChunkCodec.from_cluster_key(CLUSTER_KEY, policy)
    encoded = codec.encode(data)
    assert encoded.chunk_id == codec.chunk_id(data)
    assert encoded.plaintext_length_bytes == len(data)
    assert codec.decode(encoded.chunk_id, encoded.record) == data


def test_encoding_is_deterministic(codec: ChunkCodec) -> None:
    data = text_bytes(100_000)
    assert codec.encode(data).record == codec.encode(data).record


def test_compressible_data_is_compressed(codec: ChunkCodec) -> None:
    data = text_bytes(1 << 20)
    encoded = codec.encode(data)
    assert encoded.compressed
    assert len(encoded.record) < len(data) // 2


def test_incompressible_data_is_stored_as_is(codec: ChunkCodec) -> None:
    data = random_bytes(1 << 20)
    encoded = codec.encode(data)
    assert not encoded.compressed
    overhead = HEADER_SIZE_BYTES + 16 + TRAILER_SIZE_BYTES
    assert len(encoded.record) == len(data) + overhead
    assert encoded.record[5] & 0x01 == 0


def test_ciphertext_hides_plaintext(codec: ChunkCodec) -> None:
    data = b"secret-marker " * 5000
    record = ChunkCodec.from_cluster_key(CLUSTER_KEY, CodecPolicy(compress=False)).encode(data)
    assert b"secret-marker" not in record.record
    assert (
        b"secret-marker"
        in ChunkCodec.from_cluster_key(CLUSTER_KEY, CodecPolicy(compress=False, encrypt=False))
        .encode(data)
        .record
    )


def test_nonce_changes_with_the_compressor() -> None:
    data = text_bytes(50_000)
    fast = ChunkCodec.from_cluster_key(CLUSTER_KEY, CodecPolicy(zstd_level=1)).encode(data)
    slow = ChunkCodec.from_cluster_key(CLUSTER_KEY, CodecPolicy(zstd_level=19)).encode(data)
    nonce = slice(16, 28)
    assert fast.record[nonce] != slow.record[nonce]


# Every field of the record, by (name, offset from the start; negative from the end).
FIELDS = {
    "magic": 0,
    "version": 4,
    "flags": 5,
    "reserved": 6,
    "plaintext_length": 8,
    "payload_length": 12,
    "nonce": 16,
    "payload_start": HEADER_SIZE_BYTES,
    "payload_middle": None,
    "gcm_tag": -TRAILER_SIZE_BYTES - 1,
    "crc": -1,
}


@pytest.mark.parametrize("compressible", [True, False], ids=["text", "random"])
@pytest.mark.parametrize("field", FIELDS)
def test_bit_flip_in_any_field_is_detected(field: str, compressible: bool) -> None:
    codec = ChunkCodec.from_cluster_key(CLUSTER_KEY)
    data = text_bytes(200_000) if compressible else random_bytes(200_000)
    encoded = codec.encode(data)
    record = bytearray(encoded.record)
    offset = FIELDS[field]
    position = len(record) // 2 if offset is None else offset % len(record)
    record[position] ^= 0x10
    with pytest.raises(ChunkCorrupt) as info:
        codec.decode(encoded.chunk_id, bytes(record))
    assert info.value.chunk_id_hex == encoded.chunk_id.hex()


def recrc(record: bytearray) -> bytes:
    """Fix the CRC after tampering, as an attacker (not bit rot) would."""
    body = bytes(record[:-TRAILER_SIZE_BYTES])
    return body + struct.pack(">I", crc32c(body))


@pytest.mark.parametrize("field", ["flags", "plaintext_length", "nonce", "payload_middle"])
def test_tampering_with_a_fixed_crc_fails_authentication(field: str) -> None:
    codec = ChunkCodec.from_cluster_key(CLUSTER_KEY)
    encoded = codec.encode(text_bytes(200_000))
    record = bytearray(encoded.record)
    offset = FIELDS[field]
    position = len(record) // 2 if offset is None else offset
    record[position + (3 if field == "plaintext_length" else 0)] ^= 0x01
    with pytest.raises(ChunkCorrupt):
        codec.decode(encoded.chunk_id, recrc(record))


def test_unencrypted_tampering_is_caught_by_the_id_check() -> None:
    codec = ChunkCodec.from_cluster_key(CLUSTER_KEY, CodecPolicy(compress=False, encrypt=False))
    encoded = codec.encode(random_bytes(10_000))
    record = bytearray(encoded.record)
    record[HEADER_SIZE_BYTES + 100] ^= 0x01
    with pytest.raises(ChunkCorrupt, match="keyed hash"):
        codec.decode(encoded.chunk_id, recrc(record))


def test_truncated_and_empty_records_are_corrupt(codec: ChunkCodec) -> None:
    encoded = codec.encode(text_bytes(10_000))
    for record in (b"", encoded.record[:10], encoded.record[:-1], encoded.record + b"\0"):
        with pytest.raises(ChunkCorrupt):
            codec.decode(encoded.chunk_id, record)


def test_wrong_cluster_key_fails(codec: ChunkCodec) -> None:
    encoded = codec.encode(text_bytes(10_000))
    other = ChunkCodec.from_cluster_key(CLUSTER_KEY[::-1])
    with pytest.raises(ChunkCorrupt, match="GCM authentication failed"):
        other.decode(encoded.chunk_id, encoded.record)
    plain = CodecPolicy(encrypt=False)
    unencrypted = ChunkCodec.from_cluster_key(CLUSTER_KEY, plain).encode(b"x" * 1000)
    with pytest.raises(ChunkCorrupt, match="keyed hash"):
        ChunkCodec.from_cluster_key(CLUSTER_KEY[::-1], plain).decode(
            unencrypted.chunk_id, unencrypted.record
        )


def test_record_under_another_id_fails(codec: ChunkCodec) -> None:
    first = codec.encode(b"a" * 5000)
    second = codec.encode(b"b" * 5000)
    with pytest.raises(ChunkCorrupt):
        codec.decode(second.chunk_id, first.record)
    with pytest.raises(ChunkCorrupt):
        codec.decode(ChunkId(bytes(32)), first.record)


def test_chunk_corrupt_is_a_cairn_error() -> None:
    assert issubclass(ChunkCorrupt, CairnError)


def test_oversized_chunk_is_refused(codec: ChunkCodec) -> None:
    with pytest.raises(ValueError, match="above"):
        codec.encode(bytes(16 * 1024 * 1024 + 1))


def test_large_chunks_are_probed_before_compressing(codec: ChunkCodec) -> None:
    """A large chunk whose middle sample does not shrink is stored raw without compressing
    the whole; a compressible one still is compressed; either way it decodes exactly."""
    noisy = random_bytes(1 << 20)
    mostly_text = text_bytes(1 << 20)
    raw = codec.encode(noisy)
    packed = codec.encode(mostly_text)
    assert not raw.compressed and packed.compressed
    assert codec.decode(raw.chunk_id, raw.record) == noisy
    assert codec.decode(packed.chunk_id, packed.record) == mostly_text
    assert codec.encode(noisy).record == raw.record  # the probe is deterministic
