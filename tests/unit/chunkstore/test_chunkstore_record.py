"""Record and segment header encoding: round trips, and every flipped bit is caught."""

import random

import pytest

from cairn.chunkstore.record import (
    CHUNK_BYTES_MAX,
    KIND_PUT,
    KIND_TOMBSTONE,
    RECORD_HEADER_BYTES,
    SEGMENT_HEADER_BYTES,
    RecordError,
    decode_record,
    decode_segment_header,
    encode_record_header,
    encode_segment_header,
)


def test_record_round_trip() -> None:
    cid = bytes(range(32))
    payload = b"hello chunk" * 100
    buf = encode_record_header(KIND_PUT, cid, payload) + payload
    header, got = decode_record(buf)
    assert header.kind == KIND_PUT
    assert header.chunk_id == cid
    assert header.length == len(payload)
    assert bytes(got) == payload
    assert header.record_bytes == RECORD_HEADER_BYTES + len(payload)


def test_tombstone_round_trip() -> None:
    cid = b"\xff" * 32
    header, payload = decode_record(encode_record_header(KIND_TOMBSTONE, cid, b""))
    assert header.kind == KIND_TOMBSTONE
    assert header.chunk_id == cid
    assert len(payload) == 0


def test_every_flipped_bit_in_a_record_is_caught() -> None:
    rng = random.Random(7)
    cid = rng.randbytes(32)
    payload = rng.randbytes(200)
    good = encode_record_header(KIND_PUT, cid, payload) + payload
    for bit in range(len(good) * 8):
        bad = bytearray(good)
        bad[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(RecordError):
            decode_record(bytes(bad))


def test_truncated_record_is_caught() -> None:
    payload = b"x" * 100
    good = encode_record_header(KIND_PUT, b"a" * 32, payload) + payload
    for cut in range(len(good)):
        with pytest.raises(RecordError):
            decode_record(good[:cut])


def test_segment_header_round_trip_and_damage() -> None:
    header = encode_segment_header(42)
    assert len(header) == SEGMENT_HEADER_BYTES
    assert decode_segment_header(header) == 42
    for bit in range(len(header) * 8):
        bad = bytearray(header)
        bad[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(RecordError):
            decode_segment_header(bytes(bad))


def test_encoder_asserts_its_contract() -> None:
    with pytest.raises(AssertionError):
        encode_record_header(KIND_PUT, b"short", b"")
    with pytest.raises(AssertionError):
        encode_record_header(KIND_TOMBSTONE, b"a" * 32, b"not empty")
    with pytest.raises(AssertionError):
        encode_record_header(KIND_PUT, b"a" * 32, bytes(CHUNK_BYTES_MAX + 1))
