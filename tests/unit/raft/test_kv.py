"""The replicated KV state machine: commands, determinism, snapshot/restore, bad input."""

import pytest

from cairn.raft.kv import (
    MAX_KEY_BYTES,
    Cas,
    Delete,
    Get,
    KVError,
    KVStateMachine,
    Put,
    Request,
    Result,
    decode_request,
    encode_request,
)


def apply(kv: KVStateMachine, index: int, command: object) -> Result:
    out = kv.apply(index, encode_request(Request(index, command)))  # type: ignore[arg-type]
    assert out is not None
    return out[1]


def test_put_get_delete_cas() -> None:
    kv = KVStateMachine()
    assert apply(kv, 1, Get(b"k")) == Result(True, None)
    assert apply(kv, 2, Put(b"k", b"a")) == Result(True)
    assert apply(kv, 3, Get(b"k")) == Result(True, b"a")
    assert apply(kv, 4, Cas(b"k", b"x", b"b")) == Result(False, b"a")
    assert apply(kv, 5, Cas(b"k", b"a", b"b")) == Result(True, b"b")
    assert apply(kv, 6, Cas(b"k", b"b", None)) == Result(True, None)
    assert apply(kv, 7, Cas(b"k", None, b"c")) == Result(True, b"c")
    assert apply(kv, 8, Delete(b"k")) == Result(True)
    assert apply(kv, 9, Delete(b"k")) == Result(False)
    assert kv.applied_index == 9


def test_snapshot_restores_the_same_state() -> None:
    kv = KVStateMachine()
    for i in range(10):
        apply(kv, i + 1, Put(b"k%d" % (i % 3), b"v%d" % i))
    other = KVStateMachine()
    other.restore(kv.snapshot())
    assert other.data == kv.data and other.applied_index == 10
    assert other.snapshot() == kv.snapshot(), "snapshots are deterministic"


def test_requests_round_trip_and_bad_bytes_are_typed_errors() -> None:
    request = Request(7, Cas(b"k", None, b"v"))
    assert decode_request(encode_request(request)) == request
    with pytest.raises(KVError):
        decode_request(b"\x09garbage")
    with pytest.raises(KVError):
        decode_request(b"\x01\xff\xff")
    with pytest.raises(KVError):
        encode_request(Request(1, Put(b"k" * (MAX_KEY_BYTES + 1), b"")))
    with pytest.raises(KVError):
        KVStateMachine().restore(b"\x01junk")
    kv = KVStateMachine()
    assert kv.apply(1, b"\x01junk") is None and kv.applied_index == 1
