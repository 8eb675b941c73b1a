import pytest
from hypothesis import given
from hypothesis import strategies as st

from cairn.base.errors import CairnError
from cairn.codec import CHUNK_ID_SIZE_BYTES, ChunkCodec, ChunkId, CodecKeys, InvalidChunkId

from .conftest import CLUSTER_KEY


@given(st.binary(min_size=32, max_size=32))
def test_hex_round_trip(digest: bytes) -> None:
    chunk_id = ChunkId(digest)
    assert ChunkId.from_hex(chunk_id.hex()) == chunk_id
    assert bytes(chunk_id) == digest
    assert str(chunk_id) == digest.hex()


@pytest.mark.parametrize("size", [0, 1, 16, 31, 33, 64])
def test_wrong_length_is_a_clear_error(size: int) -> None:
    with pytest.raises(InvalidChunkId, match=f"must be 32 bytes, got {size}"):
        ChunkId(bytes(size))


def test_bad_hex_is_a_clear_error() -> None:
    with pytest.raises(InvalidChunkId, match="64 characters"):
        ChunkId.from_hex("abcd")
    with pytest.raises(InvalidChunkId, match="not valid hex"):
        ChunkId.from_hex("zz" * 32)
    assert issubclass(InvalidChunkId, CairnError)
    assert issubclass(InvalidChunkId, ValueError)


def test_id_is_keyed_and_deterministic() -> None:
    keys = CodecKeys.from_cluster_key(CLUSTER_KEY)
    other = CodecKeys.from_cluster_key(CLUSTER_KEY + b"!")
    data = b"hello world" * 1000
    assert keys.chunk_id_of(data) == CodecKeys.from_cluster_key(CLUSTER_KEY).chunk_id_of(data)
    assert keys.chunk_id_of(data) != other.chunk_id_of(data)
    assert len(keys.chunk_id_of(data).digest) == CHUNK_ID_SIZE_BYTES
    assert keys.chunk_id_of(data) != keys.chunk_id_of(data + b"x")


def test_id_differs_from_unkeyed_hash() -> None:
    import hashlib

    data = b"known public file"
    codec = ChunkCodec.from_cluster_key(CLUSTER_KEY)
    assert codec.chunk_id(data).digest != hashlib.blake2b(data, digest_size=32).digest()


def test_short_cluster_key_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        CodecKeys.from_cluster_key(b"short")


def test_keys_do_not_show_in_repr() -> None:
    keys = CodecKeys.from_cluster_key(CLUSTER_KEY)
    assert keys.id_key.hex() not in repr(keys)
