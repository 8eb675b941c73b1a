"""Frame encoding and the incremental decoder, including hostile input."""

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cairn.base.errors import FrameError
from cairn.wire.frames import HEADER_BYTES, FrameDecoder, FrameKind, encode_frame


def _wire(*frames: list[bytes | bytearray | memoryview]) -> bytes:
    return b"".join(bytes(part) for frame in frames for part in frame)


@given(
    bodies=st.lists(st.tuples(st.binary(max_size=300), st.binary(max_size=3000)), max_size=8),
    split=st.lists(st.integers(min_value=1, max_value=997), min_size=1, max_size=20),
)
def test_any_split_of_the_stream_yields_the_same_frames(
    bodies: list[tuple[bytes, bytes]], split: list[int]
) -> None:
    data = _wire(*(encode_frame(FrameKind.REQUEST, i, b, p, 7) for i, (b, p) in enumerate(bodies)))
    decoder = FrameDecoder(scratch_bytes=1024)  # small scratch: exercises the big-frame path
    frames, position, step = [], 0, 0
    while position < len(data):
        size = split[step % len(split)]
        frames.extend(decoder.feed(data[position : position + size]))
        position += size
        step += 1
    assert [(f.request_id, bytes(f.body), bytes(f.payload)) for f in frames] == [
        (i, b, p) for i, (b, p) in enumerate(bodies)
    ]
    assert all(f.timeout_ms == 7 for f in frames)
    assert decoder.idle


@given(st.binary(min_size=HEADER_BYTES, max_size=4096))
def test_garbage_is_rejected_never_accepted(garbage: bytes) -> None:
    decoder = FrameDecoder()
    try:
        frames = decoder.feed(garbage)
    except FrameError:
        assert decoder.broken
        return
    # Random bytes passing both the magic and the header CRC is astronomically unlikely;
    # if it ever happens the frame must still have passed its data checksum.
    assert frames == [] or all(isinstance(f.kind, FrameKind) for f in frames)


@given(st.integers(min_value=0, max_value=HEADER_BYTES + 40 - 1), st.integers(0, 255))
def test_any_flipped_byte_is_detected(position: int, xor: int) -> None:
    data = bytearray(_wire(encode_frame(FrameKind.RESPONSE, 1, b"body-bytes", b"x" * 30)))
    data[position] ^= xor or 1
    # The header CRC covers the lengths, so a flip anywhere is caught: never a hang, never a frame.
    with pytest.raises(FrameError):
        FrameDecoder().feed(data)


def test_oversized_lengths_are_refused_from_the_header_alone() -> None:
    decoder = FrameDecoder(body_bytes_max=100, payload_bytes_max=1000)
    with pytest.raises(FrameError, match="payload of 5000 bytes exceeds 1000"):
        decoder.feed(_wire(encode_frame(FrameKind.REQUEST, 1, b"x", b"y" * 5000))[:HEADER_BYTES])
    with pytest.raises(FrameError, match="exceeds"):
        encode_frame(FrameKind.REQUEST, 1, b"x" * (2 << 20))


def test_unknown_kind_and_version_are_refused() -> None:
    from cairn.base.checksum import crc32c

    head = struct.pack("!2sBBQIIII", b"CW", 9, 4, 1, 0, 0, 0, crc32c(b""))
    with pytest.raises(FrameError, match="version"):
        FrameDecoder().feed(head + crc32c(head).to_bytes(4, "big"))
    head = struct.pack("!2sBBQIIII", b"CW", 1, 99, 1, 0, 0, 0, crc32c(b""))
    with pytest.raises(FrameError, match="kind"):
        FrameDecoder().feed(head + crc32c(head).to_bytes(4, "big"))


def test_large_payload_is_read_into_its_own_buffer() -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB
    decoder = FrameDecoder(scratch_bytes=64 << 10)
    data = _wire(encode_frame(FrameKind.REQUEST, 5, b"hdr", payload))
    frames = decoder.feed(data)
    assert len(frames) == 1
    assert bytes(frames[0].payload) == payload
